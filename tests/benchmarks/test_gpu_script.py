"""benchmarks/gpu.sh at toy sizes on the CPU: every stage starts, runs and prints its ratio lines.

The real sizes need a large GPU; this catches a broken flag, import or
report line before such a machine is lent. Toy sizes have no DiffSynth UNet
(it exists only at full size), so its ratios print as not run.
"""

import os
import pathlib
import re
import subprocess
import sys


REPO = pathlib.Path(__file__).resolve().parents[2]


def test_gpu_script_runs_every_stage_at_toy_sizes():
    env = {**os.environ, "EXVIDEO_BENCH_TOY": "1", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "FAILED" not in out
    for stage in ("UNet step, 512x512", "refine UNet step, 1024x1024", "decode, 512x512"):
        assert f"=== {stage}" in out, stage
    number = r"\d+\.\d\d \(rounds"
    # Both UNet stages: ours vs DiffSynth (not run at toy sizes), chunked vs unchunked (measured).
    assert len(re.findall(r"ratio time ours / DiffSynth\+ExVideo \[sdpa\]: n/a", out)) == 2
    assert len(re.findall(rf"ratio time ours default chunk / unchunked \[sdpa\]: {number}", out)) == 2
    assert len(re.findall(rf"ratio peak ours skips on host / ours \[sdpa\]: {number}", out)) == 2
    assert len(re.findall(r"same output, ours skips on host \[sdpa\] and ours \[sdpa\]: yes", out)) == 2
    # The memory model checked against each of ours: auto, 0 and K frames a chunk, skips on host (both stages).
    predictions = re.findall(r"memory model, ours.*: predicted \d+\.\d\d GiB, measured .*\(measured / predicted", out)
    assert len(predictions) == 2 * 4, predictions
    assert re.search(rf"ratio peak ours frame_chunk=2 / unchunked \[sdpa\]: {number}", out)
    assert re.search(rf"ratio peak ours frame_chunk=1 / unchunked \[sdpa\]: {number}", out)
    assert re.search(r"peak memory 2 / 2 frames, ours: \d+\.\d\d", out)
