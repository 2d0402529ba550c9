"""Flax checkpoints (flax.serialization's msgpack format) read with the `msgpack` package — no jax or flax.

Flax writes a checkpoint as one msgpack map (the state dict: nested string-keyed maps), with arrays as msgpack
extension objects: code 1 holds a nested msgpack array [shape, dtype name, C-order bytes]; code 3 is a numpy
scalar in the same form; code 2 a Python complex as [real, imag]. Arrays bigger than 2**30 bytes are split into
{'__msgpack_chunked_array__': True, 'shape': {...}, 'chunks': {'0': ..., ...}}.

msgpack (the `convert` extra) does the parsing and its own limits (lengths checked against the buffer, bounded
nesting); this module turns the extensions into numpy arrays with their shape and byte count checked, so a
damaged or hostile file fails with one CheckpointError line.
"""

from __future__ import annotations

import numpy as np

from vivitcli.errors import CheckpointError

EXT_NDARRAY = 1
EXT_COMPLEX = 2
EXT_NPSCALAR = 3
CHUNKED = "__msgpack_chunked_array__"
MAX_DEPTH = 256


class _Malformed(Exception):
    pass


def _msgpack():
    try:
        import msgpack
    except ImportError:
        raise CheckpointError("reading a Flax (Scenic) checkpoint needs the msgpack package",
                              hint="pip install 'vivitcli[convert]'") from None
    return msgpack


def _ndarray(payload: bytes) -> np.ndarray:
    msgpack = _msgpack()
    try:
        fields = msgpack.unpackb(payload, raw=False, max_bin_len=len(payload), max_str_len=256,
                                 max_array_len=64, max_map_len=0, max_ext_len=0)
    except (ValueError, msgpack.UnpackException, msgpack.ExtraData) as err:
        raise _Malformed(f"an array extension that does not decode ({err})") from None
    if not (isinstance(fields, (list, tuple)) and len(fields) == 3):
        raise _Malformed("an array extension that is not [shape, dtype, bytes]")
    shape, dtype_name, data = fields
    if isinstance(dtype_name, bytes):
        dtype_name = dtype_name.decode("ascii", "replace")
    if not (isinstance(shape, (list, tuple)) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise _Malformed(f"array shape {shape!r}")
    if not isinstance(data, bytes):
        raise _Malformed("array data that is not bytes")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if dtype_name == "bfloat16":
        # numpy has no bfloat16: widen exactly to float32 (bf16 is the top half of an f32).
        raw = _frombuffer(data, np.dtype("<u2"), count)
        return (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)
    try:
        dtype = np.dtype(str(dtype_name))
    except TypeError:
        raise _Malformed(f"array dtype {dtype_name!r}") from None
    if dtype.hasobject or dtype.fields is not None:
        raise _Malformed(f"array dtype {dtype_name!r}")
    return _frombuffer(data, dtype, count).reshape(shape)


def _frombuffer(data: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    if count * dtype.itemsize != len(data):
        raise _Malformed(f"array of {count} x {dtype} does not match its {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, count=count)


def _ext_hook(code: int, payload: bytes):
    if code in (EXT_NDARRAY, EXT_NPSCALAR):
        array = _ndarray(payload)
        return array if code == EXT_NDARRAY else array.reshape(())
    if code == EXT_COMPLEX:
        parts = _msgpack().unpackb(payload, raw=False)
        if not (isinstance(parts, (list, tuple)) and len(parts) == 2):
            raise _Malformed("a complex extension that is not [real, imag]")
        return complex(parts[0], parts[1])
    raise _Malformed(f"unknown msgpack extension type {code}")


def _unchunk(tree, depth: int = 0):
    """Undo flax's chunking of arrays over 2**30 bytes."""
    if depth > MAX_DEPTH:
        raise _Malformed("nesting deeper than any checkpoint")
    if not isinstance(tree, dict):
        return tree
    if tree.get(CHUNKED) is True:
        try:
            shape = tuple(int(tree["shape"][str(i)]) for i in range(len(tree["shape"])))
            chunks = [tree["chunks"][str(i)] for i in range(len(tree["chunks"]))]
            return np.concatenate([np.asarray(c).reshape(-1) for c in chunks]).reshape(shape)
        except (KeyError, TypeError, ValueError) as err:
            raise _Malformed(f"a chunked array that does not reassemble ({err})") from None
    return {k: _unchunk(v, depth + 1) for k, v in tree.items()}


def loads(data: bytes):
    """Decode flax msgpack bytes into nested dicts with numpy array leaves (flax.serialization.msgpack_restore)."""
    msgpack = _msgpack()
    try:
        # strict_map_key=False: flax writes string keys, but a step counter map may use ints. Lengths are
        # bounded by the buffer itself (msgpack's defaults scale with len(data)).
        value = msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, strict_map_key=False, use_list=True)
        if not isinstance(value, dict):
            raise _Malformed(f"the top level is a {type(value).__name__}, not a map of parameters")
        return _unchunk(value)
    except _Malformed as err:
        raise CheckpointError(f"not a readable Flax msgpack checkpoint: {err}") from None
    except msgpack.ExtraData as err:
        raise CheckpointError(f"not a readable Flax msgpack checkpoint: {len(err.extra)} bytes of trailing "
                              "data") from None
    except msgpack.FormatError:
        raise CheckpointError("not a readable Flax msgpack checkpoint: bytes that are not msgpack data") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as err:
        text = str(err) or type(err).__name__
        if "incomplete" in text.lower():
            text = "truncated (the file ends inside a value)"
        elif "exceeds max_" in text:
            text = f"a length that cannot fit in the file ({text})"
        raise CheckpointError(f"not a readable Flax msgpack checkpoint: {text}") from None


def load(path):
    """Read a Flax msgpack checkpoint file; errors name the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        return loads(data)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err.message}", hint=err.hint) from None


def looks_like_msgpack_map(head: bytes) -> bool:
    """A Flax checkpoint starts with a msgpack map (fixmap, map16 or map32)."""
    return bool(head) and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF))
