"""The collectives the trainer uses, and the trainer on them: no-ops in one process, agreement across two real
gloo processes, AdamW's state sharded between them (ZeroRedundancyOptimizer) and resumable across process counts."""

import dataclasses
import json
import sys

import pytest
import torch

from exvideo_core.train import TrainConfig, Trainer, distributed, load_state
from exvideo_harness.ranks import run_ranks
from exvideo_harness.train_data import training_clips

WORKER = """
import json, sys, torch
from exvideo_core.errors import ExVideoError
from exvideo_core.train import distributed
cpu = torch.device("cpu")
with distributed.process_group(cpu):
    rank, world = distributed.rank_and_world()
    distributed.BUCKET_BYTES = 16  # several buckets: a lone tensor, mixed dtypes, a non-contiguous one
    grads = [torch.nn.Parameter(torch.zeros(shape, dtype=dtype)) for shape, dtype in
             [((2,), torch.float32), ((3, 2), torch.float32), ((5,), torch.float64), ((1,), torch.float32)]]
    for i, p in enumerate(grads):
        p.grad = torch.full(p.shape[::-1], float(rank + 1) * (i + 1), dtype=p.dtype).T
    distributed.average_gradients(grads)
    start = [torch.full((3,), float(rank)), torch.full((2, 3), float(rank), dtype=torch.float64).T, torch.tensor(rank)]
    distributed.broadcast_parameters(start)
    gathered = distributed.gather_to_first({("t", rank): torch.arange(3 + rank, dtype=torch.float64) * (rank + 1),
                                            ("step", rank): torch.tensor(float(rank)), ("big", rank): torch.ones(9)},
                                           cpu)
    try:
        distributed.check_same("data fingerprint", f"clips-{rank}", cpu)
        differs = None
    except ExVideoError as error:
        differs = str(error)
    distributed.check_same("parameter digest", "same", cpu)
    print(json.dumps({"rank": rank, "world": world, "mean": distributed.mean(float(rank), cpu),
                      "any": distributed.any_true(rank == 1, cpu), "grads": [p.grad.flatten().tolist() for p in grads],
                      "start": [t.flatten().tolist() for t in start], "differs": differs,
                      "gathered": gathered and {repr(k): v.tolist() for k, v in gathered.items()}}))
"""


def _two_processes(code: str, *args: str) -> list[dict]:
    return run_ranks([sys.executable, "-P", "-c", code, *args], world=2)


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
    for result in _two_processes(WORKER):
        assert result["world"] == 2
        assert result["mean"] == 0.5 and result["any"] is True
        # Tensor i's gradient is (i + 1) * (rank + 1) on each process: averaged, 1.5 * (i + 1).
        assert result["grads"] == [[1.5] * 2, [3.0] * 6, [4.5] * 5, [6.0]]
        assert result["start"] == [[0.0] * 3, [0.0] * 6, [0]]  # process 0's tensors everywhere
        expected = {repr(("t", r)): [float(i * (r + 1)) for i in range(3 + r)] for r in (0, 1)}
        expected.update({repr(("step", r)): float(r) for r in (0, 1)} | {repr(("big", r)): [1.0] * 9 for r in (0, 1)})
        assert result["gathered"] == (expected if result["rank"] == 0 else None)
        assert "data fingerprint differs between the 2 training processes" in result["differs"]


# ---------------------------------------------------------------- the trainer on two processes

# One optimizer step of 2 clips, from 1 process (grad_accumulation 2) or 2 (1 each): the same samples.
RUN = dict(steps=2, learning_rate=1e-3, gradient_checkpointing=False, seed=3)

TRAIN_WORKER = """
import json, pathlib, sys
from exvideo_core.train.host import prepare_host
cpu = prepare_host(cpu=True)
from exvideo_core.train import TrainConfig, Trainer, distributed
from exvideo_core.train.optimizer import local_moments
from exvideo_harness.svd_models import SMALL_UNET_CONFIG, build_svd_model
from exvideo_harness.train_data import training_clips
folder, config = pathlib.Path(sys.argv[1]), TrainConfig(**json.loads(sys.argv[2]))
with distributed.process_group(cpu):
    model, clips = build_svd_model(SMALL_UNET_CONFIG, seed=0), training_clips()
    whole = Trainer(model, clips, config)  # uninterrupted; its state after step 1 is saved on the way
    whole.train(progress=lambda step, total, loss: step == 1 and whole.save_state(folder / "two_half.state"),
                state_path=folder / "two_whole.state")
    resumed = Trainer.resume(model, clips, folder / "two_half.state", steps=config.steps)
    moments_resumed = local_moments(resumed.optimizer)
    resumed.train(state_path=folder / "two_resumed.state")
    # A state saved by one process (grad_accumulation 2), continued by two (1 each).
    Trainer.resume(model, clips, folder / "one_half.state", config=config).train(state_path=folder / "from_one.state")
    # Sharding changes no bit: ZeRO's AdamW against a plain one on the same random gradients.
    import torch
    from exvideo_core.train.optimizer import adamw
    rng = torch.Generator().manual_seed(0)
    shapes = [(64, 32), (32,), (7, 5, 3), (100,), (16, 16)]
    a = {str(i): torch.nn.Parameter(torch.randn(shape, generator=rng)) for i, shape in enumerate(shapes)}
    b = {k: torch.nn.Parameter(v.detach().clone()) for k, v in a.items()}
    zero, plain = adamw(a, config), torch.optim.AdamW(list(b.values()), lr=config.learning_rate,
                                                weight_decay=config.weight_decay)
    for _ in range(3):
        for k in a:
            a[k].grad = torch.randn(a[k].shape, generator=rng); b[k].grad = a[k].grad.clone()
        zero.step(); plain.step()
    bitwise = type(zero).__name__ != "AdamW" and all(torch.equal(a[k], b[k]) for k in a)
    print(json.dumps({"moments": local_moments(whole.optimizer), "moments_resumed": moments_resumed,
                      "sharded_is_bitwise_adamw": bitwise,
                      "trained": sum(p.numel() for p in whole.parameters.values()),
                      "digest": distributed.digest(whole.parameters.values())}))
"""


def _assert_same_training(one, two) -> None:
    """Two runs of the same samples on 1 and 2 processes: equal within what summing in another order moves."""
    assert one.step == two.step and two.losses == pytest.approx(one.losses, rel=1e-5)
    tensors_one, tensors_two = one.weights.tensors, two.weights.tensors
    for key, value in tensors_one.items():
        # AdamW's first steps are about lr * sign(grad): an element whose gradient is ~0 may move by up to
        # 2 * lr * steps differently.
        torch.testing.assert_close(tensors_two[key], value, rtol=0, atol=2 * RUN["learning_rate"] * one.step)
    close = sum(torch.allclose(tensors_two[k], v, rtol=1e-4, atol=1e-6) for k, v in tensors_one.items())
    far = torch.cat([~torch.isclose(tensors_two[k], v, rtol=1e-4, atol=1e-6).flatten()
                     for k, v in tensors_one.items()]).float().mean().item()
    assert far < 0.01, f"{far:.2%} of the values, {1 - close / len(tensors_one):.0%} of the tensors differ"

def _assert_equal_states(a, b) -> None:
    assert (a.step, a.losses) == (b.step, b.losses)
    for key, value in a.weights.tensors.items():
        assert torch.equal(b.weights.tensors[key], value), key
    assert a.optimizer.keys() == b.optimizer.keys()
    for name, fields in a.optimizer.items():
        assert all(torch.equal(b.optimizer[name][field], value) for field, value in fields.items()), name


@pytest.fixture(scope="module")
def sharded_runs(base, module_scratch):
    """Full-mode runs of RUN on 1 and 2 processes; the states they saved, by name."""
    folder, clips = module_scratch, training_clips()
    one = TrainConfig(**RUN, grad_accumulation=2)
    Trainer(base, clips, dataclasses.replace(one, steps=1)).train(state_path=folder / "one_half.state")
    workers = _two_processes(TRAIN_WORKER, str(folder), json.dumps(RUN))
    # Continued by one process from its own state (test_trainer: equal to an uninterrupted run), and from two's.
    Trainer.resume(base, clips, folder / "one_half.state", steps=2).train(state_path=folder / "one_whole.state")
    Trainer.resume(base, clips, folder / "two_half.state", config=one).train(state_path=folder / "from_two.state")
    states = {path.name.removesuffix(".state"): load_state(path) for path in folder.glob("*.state")}
    return states, workers


def test_two_processes_equal_one(sharded_runs):
    states, workers = sharded_runs
    assert workers[0]["digest"] == workers[1]["digest"]
    assert all(worker["sharded_is_bitwise_adamw"] for worker in workers)
    assert states["two_whole"].step == 2
    _assert_same_training(states["one_whole"], states["two_whole"])


def test_each_process_holds_half_of_adamws_moments(sharded_runs):
    states, workers = sharded_runs
    total = 2 * workers[0]["trained"]  # exp_avg and exp_avg_sq of every trained value
    saved = sum(value.numel() for fields in states["two_whole"].optimizer.values()
                for field, value in fields.items() if field in ("exp_avg", "exp_avg_sq"))
    assert saved == total  # the file holds the whole state
    for key in ("moments", "moments_resumed"):  # after training, and once a saved state is loaded
        shards = [worker[key]["elements"] for worker in workers]
        assert sum(shards) == total
        assert all(abs(shard - total / 2) < 0.05 * total for shard in shards), shards
        assert all(worker[key]["bytes"] == 4 * worker[key]["elements"] for worker in workers)  # fp32, one copy


def test_a_state_saved_by_two_processes_resumes_exactly(sharded_runs):
    states, _ = sharded_runs
    _assert_equal_states(states["two_whole"], states["two_resumed"])


def test_states_move_between_one_and_two_processes(sharded_runs):
    states, _ = sharded_runs
    _assert_same_training(states["two_whole"], states["from_two"])  # saved by two, continued by one
    _assert_same_training(states["one_whole"], states["from_one"])  # saved by one, continued by two
