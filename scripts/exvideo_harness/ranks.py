"""Processes started the way torchrun starts them, for tests and benchmarks of the distributed paths.

    results = run_ranks([sys.executable, "-P", "-c", code], world=2)   # one parsed JSON line per rank

Each process gets WORLD_SIZE, RANK, LOCAL_RANK and a free MASTER_PORT on
127.0.0.1 (so `distributed.process_group` makes a gloo group of them) and one
thread, since the ranks share the machine's cores.
"""

import json
import os
import socket
import subprocess


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_ranks(command: list[str], world: int, timeout: float = 300, cwd=None) -> list[dict]:
    """Run `command` as ranks 0..world-1; each must print one JSON line last. AssertionError with every failed
    rank's stderr otherwise."""
    env = {**os.environ, "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                                env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)})
               for rank in range(world)]
    outputs = [worker.communicate(timeout=timeout) for worker in workers]
    failed = [f"rank {rank} (exit {worker.returncode}):\n{err[-3000:]}"
              for rank, (worker, (_, err)) in enumerate(zip(workers, outputs)) if worker.returncode != 0]
    assert not failed, "\n".join(failed)
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
