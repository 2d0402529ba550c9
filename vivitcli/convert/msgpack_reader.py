"""A small, pure-Python reader for Flax checkpoints (flax.serialization's msgpack format).

Flax writes a checkpoint as one msgpack map (the state dict: nested string-keyed maps), with arrays as
msgpack extension objects: code 1 holds a nested msgpack array [shape, dtype name, C-order bytes]; code 3 is
a numpy scalar in the same form; code 2 a Python complex as [real, imag]. Arrays bigger than 2**30 bytes are
split into {'__msgpack_chunked_array__': True, 'shape': {...}, 'chunks': {'0': ..., ...}}.

This reader needs only numpy (no jax, flax or msgpack): the released Scenic checkpoints convert anywhere.
It checks every length against the buffer and bounds the nesting depth, so a damaged or hostile file fails
with a CheckpointError instead of hanging, recursing without end or reading past the end.
"""

from __future__ import annotations

import struct

import numpy as np

from vivitcli.errors import CheckpointError

EXT_NDARRAY = 1
EXT_COMPLEX = 2
EXT_NPSCALAR = 3
CHUNKED = "__msgpack_chunked_array__"
MAX_DEPTH = 256

_FIXED = {
    0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
    0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
    0xCA: ">f", 0xCB: ">d",
}


class _Malformed(Exception):
    pass


class _Reader:
    def __init__(self, data):
        self.buf = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise _Malformed(f"truncated at byte {self.pos} (needs {n} more bytes)")
        out = self.buf[self.pos:end]
        self.pos = end
        return out

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def read(self, depth: int = 0):
        if depth > MAX_DEPTH:
            raise _Malformed("nesting deeper than any checkpoint")
        b = self.take(1)[0]
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0x80 <= b <= 0x8F:
            return self.read_map(b & 0x0F, depth)
        if 0x90 <= b <= 0x9F:
            return self.read_array(b & 0x0F, depth)
        if 0xA0 <= b <= 0xBF:
            return self.read_str(b & 0x1F)
        if b == 0xC0:
            return None
        if b == 0xC2:
            return False
        if b == 0xC3:
            return True
        if b in _FIXED:
            return self.unpack(_FIXED[b])
        if b in (0xC4, 0xC5, 0xC6):  # bin 8/16/32
            return bytes(self.take(self.unpack(">" + "BHI"[b - 0xC4])))
        if b in (0xD9, 0xDA, 0xDB):  # str 8/16/32
            return self.read_str(self.unpack(">" + "BHI"[b - 0xD9]))
        if b in (0xDC, 0xDD):  # array 16/32
            return self.read_array(self.unpack(">" + "HI"[b - 0xDC]), depth)
        if b in (0xDE, 0xDF):  # map 16/32
            return self.read_map(self.unpack(">" + "HI"[b - 0xDE]), depth)
        if b in (0xD4, 0xD5, 0xD6, 0xD7, 0xD8):  # fixext 1/2/4/8/16
            size = 1 << (b - 0xD4)
            return self.read_ext(size, depth)
        if b in (0xC7, 0xC8, 0xC9):  # ext 8/16/32
            return self.read_ext(self.unpack(">" + "BHI"[b - 0xC7]), depth)
        raise _Malformed(f"byte 0x{b:02x} at {self.pos - 1} is not a msgpack type")

    def read_str(self, n: int) -> str:
        raw = self.take(n)
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError:
            raise _Malformed(f"invalid UTF-8 string at byte {self.pos - n}") from None

    def read_array(self, n: int, depth: int) -> list:
        if n > len(self.buf) - self.pos:  # every element takes at least one byte
            raise _Malformed(f"array of {n} items cannot fit in the file")
        return [self.read(depth + 1) for _ in range(n)]

    def read_map(self, n: int, depth: int) -> dict:
        if 2 * n > len(self.buf) - self.pos:
            raise _Malformed(f"map of {n} entries cannot fit in the file")
        out = {}
        for _ in range(n):
            key = self.read(depth + 1)
            if isinstance(key, (list, dict)):
                raise _Malformed("a map key that is a container")
            out[key] = self.read(depth + 1)
        return out

    def read_ext(self, size: int, depth: int):
        code = struct.unpack(">b", self.take(1))[0]
        payload = self.take(size)
        if code in (EXT_NDARRAY, EXT_NPSCALAR):
            array = _ndarray_from_payload(payload, depth)
            return array if code == EXT_NDARRAY else array.reshape(())
        if code == EXT_COMPLEX:
            parts = _Reader(payload).read(depth + 1)
            return complex(parts[0], parts[1])
        raise _Malformed(f"unknown msgpack extension type {code}")


def _ndarray_from_payload(payload: memoryview, depth: int) -> np.ndarray:
    fields = _Reader(payload).read(depth + 1)
    if not (isinstance(fields, list) and len(fields) == 3):
        raise _Malformed("an array extension that is not [shape, dtype, bytes]")
    shape, dtype_name, data = fields
    if isinstance(dtype_name, bytes):
        dtype_name = dtype_name.decode("ascii", "replace")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise _Malformed(f"array shape {shape!r}")
    if not isinstance(data, bytes):
        raise _Malformed("array data that is not bytes")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if dtype_name == "bfloat16":
        # numpy has no bfloat16: widen exactly to float32 (bf16 is the top half of an f32).
        raw = _frombuffer(data, np.dtype("<u2"), count)
        return (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)
    try:
        dtype = np.dtype(dtype_name)
    except TypeError:
        raise _Malformed(f"array dtype {dtype_name!r}") from None
    if dtype.hasobject or dtype.fields is not None:
        raise _Malformed(f"array dtype {dtype_name!r}")
    return _frombuffer(data, dtype, count).reshape(shape)


def _frombuffer(data: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    if count * dtype.itemsize != len(data):
        raise _Malformed(f"array of {count} x {dtype} does not match its {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, count=count)


def _unchunk(tree):
    """Undo flax's chunking of arrays over 2**30 bytes."""
    if not isinstance(tree, dict):
        return tree
    if tree.get(CHUNKED) is True:
        try:
            shape = tuple(int(tree["shape"][str(i)]) for i in range(len(tree["shape"])))
            chunks = [tree["chunks"][str(i)] for i in range(len(tree["chunks"]))]
            return np.concatenate([np.asarray(c).reshape(-1) for c in chunks]).reshape(shape)
        except (KeyError, TypeError, ValueError) as err:
            raise _Malformed(f"a chunked array that does not reassemble ({err})") from None
    return {k: _unchunk(v) for k, v in tree.items()}


def loads(data) -> object:
    """Decode flax msgpack bytes into nested dicts with numpy array leaves (flax.serialization.msgpack_restore)."""
    reader = _Reader(data)
    try:
        value = reader.read()
        if reader.pos != len(reader.buf):
            raise _Malformed(f"{len(reader.buf) - reader.pos} bytes of trailing data")
        return _unchunk(value)
    except _Malformed as err:
        raise CheckpointError(f"not a readable Flax msgpack checkpoint: {err}") from None


def load(path) -> object:
    """Read a Flax msgpack checkpoint file; errors name the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        return loads(data)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err.message}") from None


def looks_like_msgpack_map(head: bytes) -> bool:
    """A Flax checkpoint starts with a msgpack map (fixmap, map16 or map32)."""
    return bool(head) and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF))
