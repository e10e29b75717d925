"""The small world's training scripts: their first steps run, learn, and resume to the very same run."""

import dataclasses

import pytest
import torch

from exvideo_harness.small_world import models, train_base, train_vae, training
from exvideo_harness.small_world.latents import LatentPool
from exvideo_harness.small_world.world import HELD_OUT_SEEDS


def test_schedule_warms_up_then_decays():
    schedule = training.Schedule(steps=100, lr=1.0, warmup=10, final_lr_fraction=0.1)
    assert schedule.lr_at(0) == pytest.approx(0.1) and schedule.lr_at(9) == pytest.approx(1.0)
    assert schedule.lr_at(10) == pytest.approx(1.0) and schedule.lr_at(100) == pytest.approx(0.1)
    assert all(schedule.lr_at(s) >= schedule.lr_at(s + 1) for s in range(10, 100))


def test_a_warm_restart_is_the_same_schedule_shifted_to_its_step():
    fresh = training.Schedule(steps=100, lr=1.0, warmup=10)
    restarted = training.Schedule(steps=340, lr=1.0, warmup=10, restart=240)
    assert [restarted.lr_at(240 + s) for s in range(100)] == pytest.approx([fresh.lr_at(s) for s in range(100)])


def vae_run(path, steps: int) -> training.Run:
    vae = models.build_vae(seed=train_vae.SEED)
    engine = vae.first_stage_model.float().train()
    schedule = dataclasses.replace(train_vae.SCHEDULE, steps=steps, warmup=1)
    run = training.Run("vae", engine, schedule, train_vae.SEED, train_vae.RECIPE, state_path=path)
    run.loss_of_step = lambda g: train_vae.reconstruction_loss(engine, train_vae.training_pixels(g), g)
    return run


def test_vae_steps_resume_to_the_uninterrupted_run(tmp_path):
    whole = vae_run(tmp_path / "whole.pt", steps=3)
    assert whole.train(whole.loss_of_step)
    first = vae_run(tmp_path / "split.pt", steps=3)
    assert not first.train(first.loss_of_step, max_steps=2) and first.step == 2
    resumed = vae_run(tmp_path / "split.pt", steps=3)
    assert resumed.step == 2 and resumed.losses == whole.losses[:2]
    assert resumed.train(resumed.loss_of_step)
    assert resumed.losses == whole.losses
    for a, b in zip(whole.module.parameters(), resumed.module.parameters()):
        assert torch.equal(a, b)


def test_a_run_of_another_recipe_is_refused(tmp_path):
    run = vae_run(tmp_path / "run.pt", steps=1)
    run.train(run.loss_of_step)
    engine = models.build_vae().first_stage_model
    with pytest.raises(SystemExit, match="another recipe"):
        training.Run("vae", engine, train_vae.SCHEDULE, train_vae.SEED, {**train_vae.RECIPE, "crop": 32},
                     state_path=tmp_path / "run.pt")


def test_vae_latent_calibration_is_exact_and_gives_svds_scale():
    engine = models.build_vae(seed=3).first_stage_model.float().eval()
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        before = engine.decoder(engine.encoder(pixels).chunk(2, dim=1)[0])
        factor = train_vae.calibrate_latent_scale(engine)
        mean = engine.encoder(pixels).chunk(2, dim=1)[0]
        after = engine.decoder(mean)
    assert factor != pytest.approx(1.0)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)  # the decoder undoes the new scale
    from exvideo_harness.small_world.world import make_clip
    from einops import rearrange

    held_out = torch.cat([rearrange(torch.from_numpy(make_clip(s, 8).frames), "t h w c -> t c h w")
                          for s in train_vae.EVAL_SEEDS]) * 2 - 1
    with torch.no_grad():
        std = engine.encoder(held_out).chunk(2, dim=1)[0].std().item()
    assert std * 0.18215 == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("sigma", [0.002, 0.1, 1.0, 30.0, 700.0])
def test_the_base_weighs_the_networks_output_the_same_at_every_noise_level(sigma):
    """SVD's weight is 1 / c_out^2 of ComfyUI's SVD model sampling; DiffSynth's post-tuning weight is 1 / c_out,
    which counts the output by c_out: the same at high noise, far less at low noise."""
    from exvideo_core.train.objective import loss_weight

    sampling = models.build_unet().get_model_object("model_sampling")
    c_out = -sampling.calculate_denoised(torch.tensor([sigma]), torch.ones(1, 1), torch.zeros(1, 1)).item()
    assert train_base.svd_loss_weight(sigma) * c_out ** 2 == pytest.approx(1.0, rel=1e-4)
    assert loss_weight(sigma) * c_out ** 2 == pytest.approx(c_out, rel=1e-4)


def test_base_steps_lower_the_loss_on_one_batch(tmp_path):
    torch.manual_seed(0)
    model = models.build_unet(seed=train_base.SEED)
    vae = models.build_vae()
    pool = LatentPool(vae, 2, tmp_path / "latents")
    recipe = {**train_base.RECIPE, "clips_per_step": 1, "drop_conditioning": 0.0}
    objective = train_base.BaseObjective(model, vae, models.build_clip_vision(), pool, recipe)
    unet = model.model.diffusion_model.float().train()
    run = training.Run("base", unet, training.Schedule(steps=6, lr=1e-3, warmup=1), 0, recipe,
                       ema_decay=0.5, state_path=tmp_path / "base.pt")
    same_batch = torch.Generator().manual_seed(5).get_state()

    def loss(_):
        return objective(torch.Generator().set_state(same_batch))

    run.train(loss)
    assert run.losses[-1] < run.losses[0]
    cached = [int(p.stem) for p in pool.folder.iterdir()]
    assert cached and all(seed >= HELD_OUT_SEEDS for seed in cached)  # training clips only, encoded once
    ema = run.final_state_dict()
    assert set(ema) == set(unet.state_dict())
    name = next(n for n, _ in unet.named_parameters())
    assert not torch.equal(ema[name], unet.state_dict()[name])  # the moving average, not the last step


def test_a_stage_whose_file_is_shipped_does_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("EXVIDEO_SMALL_WORLD_WEIGHTS", str(tmp_path))
    (tmp_path / models.VAE_FILE).write_bytes(b"shipped")
    monkeypatch.setattr("sys.argv", ["train_vae", "--max-steps", "1"])
    monkeypatch.setattr(models, "build_vae", lambda **_: pytest.fail("a shipped stage trained again"))
    train_vae.main()
    assert (tmp_path / models.VAE_FILE).read_bytes() == b"shipped"
    assert not training.exported(tmp_path / models.UNET_FILE)
