#!/usr/bin/env bash
# The main job: one image becomes a long video through a real ComfyUI with this pack.
#   scripts/demo.sh [--image PATH] [--real] [--frames N] [...]   (see scripts/demo.py --help)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mapfile -t env_out < <(bash "$root/scripts/setup.sh")
export COMFYUI_PATH="${env_out[1]}"
exec "${env_out[0]}" "$root/scripts/demo.py" "$@"
