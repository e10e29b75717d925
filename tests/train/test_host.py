"""Readying ComfyUI for the training CLI: where it is looked for, and a clear error when it is nowhere."""

import sys

import pytest
import torch

from exvideo_core.train import host


def test_comfyui_path_comes_first_then_the_comfyui_the_pack_is_in_then_setup_sh_s(monkeypatch, tmp_path):
    monkeypatch.setenv("COMFYUI_PATH", str(tmp_path))
    candidates = host.comfyui_candidates()
    assert candidates[0] == tmp_path
    assert candidates[1:] == [host.PACK_ROOT.parent.parent, host.PACK_ROOT / ".comfyui"]


def test_inside_a_process_that_chose_its_device_that_choice_stands():
    import comfy.model_management

    assert host.prepare_host(cpu=True) == comfy.model_management.get_torch_device()


def test_no_comfyui_anywhere_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "comfy.model_management")
    monkeypatch.setitem(sys.modules, "comfy.cli_args", None)  # `import comfy.cli_args` now fails
    monkeypatch.setattr(host, "comfyui_candidates", lambda: [tmp_path / "nowhere"])
    before = list(sys.path)
    with pytest.raises(host.HostNotFoundError, match="ComfyUI was not found .*COMFYUI_PATH"):
        host.prepare_host(cpu=True)
    assert sys.path == before


def test_the_cpu_flag_is_set_before_comfy_chooses(monkeypatch):
    import comfy.cli_args

    monkeypatch.delitem(sys.modules, "comfy.model_management")
    monkeypatch.setattr(comfy.cli_args.args, "cpu", False)
    assert host.prepare_host(cpu=True) == torch.device("cpu")
    assert comfy.cli_args.args.cpu is True
