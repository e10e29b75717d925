#!/usr/bin/env bash
# Runs the whole test suite against a real ComfyUI, setting everything up first.
#   scripts/test.sh [pytest args...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mapfile -t env_out < <(bash "$root/scripts/setup.sh" --test)
py="${env_out[0]}"
export COMFYUI_PATH="${env_out[1]}"
cd "$root"
# glibc hands blocks above its mmap threshold (adaptive, 32 MB at most) back to the kernel when they are freed,
# so on the CPU every full-size weight cast and activation is page-faulted and zeroed afresh: kernel time was
# more than half of a full-size training step. A 64 MB threshold and a lazy trim keep them in the heap
# (measured on one full-size training step: 41 s -> 32 s, peak RSS +0.9 GB). Tuning of the test processes
# and the servers they start; the pack itself sets nothing.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-67108864}" MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-536870912}"
# pytest exits 5 when it collected nothing: that is a failure here too.
exec "$py" -P -m pytest "$@"
