#!/usr/bin/env bash
# Mutation testing (cosmic-ray, from PyPI) of the core's rule modules and the nodes' input translation,
# each against its own fast tests. It mutates a clone of HEAD, never this working tree.
#
#   bash scripts/mutation_test.sh                      # every target below (about 1.5 h on 2 cores)
#   bash scripts/mutation_test.sh position sampling    # some of them
#
# Each target prints cosmic-ray's report; `cr-report --show-diff .cache/mutation/<target>.sqlite` lists the
# survivors. Binary operators are only swapped for their arithmetic neighbours (+ - * /) and comparisons for
# comparisons: bit shifts, powers and identity tests in place of arithmetic multiply the mutants without
# asking the tests anything new.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mapfile -t env_out < <(bash "$root/scripts/setup.sh" --test)
py="${env_out[0]}"
comfy="${env_out[1]}"
work="$root/.cache/mutation"
mkdir -p "$work"
[[ -x "$work/venv/bin/cosmic-ray" ]] || { python3 -m venv "$work/venv" && "$work/venv/bin/pip" install -q "cosmic-ray==8.7.0"; }
rm -rf "$work/clone" && git clone -q "$root" "$work/clone"

declare -A modules=(
    [position]='"exvideo_core/position.py"'
    [constraints]='"exvideo_core/constraints.py"'
    [node_inputs]='["nodes/sampling_inputs.py", "nodes/size_inputs.py", "nodes/video_inputs.py"]'
    [sampling]='"exvideo_core/sampling.py"'
    [lora]='"exvideo_core/train/lora.py"'
)
declare -A tests=(
    [position]="tests/core/test_position.py"
    [constraints]="tests/core/test_constraints.py tests/nodes/test_node_inputs.py tests/core/test_sampling.py"
    [node_inputs]="tests/nodes/test_sampling_inputs.py tests/nodes/test_video_inputs.py tests/nodes/test_node_inputs.py"
    [sampling]="tests/core/test_sampling.py"
    [lora]="tests/train/test_lora.py tests/nodes/test_nodes_train_lora.py"
)
targets=("${@:-position constraints node_inputs sampling lora}")
for target in ${targets[*]}; do
    [[ -n "${modules[$target]:-}" ]] || { echo "unknown target $target (${!modules[*]})" >&2; exit 2; }
    # ComfyUI first (its nodes.py, not the pack's nodes/), then the clone, then its harness.
    paths="$comfy:$work/clone:$work/clone/scripts"
    cat > "$work/$target.toml" <<EOF
[cosmic-ray]
module-path = ${modules[$target]}
timeout = 300.0
excluded-modules = []
test-command = "env OMP_NUM_THREADS=1 PYTHONPATH=$paths $(dirname "$py")/pytest -q -x -p no:cacheprovider ${tests[$target]}"
[cosmic-ray.distributor]
name = "local"
[cosmic-ray.filters.operators-filter]
exclude-operators = [
  "core/ReplaceBinaryOperator_\\\\w+_(Mod|Pow|RShift|LShift|BitOr|BitAnd|BitXor|FloorDiv)$",
  "core/ReplaceBinaryOperator_(Mod|Pow|RShift|LShift|BitOr|BitAnd|BitXor)_\\\\w+$",
  "core/ReplaceComparisonOperator_\\\\w+_(Is|IsNot|In|NotIn)$",
  "core/ReplaceComparisonOperator_(Is|IsNot|In|NotIn)_\\\\w+$",
]
EOF
    rm -f "$work/$target.sqlite"
    (cd "$work/clone" && "$work/venv/bin/cosmic-ray" init "$work/$target.toml" "$work/$target.sqlite" \
        && "$work/venv/bin/cr-filter-operators" "$work/$target.sqlite" "$work/$target.toml" \
        && "$work/venv/bin/cosmic-ray" exec "$work/$target.toml" "$work/$target.sqlite")
    echo "== $target"
    "$work/venv/bin/cr-report" "$work/$target.sqlite" | tail -3
done
