"""Loading, validating, converting and saving ExVideo extensions."""

import pickle

import pytest
import torch

from exvideo_core import CheckpointError, ExVideoWeights, load_exvideo, save_exvideo
from exvideo_core import layout, safetensors_io
from exvideo_harness.exvideo_files import SMALL, random_exvideo_state_dict


@pytest.fixture(scope="module")
def diffsynth_sd():
    return random_exvideo_state_dict(16, seed=3, dtype=torch.float16, **SMALL)


@pytest.fixture
def diffsynth_file(tmp_path, diffsynth_sd):
    path = tmp_path / "ExVideo-test.safetensors"
    safetensors_io.save(diffsynth_sd, path)
    return path


def test_loads_released_layout_from_file(diffsynth_file, diffsynth_sd):
    weights = load_exvideo(diffsynth_file)
    assert isinstance(weights, ExVideoWeights)
    assert weights.num_frames == 16
    assert weights.model_channels == 32
    key = "diffusion_model.middle_block.1.time_stack.0.attn1.to_out.0.weight"
    assert torch.equal(weights.tensors[key], diffsynth_sd["blocks.83.attn1.to_out.weight"])
    assert weights.metadata["exvideo.source"] == "diffsynth"


def test_round_trip_diffsynth_ours_diffsynth_is_bit_exact(tmp_path, diffsynth_file, diffsynth_sd):
    save_exvideo(load_exvideo(diffsynth_file), tmp_path / "ours.safetensors", layout="comfyui")
    ours, ours_meta = safetensors_io.load(tmp_path / "ours.safetensors")
    assert layout.detect_layout(ours) == "comfyui"
    assert ours_meta["exvideo.layout"] == "comfyui" and ours_meta["exvideo.num_frames"] == "16"

    save_exvideo(load_exvideo(tmp_path / "ours.safetensors"), tmp_path / "back.safetensors", layout="diffsynth")
    back, _ = safetensors_io.load(tmp_path / "back.safetensors")
    assert back.keys() == diffsynth_sd.keys()
    for key, value in diffsynth_sd.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key


def test_metadata_survives_a_save(tmp_path, diffsynth_sd):
    weights = load_exvideo(diffsynth_sd)
    weights = ExVideoWeights(weights.tensors, {**weights.metadata, "exvideo.training_steps": "1200"})
    save_exvideo(weights, tmp_path / "x.safetensors")
    assert load_exvideo(tmp_path / "x.safetensors").metadata["exvideo.training_steps"] == "1200"


def test_extend_returns_longer_table_and_leaves_original(diffsynth_sd):
    weights = load_exvideo(diffsynth_sd)
    longer = weights.extend(40)
    assert longer.num_frames == 40 and weights.num_frames == 16
    block = layout.TEMPORAL_BLOCKS[5]
    assert torch.equal(longer.table(block)[:16], weights.table(block))
    assert longer.metadata["exvideo.num_frames"] == "40"


def expect_error(source, *fragments):
    with pytest.raises(CheckpointError) as info:
        load_exvideo(source)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_tensors_are_listed(diffsynth_sd):
    broken = {k: v for k, v in diffsynth_sd.items() if not k.startswith("blocks.195.attn2")}
    expect_error(broken, "5 missing tensors", "output_blocks.11.1.time_stack.0.attn2")


def test_unexpected_tensors_are_listed(diffsynth_sd):
    expect_error({**diffsynth_sd, "blocks.7.extra.weight": torch.zeros(1)}, "unexpected", "blocks.7.extra.weight")


def test_mixed_table_lengths_are_rejected(diffsynth_sd):
    broken = dict(diffsynth_sd)
    broken["blocks.83.positional_embedding.embeddings"] = torch.zeros(20, 128)
    expect_error(broken, "wrong shape", "middle_block.1.time_pos_table.weight")


def test_non_finite_tensors_are_rejected(diffsynth_sd):
    broken = dict(diffsynth_sd)
    broken["blocks.7.ff_out.weight"] = diffsynth_sd["blocks.7.ff_out.weight"].clone()
    broken["blocks.7.ff_out.weight"][0, 0] = float("nan")
    expect_error(broken, "NaN or infinite", "input_blocks.1.1.time_stack.0.ff.net.2.weight")


def test_full_svd_checkpoint_is_named(tmp_path):
    path = tmp_path / "svd_xt.safetensors"
    safetensors_io.save({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2),
                         "conditioner.embedders.0.open_clip.model.visual.proj": torch.zeros(2, 2)}, path)
    expect_error(path, "svd_xt.safetensors", "not an ExVideo extension", "full SVD checkpoint")


def test_lora_is_named(tmp_path):
    path = tmp_path / "sd15_lora.safetensors"
    safetensors_io.save({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8)}, path)
    expect_error(path, "not an ExVideo extension", "LoRA")


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.safetensors"
    path.write_bytes(bytes(range(256)) * 64)
    expect_error(path, "noise.safetensors", "not a valid safetensors file")


def test_truncated_file(tmp_path, diffsynth_file):
    data = diffsynth_file.read_bytes()
    path = tmp_path / "partial.safetensors"
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "partial.safetensors", "truncated")


def test_tiny_file(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"abc")
    expect_error(path, "only 3 bytes")


class _Trap:
    """Unpickling this would create a file: proof that a load never unpickles."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("name", ["model.ckpt", "model.safetensors"])
def test_pickles_are_refused_unopened(tmp_path, name):
    marker = tmp_path / "unpickled"
    path = tmp_path / name
    path.write_bytes(pickle.dumps(_Trap(marker)))
    expect_error(path, "pickle", "never opened")
    assert not marker.exists()


def test_torch_save_zip_is_refused(tmp_path, diffsynth_sd):
    path = tmp_path / "model.pt"
    torch.save(diffsynth_sd, path)
    expect_error(path, "pickle")


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.safetensors", "does not exist")


def test_failed_save_leaves_no_file(tmp_path, diffsynth_sd, monkeypatch):
    weights = load_exvideo(diffsynth_sd)
    target = tmp_path / "out.safetensors"

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors_io.safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError):
        save_exvideo(weights, target)
    assert list(tmp_path.iterdir()) == []


def test_save_over_existing_file_is_atomic(tmp_path, diffsynth_sd, monkeypatch):
    target = tmp_path / "out.safetensors"
    weights = load_exvideo(diffsynth_sd)
    save_exvideo(weights, target)
    before = target.read_bytes()

    def interrupted(tensors, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors_io.safetensors.torch, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_exvideo(weights.extend(20), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.safetensors"]


def test_wrong_file_is_refused_from_its_header(tmp_path, monkeypatch):
    path = tmp_path / "svd_xt.safetensors"
    safetensors_io.save({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2)}, path)

    def never(*args, **kwargs):
        raise AssertionError("tensors were read")

    monkeypatch.setattr(safetensors_io.safetensors.torch, "load_file", never)
    expect_error(path, "not an ExVideo extension")


@pytest.mark.parametrize("rows", [0, 1])
def test_degenerate_position_tables_are_refused_when_loading(rows):
    """A 0-row table used to load (N = 0) and fail only at sampling time."""
    state_dict = {key: value[:rows] if key.endswith(".positional_embedding.embeddings") else value
                  for key, value in random_exvideo_state_dict(4, **SMALL).items()}
    with pytest.raises(CheckpointError, match=f"degenerate: its position tables have {rows} rows"):
        load_exvideo(state_dict)


# The last is an Arabic-Indic digit: str.isdigit() accepts it, int() too, and we never write it.
@pytest.mark.parametrize("steps", ["12.5", "-3", "lots", "1e3", "\u0663"])
def test_metadata_we_would_parse_is_not_trusted_unless_it_is_what_we_write(tmp_path, steps, caplog):
    path = tmp_path / "odd.safetensors"
    safetensors_io.save(random_exvideo_state_dict(4, **SMALL), path,
                        metadata={"exvideo.training_steps": steps, "exvideo.ema": "maybe", "note": "kept"})
    weights = load_exvideo(path)
    assert "exvideo.training_steps" not in weights.metadata and "exvideo.ema" not in weights.metadata
    assert weights.metadata["note"] == "kept"
    assert "ignoring metadata exvideo.training_steps" in caplog.text


def test_well_formed_metadata_is_kept(tmp_path):
    path = tmp_path / "ours.safetensors"
    safetensors_io.save(random_exvideo_state_dict(4, **SMALL), path, metadata={"exvideo.training_steps": "12"})
    assert load_exvideo(path).metadata["exvideo.training_steps"] == "12"
