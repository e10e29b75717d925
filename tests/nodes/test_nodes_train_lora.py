"""A lora-mode run taken elsewhere: ExVideo Save LoRA writes a ComfyUI LoRA file that ComfyUI's own
LoraLoaderModelOnly applies on top of the run's saved extension, giving the trained model's output; the
LORA_MODEL itself goes into ComfyUI's Load LoRA Model and Save LoRA Weights with the same result."""

import importlib

import pytest
import torch

import comfy.model_management
import folder_paths
import nodes as comfy_nodes  # ComfyUI's nodes.py
import safetensors.torch
from comfy_extras import nodes_train as native_train

from exvideo_core import ExVideoError
from exvideo_core.safetensors_io import read_header
from exvideo_core.train.lora import REQUIRES, NoLoRAError, extension_fingerprint
from exvideo_harness.pack import load_pack_nodes
from exvideo_harness.svd_models import SMALL_UNET_CONFIG, apply_model_direct, build_svd_model
from exvideo_harness.train_data import CLIP_FRAMES, moving_square_video, tiny_clip_vision, tiny_vae

RELATIVE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def pack():
    load_pack_nodes()
    return {name: importlib.import_module(f"{load_pack_nodes().__name__}.{name}")
            for name in ("nodes_train", "nodes_loaders")}


@pytest.fixture(scope="module")
def folders(module_scratch):
    """ComfyUI's output folder, with its loras and exvideo subfolders as model folders (as ComfyUI registers
    output/loras at start-up and the pack output/exvideo)."""
    root = module_scratch / "comfy"
    root.mkdir()
    output = root / "output"
    output.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(folder_paths, "output_directory", str(output))
        patch.setitem(folder_paths.folder_names_and_paths, "loras", ([str(output / "loras")], {".safetensors"}))
        patch.setitem(folder_paths.folder_names_and_paths, "exvideo", ([str(output / "exvideo")], {".safetensors"}))
        patch.setattr(folder_paths, "filename_list_cache", {})
        yield output


@pytest.fixture(scope="module")
def run(pack, folders):
    """Two lora-mode steps on the small model; lr high enough that the LoRA visibly changes the output."""
    train = pack["nodes_train"]
    with torch.inference_mode():  # as ComfyUI runs nodes
        clips = train.ExVideoTrainingClips.execute(
            tiny_vae(), tiny_clip_vision(), "", CLIP_FRAMES, 128, 128, 1, 0, images=moving_square_video(16)).result[0]
        model = build_svd_model(SMALL_UNET_CONFIG, seed=0)
        trained, exvideo, losses, lora = train.ExVideoTrain.execute(
            model, clips, 2, "lora", 1e-2, 4, 8.0, 1, False, 0, "lora_run", False).result
    yield model, trained, exvideo, lora
    comfy.model_management.unload_all_models()


def output(model) -> torch.Tensor:
    with torch.inference_mode():
        return apply_model_direct(model, CLIP_FRAMES, context_dim=SMALL_UNET_CONFIG["context_dim"], seed=3)


def test_lora_output_is_the_runs_lora(run):
    _, _, _, lora = run
    up = {k: v for k, v in lora.items() if k.endswith("lora_up.weight")}
    untrained = {k for k, v in up.items() if v.abs().max() == 0}  # up starts at zero
    # SVD's cross-attention sees one context token, so its softmax is 1 whatever q and k: they get no gradient.
    assert len(up) == 224 and untrained == {k for k in up if ".attn2.to_q." in k or ".attn2.to_k." in k}


def test_saved_lora_on_saved_extension_reproduces_the_trained_model(pack, folders, run):
    model, trained, exvideo, lora = run
    train, loaders = pack["nodes_train"], pack["nodes_loaders"]
    saved_extension = train.ExVideoSaveExtension.execute(exvideo, "exvideo/run", "diffsynth")
    saved_lora = train.ExVideoSaveLoRA.execute(lora, "loras/run", "fp32", exvideo)
    (extension_file,) = (folders / "exvideo").glob("run_*.safetensors")
    (lora_file,) = (folders / "loras").glob("run_*.safetensors")
    assert lora_file.name in folder_paths.get_filename_list("loras")
    # The nodes say where the files went and that the loaders list them.
    assert saved_extension.ui.as_dict() == {"text": (
        f"Saved {extension_file}. The ExVideo loaders list it as {extension_file.name} (press R to refresh the "
        f"lists).",)}
    assert saved_lora.ui.as_dict() == {"text": (
        f"Saved {lora_file}. The LoRA loaders list it as {lora_file.name} (press R to refresh the lists).",)}

    with torch.inference_mode():
        (loaded,) = loaders.ExVideoLoader.execute(extension_file.name, 0).result
        (applied,) = loaders.ApplyExVideoWeights.execute(model, loaded).result
        (with_lora,) = comfy_nodes.LoraLoaderModelOnly().load_lora_model_only(applied, lora_file.name, 1.0)
    expected, got, without_lora = output(trained), output(with_lora), output(applied)

    scale = expected.abs().max()
    assert (got - expected).abs().max() <= RELATIVE_TOLERANCE * scale
    assert (without_lora - expected).abs().max() > 100 * RELATIVE_TOLERANCE * scale, "the LoRA must matter"


def test_extension_saved_with_the_lora_merged_stands_alone(pack, folders, run):
    model, trained, exvideo, lora = run
    pack["nodes_train"].ExVideoSaveExtension.execute(exvideo, "exvideo/merged", "diffsynth", lora)
    (path,) = (folders / "exvideo").glob("merged_*.safetensors")
    with torch.inference_mode():
        (loaded,) = pack["nodes_loaders"].ExVideoLoader.execute(path.name, 0).result
        (applied,) = pack["nodes_loaders"].ApplyExVideoWeights.execute(model, loaded).result
    expected = output(trained)
    assert (output(applied) - expected).abs().max() <= RELATIVE_TOLERANCE * expected.abs().max()


def test_lora_file_says_what_it_belongs_on(pack, folders, run):
    _, _, exvideo, lora = run
    pack["nodes_train"].ExVideoSaveLoRA.execute(lora, "loras/meta", "fp32", exvideo)
    (path,) = (folders / "loras").glob("meta_*.safetensors")
    header, metadata = read_header(path)
    assert metadata["exvideo.requires"] == REQUIRES and metadata["exvideo.kind"] == "lora"
    assert metadata["exvideo.lora_rank"] == "4" and float(metadata["exvideo.lora_alpha"]) == 8.0  # not the rank: a swap shows
    assert metadata["exvideo.extension_fingerprint"] == extension_fingerprint(exvideo)
    assert metadata["exvideo.extension_training_steps"] == "2"
    assert set(header) == set(lora)


def test_half_precision_and_counter(pack, folders, run):
    model, trained, exvideo, lora = run
    save = pack["nodes_train"].ExVideoSaveLoRA.execute
    save(lora, "loras/half", "bf16")
    save(lora, "loras/half", "fp16")
    first, second = sorted((folders / "loras").glob("half_*.safetensors"))
    assert (first.name, second.name) == ("half_00001_.safetensors", "half_00002_.safetensors")
    header, _ = read_header(second)
    key = "diffusion_model.middle_block.1.time_stack.0.ff.net.2.lora_up.weight"
    assert header[key]["dtype"] == "F16" and header[key.replace("lora_up.weight", "alpha")]["dtype"] == "F32"
    assert read_header(first)[0][key]["dtype"] == "BF16"

    with torch.inference_mode():
        applied = pack["nodes_loaders"].ApplyExVideoWeights.execute(model, exvideo).result[0]
        (with_lora,) = comfy_nodes.LoraLoaderModelOnly().load_lora_model_only(applied, second.name, 1.0)
    expected = output(trained)
    assert (output(with_lora) - expected).abs().max() <= 1e-2 * expected.abs().max()


def test_native_load_lora_model_gives_the_trained_model(pack, run):
    """Load LoRA Model (comfy_extras/nodes_train.py) takes the lora output as it is, no file in between."""
    model, trained, exvideo, lora = run
    with torch.inference_mode():
        applied = pack["nodes_loaders"].ApplyExVideoWeights.execute(model, exvideo).result[0]
        (with_lora,) = native_train.LoraModelLoader.execute(applied, lora, 1.0).result
    expected = output(trained)
    assert (output(with_lora) - expected).abs().max() <= RELATIVE_TOLERANCE * expected.abs().max()


def test_native_save_lora_weights_writes_what_save_exvideo_lora_writes(pack, folders, run):
    """Same tensors (fp32) as our file, so LoraLoaderModelOnly gives the same model from either; ours adds
    the metadata saying which extension it belongs on."""
    model, _, exvideo, lora = run
    native_train.SaveLoRA.execute(lora, "loras/native")
    pack["nodes_train"].ExVideoSaveLoRA.execute(lora, "loras/ours", "fp32", exvideo)
    (native_file,) = (folders / "loras").glob("native_*.safetensors")
    (our_file,) = (folders / "loras").glob("ours_*.safetensors")
    native, ours = safetensors.torch.load_file(native_file), safetensors.torch.load_file(our_file)
    assert set(native) == set(ours) == set(lora)
    for key, value in ours.items():
        assert native[key].dtype == value.dtype and torch.equal(native[key], value), key
    with torch.inference_mode():
        applied = pack["nodes_loaders"].ApplyExVideoWeights.execute(model, exvideo).result[0]
        outputs = [output(comfy_nodes.LoraLoaderModelOnly().load_lora_model_only(applied, path.name, 1.0)[0])
                   for path in (native_file, our_file)]
    assert torch.equal(*outputs)


@pytest.fixture(scope="module")
def full_mode_lora(pack, run):
    train = pack["nodes_train"]
    with torch.inference_mode():
        clips = train.ExVideoTrainingClips.execute(
            tiny_vae(), tiny_clip_vision(), "", CLIP_FRAMES, 128, 128, 1, 0, images=moving_square_video(16)).result[0]
        *_, lora = train.ExVideoTrain.execute(run[0], clips, 1, "full", 1e-4, 4, 4.0, 1, False, 0, "full_run",
                                              False).result
    comfy.model_management.unload_all_models()
    return lora


def test_full_mode_run_has_no_lora_to_save(pack, folders, full_mode_lora):
    assert full_mode_lora == {} and not full_mode_lora
    with pytest.raises(ExVideoError, match="full mode.*ExVideo Save Extension"):
        pack["nodes_train"].ExVideoSaveLoRA.execute(full_mode_lora, "full_lora/run", "fp32")
    assert not (folders / "full_lora").exists()


def test_native_nodes_given_a_full_mode_lora_fail_saying_so(folders, run, full_mode_lora):
    """Save LoRA Weights would write {} as an empty .safetensors, Load LoRA Model would apply nothing."""
    with pytest.raises(NoLoRAError, match="full mode.*exvideo output.*mode 'lora'"):
        native_train.SaveLoRA.execute(full_mode_lora, "native_full/run")
    assert [p for p in (folders / "native_full").rglob("*") if p.is_file()] == []
    with pytest.raises(NoLoRAError, match="full mode"):
        native_train.LoraModelLoader.execute(run[0], full_mode_lora, 1.0)


def test_other_loras_are_refused(pack, folders):
    alien = {"diffusion_model.input_blocks.0.0.lora_up.weight": torch.zeros(4, 4)}
    with pytest.raises(ExVideoError, match="not a LoRA of ExVideo's temporal layers"):
        pack["nodes_train"].ExVideoSaveLoRA.execute(alien, "loras/alien", "fp32")


@pytest.mark.parametrize("prefix", ["../escape", "/tmp/escape", "loras/../../escape"])
def test_prefix_stays_inside_the_output_folder(pack, folders, run, prefix):
    before = set(folders.parent.rglob("*"))
    with pytest.raises(ExVideoError, match="outside the output folder"):
        pack["nodes_train"].ExVideoSaveLoRA.execute(run[3], prefix, "fp32")
    assert set(folders.parent.rglob("*")) == before



def test_every_input_has_a_tooltip(pack):
    schema = pack["nodes_train"].ExVideoSaveLoRA.GET_SCHEMA()
    assert schema.is_output_node and all(item.tooltip for item in schema.inputs)
    train_outputs = pack["nodes_train"].ExVideoTrain.GET_SCHEMA().outputs
    # The native types, so Plot Loss Graph, Load LoRA Model and Save LoRA Weights connect.
    assert [o.io_type for o in train_outputs] == ["MODEL", "EXVIDEO", "LOSS_MAP", "LORA_MODEL"]
