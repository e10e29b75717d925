#!/usr/bin/env bash
# Runs the whole test suite against a real ComfyUI, setting everything up first.
#   scripts/test.sh [pytest args...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mapfile -t env_out < <(bash "$root/scripts/setup.sh" --test)
py="${env_out[0]}"
export COMFYUI_PATH="${env_out[1]}"
cd "$root"
# pytest exits 5 when it collected nothing: that is a failure here too.
exec "$py" -P -m pytest "$@"
