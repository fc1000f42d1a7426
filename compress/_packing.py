"""Bit packing and the sparse encodings of one weight tensor.

A tensor is a flat array of ``n`` unsigned ``k``-bit *words* (integer codes, or
the raw bits of fp16/fp32 values) in which one word means zero. It is stored in
whichever of these is smallest:

- ``dense``: all ``n`` words, packed at ``k`` bits.
- ``bmask``: a 1-bit-per-position mask of nonzero words, then the nonzero words.
- ``relGG``: relative indexing as in Deep Compression (Han et al., 2016): each
  nonzero word with the gap to the previous one in ``GG`` bits; a gap that
  overflows is bridged with filler entries holding the zero word.

16- and 32-bit words (fp16/fp32 bits) are packed as byte planes, which leaves
their size unchanged but lets the artifact's deflate stage find the repetitive
sign and exponent bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ENCODINGS",
    "GAP_BITS",
    "Encoded",
    "decode",
    "encode",
    "encoded_len",
    "pack",
    "packed_len",
    "unpack",
]

GAP_BITS: tuple[int, ...] = tuple(range(2, 13))
ENCODINGS: tuple[str, ...] = ("dense", "bmask", *(f"rel{g:02d}" for g in GAP_BITS))

_CHUNK = 1 << 20  # values per step: bounds the 8x-larger bit arrays in memory


@dataclass(frozen=True)
class Encoded:
    """One encoded tensor: the encoding, its entry count and its bytes."""

    enc: str
    count: int
    data: bytes


def packed_len(count: int, k: int) -> int:
    """Bytes taken by ``count`` words of ``k`` bits."""
    return (count * k + 7) // 8


def pack(words: np.ndarray, k: int) -> bytes:
    """Pack unsigned words (each ``< 2**k``) at exactly ``k`` bits each, little-endian."""
    words = np.asarray(words, dtype=np.uint64).ravel()
    if k == 8:
        return words.astype("<u1").tobytes()
    if k in (16, 32):
        # Byte planes (all low bytes, then the next...): the same bytes, ordered so
        # that the payload's deflate stage sees the similar exponent bytes together.
        return words.astype(f"<u{k // 8}").view(np.uint8).reshape(-1, k // 8).T.tobytes()
    shifts = np.arange(k, dtype=np.uint64)
    parts = []
    for start in range(0, words.size, _CHUNK):  # _CHUNK * k bits is whole bytes
        bits = ((words[start : start + _CHUNK, None] >> shifts) & np.uint64(1)).astype(np.uint8)
        parts.append(np.packbits(bits.ravel(), bitorder="little").tobytes())
    return b"".join(parts)


def unpack(data: bytes, k: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``count`` words as ``uint64``."""
    if len(data) != packed_len(count, k):
        raise ValueError(f"{len(data)} bytes cannot hold exactly {count} words of {k} bits")
    if k == 8:
        return np.frombuffer(data, dtype="<u1", count=count).astype(np.uint64)
    if k in (16, 32):
        planes = np.frombuffer(data, dtype=np.uint8).reshape(k // 8, count)
        return planes.T.copy().view(f"<u{k // 8}").ravel().astype(np.uint64)
    raw = np.frombuffer(data, dtype=np.uint8)
    shifts = np.arange(k, dtype=np.uint64)
    out = np.empty(count, dtype=np.uint64)
    chunk_bytes = _CHUNK * k // 8
    for i, start in enumerate(range(0, count, _CHUNK)):
        n = min(_CHUNK, count - start)
        bits = np.unpackbits(raw[i * chunk_bytes :], count=n * k, bitorder="little")
        out[start : start + n] = (bits.reshape(n, k).astype(np.uint64) << shifts).sum(axis=1)
    return out


def encoded_len(enc: str, count: int, n: int, k: int) -> int:
    """Bytes of a tensor of ``n`` words of ``k`` bits stored as ``enc`` with ``count`` entries."""
    if enc == "dense":
        return packed_len(n, k)
    if enc == "bmask":
        return packed_len(n, 1) + packed_len(count, k)
    g = int(enc[3:])
    return packed_len(count, g) + packed_len(count, k)


def encode(words: np.ndarray, zero: int, k: int) -> Encoded:
    """Store ``words`` in the smallest encoding (ties go to the earlier in :data:`ENCODINGS`)."""
    words = np.asarray(words, dtype=np.uint64).ravel()
    n = words.size
    pos = np.flatnonzero(words != np.uint64(zero))
    # Zeros skipped before each nonzero word; a gap of g bits bridges 2**g of them.
    skipped = np.diff(pos, prepend=-1) - 1
    counts = {"dense": n, "bmask": pos.size}
    for g in GAP_BITS:
        counts[f"rel{g:02d}"] = pos.size + int((skipped >> g).sum())
    enc = min(ENCODINGS, key=lambda e: (encoded_len(e, counts[e], n, k), ENCODINGS.index(e)))
    count = counts[enc]
    if enc == "dense":
        return Encoded(enc, count, pack(words, k))
    if enc == "bmask":
        mask = np.packbits(words != np.uint64(zero), bitorder="little").tobytes()
        return Encoded(enc, count, mask + pack(words[pos], k))
    g = int(enc[3:])
    fillers = skipped >> g
    gaps = np.full(count, 2**g - 1, dtype=np.uint64)  # a filler advances 2**g positions
    codes = np.full(count, zero, dtype=np.uint64)
    last = np.cumsum(fillers + 1) - 1  # each nonzero word is its run's last entry
    gaps[last] = (skipped & (2**g - 1)).astype(np.uint64)
    codes[last] = words[pos]
    return Encoded(enc, count, pack(gaps, g) + pack(codes, k))


def decode(enc: str, count: int, data: bytes, n: int, k: int, zero: int) -> np.ndarray:
    """Inverse of :func:`encode`; raises ``ValueError`` on inconsistent input."""
    if enc not in ENCODINGS:
        raise ValueError(f"unknown encoding {enc!r}; allowed: {ENCODINGS}")
    if len(data) != encoded_len(enc, count, n, k):
        raise ValueError(f"{enc} data of {len(data)} bytes does not match {count} entries")
    if enc == "dense":
        if count != n:
            raise ValueError(f"dense entry count {count} is not the tensor size {n}")
        return unpack(data, k, n)
    out = np.full(n, zero, dtype=np.uint64)
    if enc == "bmask":
        head = packed_len(n, 1)
        mask = np.unpackbits(np.frombuffer(data[:head], np.uint8), count=n, bitorder="little")
        if int(mask.sum()) != count:
            raise ValueError(f"bitmask has {int(mask.sum())} set bits, header says {count}")
        out[mask.astype(bool)] = unpack(data[head:], k, count)
        return out
    g = int(enc[3:])
    head = packed_len(count, g)
    gaps = unpack(data[:head], g, count)
    pos = np.cumsum(gaps + np.uint64(1)) - np.uint64(1)
    if count and int(pos[-1]) >= n:
        raise ValueError(f"relative indices run past the end of a tensor of {n} values")
    out[pos.astype(np.int64)] = unpack(data[head:], k, count)
    return out
