"""The Flax msgpack reader (msgpack package + flax's array extensions) on plain values, arrays and bad input."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from tests.convert_formats import flax_msgpack_bytes
from vivitcli.convert import flax_msgpack
from vivitcli.errors import CheckpointError

PLAIN_VALUES = [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63),
    0.5, -1.25e300, True, False, None,
    "", "a", "é" * 40, "x" * 300, "y" * 70000,
    b"", b"\x00\xff", b"z" * 300, b"w" * 70000,
    [], [1, [2, [3, []]]], list(range(20)), list(range(70000)),
    {}, {"a": {"b": {"c": 1}}}, {str(i): i for i in range(20)}, {str(i): i for i in range(70000)},
]


@pytest.mark.parametrize("value", PLAIN_VALUES, ids=lambda v: f"{type(v).__name__}:{str(v)[:12]}")
def test_plain_values_decode_like_msgpack(value):
    data = msgpack.packb({"v": value}, use_bin_type=True)
    assert flax_msgpack.loads(data) == msgpack.unpackb(data, raw=False, strict_map_key=False)


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "int8", "int32", "int64", "uint8", "bool"])
def test_arrays_round_trip_in_flax_format(dtype):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 4, 5)) * 10).astype(dtype)
    tree = {"params": {"layer": {"kernel": arr, "empty": np.zeros((0, 3), dtype)}}, "step": np.int64(7),
            "scale": np.float32(0.5), "z": complex(1, -2)}
    out = flax_msgpack.loads(flax_msgpack_bytes(tree))
    np.testing.assert_array_equal(out["params"]["layer"]["kernel"], arr)
    assert out["params"]["layer"]["kernel"].dtype == np.dtype(dtype)
    assert out["params"]["layer"]["empty"].shape == (0, 3)
    assert out["step"] == 7 and out["step"].shape == () and out["scale"] == np.float32(0.5)
    assert out["z"] == complex(1, -2)


def test_bfloat16_arrays_widen_exactly():
    values = np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32)
    bf16_bits = (values.view(np.uint32) >> 16).astype(np.uint16)  # these values are exact in bfloat16
    payload = msgpack.packb(((4,), "bfloat16", bf16_bits.tobytes()), use_bin_type=True)
    data = msgpack.packb({"w": msgpack.ExtType(1, payload)})
    out = flax_msgpack.loads(data)["w"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, values)


def test_chunked_arrays_reassemble():
    arr = np.arange(50, dtype=np.float32).reshape(5, 10)
    out = flax_msgpack.loads(flax_msgpack_bytes({"a": {"b": arr}}, chunk=("a", "b")))
    np.testing.assert_array_equal(out["a"]["b"], arr)


@pytest.mark.parametrize("data,message", [
    (b"", "truncated"),
    (msgpack.packb({"a": [1, 2, 3]})[:-1], "truncated|cannot fit"),
    (msgpack.packb({"a": "abc"})[:-1], "truncated"),
    (b"\xc1", "not msgpack data"),
    (b"\xdf\xff\xff\xff\xff", "cannot fit"),
    (b"\x91" * 1000 + b"\x00", "not a map of parameters"),
    (msgpack.packb([1, 2]), "top level is a list"),
    (msgpack.packb({"a": 1}) + b"\x00", "trailing"),
    (msgpack.packb({"w": msgpack.ExtType(1, msgpack.packb(((4,), "float32", b"\0" * 8)))}), "does not match"),
    (msgpack.packb({"w": msgpack.ExtType(1, msgpack.packb(((1,), "object", b"\0" * 8)))}), "dtype"),
    (msgpack.packb({"w": msgpack.ExtType(9, b"")}), "unknown msgpack extension"),
])
def test_malformed_input_is_a_checkpoint_error(data, message):
    with pytest.raises(CheckpointError, match=message):
        flax_msgpack.loads(data)


def test_load_names_the_file(tmp_path):
    path = tmp_path / "ckpt"
    path.write_bytes(b"\x81\xa1")
    with pytest.raises(CheckpointError) as info:
        flax_msgpack.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
