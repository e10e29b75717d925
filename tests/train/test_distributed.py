"""The collectives the trainer uses: no-ops in one process, agreement across two real gloo processes."""

import json
import os
import socket
import subprocess
import sys

import torch

from exvideo_core.train import distributed

WORKER = """
import json, sys, torch
from exvideo_core.errors import ExVideoError
from exvideo_core.train import distributed
cpu = torch.device("cpu")
with distributed.process_group(cpu):
    rank, world = distributed.rank_and_world()
    grad = torch.nn.Parameter(torch.zeros(2)); grad.grad = torch.full((2,), float(rank + 1))
    distributed.average_gradients([grad])
    start = torch.full((3,), float(rank))
    distributed.broadcast_parameters([start])
    try:
        distributed.check_same("data fingerprint", f"clips-{rank}", cpu)
        differs = None
    except ExVideoError as error:
        differs = str(error)
    distributed.check_same("parameter digest", "same", cpu)
    print(json.dumps({"rank": rank, "world": world, "mean": distributed.mean(float(rank), cpu),
                      "any": distributed.any_true(rank == 1, cpu), "grad": grad.grad.tolist(),
                      "start": start.tolist(), "differs": differs}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_one_process_needs_no_group():
    assert not distributed.active() and not distributed.launched()
    assert distributed.rank_and_world() == (0, 1)
    cpu = torch.device("cpu")
    assert distributed.mean(2.5, cpu) == 2.5 and distributed.any_true(False, cpu) is False
    distributed.check_same("anything", "value", cpu)  # nothing to compare with
    with distributed.process_group(cpu):
        assert not distributed.active()


def test_digest_sees_every_bit_and_only_the_values():
    a = torch.tensor([1.0, 2.0])
    assert distributed.digest([a]) == distributed.digest([a.clone().double()])
    assert distributed.digest([a]) != distributed.digest([a + 1e-7])


def test_two_gloo_processes_agree():
    env = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    workers = [subprocess.Popen([sys.executable, "-P", "-c", WORKER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, **env, "RANK": str(rank),
                                                "LOCAL_RANK": str(rank)})
               for rank in (0, 1)]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    for result in results:
        assert result["world"] == 2
        assert result["mean"] == 0.5 and result["any"] is True
        assert result["grad"] == [1.5, 1.5]  # (1 + 2) / 2
        assert result["start"] == [0.0, 0.0, 0.0]  # process 0's tensors everywhere
        assert "data fingerprint differs between the 2 training processes" in result["differs"]
