#!/usr/bin/env bash
# Trains the small world's SVD, stage by stage, resumably (scripts/exvideo_harness/small_world):
#   1. the VAE, 2. the base UNet on 8-frame clips, 3. the ExVideo extension to 40 frames (the pack's nodes).
# A stage whose weights are in scripts/exvideo_harness/small_world/weights/ does nothing; an interrupted one
# resumes from .cache/small_world/. Each stage logs to .cache/small_world/<stage>.log.
#
#   bash scripts/train_small_world.sh              # all stages that are not done, in order
#   bash scripts/train_small_world.sh base         # one stage
#   nohup bash scripts/train_small_world.sh &      # in the background; `pkill -f exvideo_harness.small_world`
#                                                  # saves and stops it; run it again to resume
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mapfile -t env_out < <(bash "$root/scripts/setup.sh")
py="${env_out[0]}"
export COMFYUI_PATH="${env_out[1]}"
# Idle OpenMP threads sleep instead of spinning: beside another torch process on 2 cores, spinning
# threads made a VAE step 10x slower (35 s instead of 3.5 s).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
logs="$root/.cache/small_world"
mkdir -p "$logs"

declare -A module=([vae]=train_vae [base]=train_base [extension]=train_extension)
stages=("${@:-vae base extension}")
for stage in ${stages[*]}; do
    [[ -n "${module[$stage]:-}" ]] || { echo "unknown stage $stage (vae, base, extension)" >&2; exit 2; }
    echo "[small world] $stage: log in $logs/$stage.log"
    (cd "$root" && "$py" -P -m "exvideo_harness.small_world.${module[$stage]}" >> "$logs/$stage.log" 2>&1)
done
