"""The binary tensor table of an artifact: a few bytes per tensor, no names or shapes.

Names and shapes are not stored: the loader builds the model anyway, and the
plain model's tensors (:func:`compress._params.plain_tensors`, sorted by name)
give them. Only where structured pruning made a tensor smaller than built does
its shape follow its entry; each dimension is bounded by the built one, so a
file can never make the loader allocate more than the built model. A crc32 of
the stored tensors' ``"name:d0,d1;"`` list is kept, so a file loaded with the
wrong ``build_fn`` is refused before any byte is decoded.

Layout (all integers little-endian; a *varint* is unsigned LEB128)::

    flags      u8       bit 0: the payload is raw-deflate compressed; others 0
    signature  u32      crc32 of the tensors' names and shapes
    n_tensors  varint
    per tensor:
      kind     u8       index into KINDS; bit 7 (SHAPE_FOLLOWS): the shape follows
      enc      u8       index into _packing.ENCODINGS
      shape    varints  with SHAPE_FOLLOWS only: one per dimension of the built tensor,
                        each in [1, the built dimension]
      count    varint   entries stored; absent for "dense", whose count is the size

Each tensor's byte length follows from its kind, encoding, count and shape, so
offsets are implied by the running sum and nothing here can point outside the
payload.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from compress._packing import ENCODINGS

__all__ = [
    "FLAG_DEFLATE",
    "KINDS",
    "SHAPE_FOLLOWS",
    "Record",
    "parse_table",
    "signature",
    "table_bytes",
    "table_len_bound",
    "varint_len",
]

KINDS: tuple[tuple[str, int], ...] = (
    ("int", 2),
    ("int", 3),
    ("int", 4),
    ("int", 6),
    ("int", 8),
    ("f16", 16),
    ("f32", 32),
)
"""(kind, bits) by code: ``"int"`` is k-bit codes ``q + qmax`` after one fp16 scale
per output channel; ``"f16"``/``"f32"`` are raw IEEE bits. New kinds append."""

FLAG_DEFLATE = 0x01
SHAPE_FOLLOWS = 0x80
_MAX_VARINT = 5  # 35 bits: far above any tensor, and a bound on what a reader consumes


@dataclass(frozen=True)
class Record:
    """One tensor's entry: its kind and bits, its encoding and its stored entry count.

    ``shape`` is set when the tensor's shape differs from the built model's.
    """

    kind: str
    bits: int
    enc: str
    count: int
    shape: tuple[int, ...] | None = None


def signature(tensors: Sequence[tuple[str, tuple[int, ...]]]) -> int:
    """crc32 of the ``"name:d0,d1;"`` list: what the table's tensors must be."""
    text = "".join(f"{name}:{','.join(map(str, shape))};" for name, shape in tensors)
    return zlib.crc32(text.encode("utf-8"))


def varint_len(value: int) -> int:
    """Bytes of ``value`` as an unsigned LEB128 varint."""
    return max(1, (value.bit_length() + 6) // 7)


def table_bytes(records: Sequence[Record], *, sig: int, flags: int) -> bytes:
    """The serialized table."""
    out = bytearray([flags]) + sig.to_bytes(4, "little") + _varint(len(records))
    for r in records:
        code = KINDS.index((r.kind, r.bits)) | (SHAPE_FOLLOWS if r.shape is not None else 0)
        out += bytes([code, ENCODINGS.index(r.enc)])
        for d in r.shape or ():
            out += _varint(d)
        if r.enc != "dense":
            out += _varint(r.count)
    return bytes(out)


def table_len_bound(sizes: Sequence[int], shapes: Sequence[tuple[int, ...]] = ()) -> int:
    """Longest table for tensors of ``sizes`` elements, ``shapes`` of them stored.

    A stored count never exceeds its tensor's size.
    """
    shape_len = sum(varint_len(d) for shape in shapes for d in shape)
    return 1 + 4 + varint_len(len(sizes)) + sum(2 + varint_len(n) for n in sizes) + shape_len


def parse_table(
    data: bytes, shapes: Sequence[tuple[int, ...]]
) -> tuple[int, int, list[Record], int]:
    """``(flags, signature, records, bytes read)`` from ``data``, which starts with a table.

    ``shapes`` are the built model's tensor shapes, in order; a stored shape
    must have as many dimensions, none larger.

    Raises:
        ValueError: If the table is truncated, or a field is out of range.
    """
    if len(data) < 5:
        raise ValueError("the tensor table is truncated")
    flags, sig, pos = data[0], int.from_bytes(data[1:5], "little"), 5
    if flags & ~FLAG_DEFLATE:
        raise ValueError(f"table flags 0x{flags:02x} have unknown bits set")
    n, pos = _read_varint(data, pos)
    if n != len(shapes):
        raise ValueError(f"the table lists {n} tensors, the built model has {len(shapes)}")
    records = []
    for i, built in enumerate(shapes):
        if pos + 2 > len(data):
            raise ValueError("the tensor table is truncated")
        code, enc_code = data[pos] & ~SHAPE_FOLLOWS, data[pos + 1]
        follows = bool(data[pos] & SHAPE_FOLLOWS)
        pos += 2
        if code >= len(KINDS) or enc_code >= len(ENCODINGS):
            raise ValueError(
                f"tensor {i}: kind code {code} or encoding code {enc_code} "
                f"is out of range ({len(KINDS)} kinds, {len(ENCODINGS)} encodings)"
            )
        shape: tuple[int, ...] | None = None
        if follows:
            dims = []
            for _ in built:
                d, pos = _read_varint(data, pos)
                dims.append(d)
            shape = tuple(dims)
            if not built or not all(1 <= d <= b for d, b in zip(shape, built, strict=True)):
                raise ValueError(
                    f"tensor {i}: shape override {shape} does not fit the built shape {built}"
                )
        size = math.prod(shape if shape is not None else built)
        enc, count = ENCODINGS[enc_code], size
        if enc != "dense":
            count, pos = _read_varint(data, pos)
            if count > size:
                raise ValueError(f"tensor {i}: count {count} exceeds its {size} elements")
        records.append(Record(*KINDS[code], enc, count, shape))
    return flags, sig, records, pos


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(_MAX_VARINT):
        if pos + i >= len(data):
            raise ValueError("the tensor table is truncated")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise ValueError(f"a varint in the tensor table is longer than {_MAX_VARINT} bytes")
