"""Reading and writing safetensors files defensively.

Files come from users' model folders: they may be pickles (which can run
code, so they are refused without being unpickled), truncated downloads, or
something else entirely. Reading checks the header against the file size
before any tensor is touched; writing goes to a temporary file that replaces
the target only once complete, so an interrupted or failed save never leaves
a partial file under the real name.
"""

from __future__ import annotations

import json
import os
import pathlib
import struct

import safetensors.torch
import torch

from . import atomic_file
from .errors import CheckpointError

_MAX_HEADER_BYTES = 100 * 1024 * 1024
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save zip archive, raw pickle


def read_header(path: pathlib.Path) -> tuple[dict, dict[str, str]]:
    """The tensor table and metadata of a safetensors file, validated against its size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
        # A safetensors file's 8-byte header length may itself start with a pickle magic byte (0x80 is a
        # multiple of 8, as header lengths are): only a file that does not look like safetensors is a pickle.
        looks_safetensors = (len(head) == 9 and head[8:9] == b"{"
                             and struct.unpack("<Q", head[:8])[0] <= min(size - 8, _MAX_HEADER_BYTES))
        pickled = head.startswith(_PICKLE_MAGIC) and not looks_safetensors
        if pickled or path.suffix in (".ckpt", ".pt", ".pth", ".bin", ".pkl"):
            raise CheckpointError(
                f"{path.name} is a pickle checkpoint; pickles can run code when loaded, so they are never "
                f"opened here. Convert it to .safetensors (or download the .safetensors release) and try again.")
        if len(head) < 8:
            raise CheckpointError(f"{path.name} is not a safetensors file: it is only {size} bytes long.")
        (header_len,) = struct.unpack("<Q", head[:8])
        f.seek(8)
        if header_len > min(size - 8, _MAX_HEADER_BYTES):
            raise CheckpointError(
                f"{path.name} is not a valid safetensors file (its header claims {header_len} bytes "
                f"but the file has {size}); it may be truncated or another format.")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path.name} has a corrupt safetensors header ({e}).") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path.name} has a corrupt safetensors header (not a table of tensors).")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path.name} has a corrupt safetensors header (its metadata is not a table).")
    data_size = size - 8 - header_len
    for name, info in header.items():
        try:
            start, end = info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise CheckpointError(f"{path.name} has a corrupt entry for tensor {name!r}.") from None
        # The JSON may hold any value here: integers only (not bools, which Python compares as ints).
        if not all(type(offset) is int for offset in (start, end)):
            raise CheckpointError(f"{path.name} has a corrupt entry for tensor {name!r} (offsets {[start, end]}).")
        if not 0 <= start <= end <= data_size:
            raise CheckpointError(
                f"{path.name} is truncated or corrupt: tensor {name!r} ends at byte {end} of the data "
                f"section, which holds only {data_size} bytes. Download or save the file again.")
    return header, {str(k): str(v) for k, v in metadata.items()}


def load(path: str | os.PathLike, check_keys=None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file.

    `check_keys(names)` sees the tensor names from the header before any
    tensor is read, so a wrong multi-GB file is refused without loading it.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file.")
    header, metadata = read_header(path)
    if check_keys is not None:
        check_keys(header.keys())
    try:
        tensors = safetensors.torch.load_file(str(path), device="cpu")
    except Exception as e:  # the library's own checks, beyond ours
        raise CheckpointError(f"{path.name} could not be read as safetensors: {e}") from None
    return tensors, metadata


def save(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write atomically: the file appears complete under `path`, or not at all."""
    contiguous = {k: v.detach().contiguous() for k, v in tensors.items()}
    atomic_file.write_file(path, lambda tmp: safetensors.torch.save_file(contiguous, str(tmp), metadata=metadata),
                           library_errors=(safetensors.SafetensorError,))
