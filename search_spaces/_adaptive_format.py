"""The adaptive package's file: one file, no pickle, every byte counted.

Layout: ``MAGIC`` (8 bytes), the header's length as a little-endian ``u32``, a compact
ASCII JSON header (raw-deflated), then the blobs it lists, back to back::

    {"format": "downsize-adaptive", "version": 1,
     "space": ..., "space_cfg": {...}, "spec": {...},   # what rebuilds any point
     "shared_arch": {...}, "nested": true,              # the arch the shared copy is of
     "points": [{"name": "p0", "arch": {...}, "compression": [...], ...}, ...],
     "bn_refs": {"p0": "p3", "p3": null, ...},
     "blobs": [{"name": "shared", "length": N, "deflate": false}, ...]}

The ``shared`` blob is a complete ``.dsz`` artifact of ``shared_arch`` (the compressed
weights every point is derived from; ``compress.load`` reads it). A ``bn.<point>``
blob holds one point's BatchNorm statistics in 8 bits (``_adaptive_bn``), against the
point the header's ``bn_refs`` names (or none), raw-deflated when smaller. A point
whose statistics are the shared copy's has no blob. A ``masks`` blob holds the
points' nested pruning masks (``_adaptive_masks``).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from typing import Any

__all__ = ["FORMAT", "MAGIC", "VERSION", "read_package", "write_package"]

MAGIC = b"DWNSZA\x00\x01"
FORMAT = "downsize-adaptive"
VERSION = 2  # 2: BatchNorm statistics in 8 bits against a reference (1: fp16)
_PREFIX = len(MAGIC) + 4


def write_package(
    path: str | os.PathLike[str], header: dict[str, Any], blobs: dict[str, bytes]
) -> int:
    """Write ``header`` (without its ``format``/``version``/``blobs``) and ``blobs``;
    returns the bytes written."""
    table, payload = [], []
    for name, data in blobs.items():
        packed = _deflate(data)
        deflate = len(packed) < len(data)
        chunk = packed if deflate else data
        table.append({"name": name, "length": len(chunk), "deflate": deflate})
        payload.append(chunk)
    full = {"format": FORMAT, "version": VERSION, **header, "blobs": table}
    # The header (the points' figures, their architectures) is text: deflated.
    raw = _deflate(json.dumps(full, separators=(",", ":"), ensure_ascii=True).encode("ascii"))
    data = MAGIC + struct.pack("<I", len(raw)) + raw + b"".join(payload)
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return len(data)


def read_package(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The header and the (inflated) blobs of a package.

    Raises:
        ValueError: one line, if the file is not a valid package.
    """
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < _PREFIX or data[: len(MAGIC)] != MAGIC:
        raise ValueError(f"{path} is not a downsize adaptive package (bad magic bytes)")
    (hlen,) = struct.unpack("<I", data[len(MAGIC) : _PREFIX])
    if hlen > len(data) - _PREFIX:
        raise ValueError(f"{path}: header length {hlen} exceeds the file size {len(data)}")
    try:
        header = json.loads(_inflate(data[_PREFIX : _PREFIX + hlen]).decode("ascii"))
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: the header is not valid JSON ({err})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} header")
    if header.get("version") != VERSION:
        raise ValueError(
            f"{path}: version={header.get('version')!r} is not supported (expected {VERSION})"
        )
    blobs: dict[str, bytes] = {}
    offset = _PREFIX + hlen
    for entry in header.get("blobs", []):
        chunk = data[offset : offset + int(entry["length"])]
        if len(chunk) != int(entry["length"]):
            raise ValueError(f"{path}: blob {entry['name']!r} is truncated")
        offset += len(chunk)
        try:
            blobs[entry["name"]] = _inflate(chunk) if entry["deflate"] else chunk
        except zlib.error as err:
            raise ValueError(f"{path}: blob {entry['name']!r} is corrupt ({err})") from None
    if offset != len(data):
        raise ValueError(f"{path}: {len(data) - offset} bytes after the last blob")
    return header, blobs


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj(-15)
    return d.decompress(data) + d.flush()
