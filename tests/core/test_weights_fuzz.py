"""Fuzzing the extension loader: mutated safetensors headers, shapes, dtypes, keys and bytes.

Every input must either load as a valid extension or raise our `ExVideoError`
(never another exception type), and nothing is ever unpickled. Bounded by
`max_examples`; about half a minute per strategy on
one CPU core.
"""

import json
import pickle
import struct

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from exvideo_core import ExVideoError, ExVideoWeights, load_exvideo
from exvideo_core.safetensors_io import save
from exvideo_harness.exvideo_files import SMALL, random_exvideo_state_dict

# No shrinking: it re-runs the loader hundreds of times; the failing draws are reported all the same.
FUZZ = settings(max_examples=40, deadline=None, database=None,
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

DTYPES = ["F16", "F32", "F64", "BF16", "I8", "I16", "I32", "I64", "U8", "U16", "BOOL", "F8_E4M3", "F8_E5M2",
          "XX", "", 5, None]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=8)


class _Trap:
    """Unpickling this creates `marker`: proof that nothing is ever unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class FileBytes(bytes):
    """A file's bytes that hypothesis reports by name, not by its megabytes of content."""

    def __repr__(self):
        return f"<{len(self)} bytes of a valid extension file>"


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "valid.safetensors"
    save(random_exvideo_state_dict(2, seed=1, dtype=torch.float16, **SMALL), path)
    return FileBytes(path.read_bytes())


def split(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]), data[8 + length:]


def join(header, body: bytes) -> bytes:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(raw)) + raw + body


def load_or_refuse(tmp_path, data: bytes, name: str = "fuzzed.safetensors"):
    """Loads `data` as an extension file: a valid result, or our error. Anything else fails the test."""
    path = tmp_path / name
    path.write_bytes(data)
    try:
        weights = load_exvideo(path)
    except ExVideoError as e:
        assert str(e), "an error must say what is wrong"
        return None
    assert isinstance(weights, ExVideoWeights) and weights.num_frames >= 1
    return weights


@FUZZ
@given(data=st.data())
def test_mutated_header_entries(tmp_path, valid_bytes, data):
    """One tensor's dtype, shape or offsets replaced, or the entry itself replaced, dropped or renamed."""
    header, body = split(valid_bytes)
    name = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
    entry = dict(header[name])
    field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "entry", "drop", "rename", "extra"]))
    if field == "dtype":
        entry["dtype"] = data.draw(st.sampled_from(DTYPES))
    elif field == "shape":
        entry["shape"] = data.draw(st.lists(st.integers(-3, 2**62), max_size=6) | JSON_VALUES)
    elif field == "data_offsets":
        entry["data_offsets"] = data.draw(st.lists(st.integers(-2**64, 2**64), max_size=3) | JSON_VALUES)
    if field == "entry":
        header[name] = data.draw(JSON_VALUES)
    elif field == "drop":
        del header[name]
    elif field == "rename":
        header[data.draw(st.text(max_size=40))] = header.pop(name)
    elif field == "extra":
        header[data.draw(st.text(max_size=40))] = entry
    else:
        header[name] = entry
    load_or_refuse(tmp_path, join(header, body))


@FUZZ
@given(padding=st.integers(0, 1024))
def test_valid_file_with_any_header_length_loads(tmp_path, valid_bytes, padding):
    """Header lengths are multiples of 8, so the first length byte is 0x80 (a pickle's first byte) in 1 of 32."""
    header, body = split(valid_bytes)
    raw = json.dumps(header).encode()
    raw += b" " * ((-len(raw)) % 8 + 8 * padding)
    assert load_or_refuse(tmp_path, join(raw, body)) is not None


def test_header_length_starting_with_the_pickle_byte_loads(tmp_path, valid_bytes):
    header, body = split(valid_bytes)
    raw = json.dumps(header).encode()
    raw += b" " * ((0x80 - len(raw)) % 256)
    assert len(raw) % 256 == 0x80
    assert load_or_refuse(tmp_path, join(raw, body)) is not None


@FUZZ
@given(metadata=JSON_VALUES)
def test_mutated_metadata(tmp_path, valid_bytes, metadata):
    header, body = split(valid_bytes)
    header["__metadata__"] = metadata
    load_or_refuse(tmp_path, join(header, body))


@FUZZ
@given(data=st.data())
def test_mutated_bytes(tmp_path, valid_bytes, data):
    """Length prefix, header text and body bytes overwritten, truncated or extended at random places."""
    raw = bytearray(valid_bytes)
    kind = data.draw(st.sampled_from(["length", "header_bytes", "truncate", "append", "flip"]))
    if kind == "length":
        raw[:8] = struct.pack("<Q", data.draw(st.integers(0, 2**64 - 1)))
    elif kind == "header_bytes":
        (length,) = struct.unpack("<Q", raw[:8])
        start = data.draw(st.integers(8, 8 + length - 1))
        garbage = data.draw(st.binary(min_size=1, max_size=64))
        raw[start:start + len(garbage)] = garbage
    elif kind == "truncate":
        del raw[data.draw(st.integers(0, len(raw) - 1)):]
    elif kind == "append":
        raw += data.draw(st.binary(min_size=1, max_size=256))
    else:
        for position in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=16)):
            raw[position] ^= 0xFF
    load_or_refuse(tmp_path, bytes(raw))


@FUZZ
@given(header=st.binary(max_size=512) | JSON_VALUES.map(lambda v: json.dumps(v).encode()),
       body=st.binary(max_size=256))
def test_arbitrary_header_and_body(tmp_path, header, body):
    load_or_refuse(tmp_path, join(header, body))


@pytest.fixture(scope="module")
def valid_state():
    return random_exvideo_state_dict(2, seed=2, dtype=torch.float16, **SMALL)


@FUZZ
@given(data=st.data())
def test_mutated_shapes_of_valid_tensors(tmp_path, valid_state, data):
    """Well-formed files whose tensors have the wrong shapes, dtypes, values or key sets."""
    state = dict(valid_state)
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(st.sampled_from(sorted(state)))
        change = data.draw(st.sampled_from(["reshape", "dtype", "nan", "drop", "scalar"]))
        value = state[key]
        if change == "reshape":
            shape = data.draw(st.lists(st.integers(0, 8), min_size=0, max_size=5))
            state[key] = torch.zeros(shape, dtype=value.dtype)
        elif change == "dtype":
            dtype = data.draw(st.sampled_from([torch.int64, torch.uint8, torch.bool, torch.bfloat16, torch.float64,
                                               torch.float8_e4m3fn, torch.float8_e5m2]))
            state[key] = value.to(dtype)
        elif change == "nan" and value.is_floating_point() and value.numel():
            # Through fp32: no in-place fill is implemented for the float8 dtypes a previous draw may have made.
            flat = value.float().flatten()
            flat[0] = float("nan")
            state[key] = flat.view(value.shape).to(value.dtype)
        elif change == "drop":
            del state[key]
        else:
            state[key] = torch.tensor(1.0)
    path = tmp_path / "shapes.safetensors"
    save(state, path)
    load_or_refuse(tmp_path, path.read_bytes(), "shapes.safetensors")


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("name", ["trap.safetensors", "trap.ckpt"])
def test_pickles_in_any_protocol_are_never_unpickled(tmp_path, protocol, name):
    """Protocol 0 has no binary magic: the header check refuses it all the same, without unpickling."""
    marker = tmp_path / "unpickled"
    path = tmp_path / name
    path.write_bytes(pickle.dumps(_Trap(marker), protocol=protocol))
    with pytest.raises(ExVideoError):
        load_exvideo(path)
    assert not marker.exists()
