#!/usr/bin/env bash
# The benchmarks at the recipe's real sizes, for a machine with one large NVIDIA GPU (H200: about 6-8 minutes).
# Random full-size weights built in-process (scripts/exvideo_harness), fp16, no downloads.
#
#   benchmarks/gpu.sh                       # on the GPU machine, from the checkout (its .venv)
#   EXVIDEO_GPU_COMPILE=1 benchmarks/gpu.sh # also ours under native TorchCompileModel (inductor) in stage 1
#   EXVIDEO_BENCH_TOY=1 benchmarks/gpu.sh   # toy sizes on the CPU: checks that every stage starts, runs and
#                                           # prints its ratio lines (tests/benchmarks/test_gpu_script.py)
#
# Stages (each prints time and peak memory, torch.cuda.max_memory_allocated above the resident weights, as ratios):
#   1. UNet step at 512x512, 128 frames: ours chunked (apply_exvideo's automatic frame_chunk) and unchunked
#      (frame_chunk=0) vs DiffSynth's SVDUNet with ExVideo, native ComfyUI, and cond+uncond in one forward;
#      ours chunked with the skip stack in host memory (skips_on_host); PyTorch SDPA attention on every side.
#   2. The refine step at 1024x1024, 128 frames: ours chunked, unchunked and with skips on host vs DiffSynth.
#   3. Decode of 128 frames at 512x512: ours (overlapped temporal windows), DiffSynth's decode_video, native VAE.decode.
# A stage that fails is reported and the next one runs; the exit status is that of the last failure.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

if [[ "${EXVIDEO_BENCH_TOY:-0}" == 1 ]]; then
    SIZE="toy sizes, CPU"
    STEP=(--toy --frames 4 --latent 16 --rounds 1 --frame-chunk auto 0 2 --skips-on-host)
    REFINE=(--toy --frames 2 --latent 32 --rounds 1 --frame-chunk auto 0 1 --skips-on-host --sides ours)
    DECODE=(--height 32 --width 32 --frames 2 --channels 32 --methods ours native)
else
    SIZE="real sizes, fp16"
    STEP=(--frames 128 --latent 64 --dtype float16 --rounds 3 --warmup 1 --frame-chunk auto 0 --batched
          --skips-on-host)
    REFINE=(--frames 128 --latent 128 --dtype float16 --rounds 3 --warmup 1 --frame-chunk auto 0 --skips-on-host
            --sides ours DiffSynth+ExVideo)
    DECODE=(--height 512 --width 512 --frames 128 --dtype float16)
    # Native TorchCompileModel (inductor) as one more side of stage 1; compiling adds minutes, so only on request.
    [[ "${EXVIDEO_GPU_COMPILE:-0}" == 1 ]] && STEP+=(--compile)
fi

status=0
stage() {
    local title=$1
    shift
    echo
    echo "=== $title ($SIZE)"
    local start=$SECONDS
    "$PYTHON" "$@" || { status=$?; echo "=== FAILED: $title (exit $status)"; }
    echo "=== $title: $((SECONDS - start)) s"
}

stage "UNet step, 512x512, 128 frames" benchmarks/unet_step.py "${STEP[@]}" --attention sdpa
stage "refine UNet step, 1024x1024, 128 frames" benchmarks/unet_step.py "${REFINE[@]}" --attention sdpa
stage "decode, 512x512, 128 frames" benchmarks/decode.py "${DECODE[@]}"
echo
echo "=== done in $SECONDS s"
exit $status
