#!/usr/bin/env bash
# Refreshes docs/screenshots/<workflow>.png: each example workflow loaded from the
# template browser of the real frontend (headless Chromium), fitted to view; then
# the template browser's thumbnails example_workflows/<workflow>.jpg made from them.
#   scripts/screenshots.sh [pytest args...]
# Only the loading tests run; no model is loaded, so this takes a minute or two.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mapfile -t env_out < <(bash "$root/scripts/setup.sh" --test)
py="${env_out[0]}"
export COMFYUI_PATH="${env_out[1]}"
export EXVIDEO_SCREENSHOT_DIR="$root/docs/screenshots"
cd "$root"
"$py" -P -m pytest tests/server/test_frontend.py -k test_template_loads_with_every_node_known -q "$@"
exec "$py" -P scripts/build_workflows.py --thumbnails
