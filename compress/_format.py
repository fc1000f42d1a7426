"""The artifact format: one file, no pickle, every byte of a compressed model counted.

Layout: ``MAGIC`` (8 bytes), the header length as a little-endian ``u32``, the
header (compact ASCII JSON), then the payload. The header is
``{"format": "downsize", "version": 1, "meta": {...}, "tensors": [...]}`` where
``meta`` is the caller's dict (e.g. the architecture, to rebuild the model) and
each tensor record is ``{"name", "shape", "kind", "bits", "enc", "count", "off",
"len"}``: ``kind`` is ``"int"`` (k-bit codes ``q + qmax`` preceded by one fp32
scale per output channel), ``"f16"`` or ``"f32"`` (raw IEEE bits); ``enc`` and
``count`` say how the words are stored (see ``_packing``); ``off``/``len`` locate
the bytes in the payload.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compress._bits import INT_BITS
from compress._packing import ENCODINGS, decode, encode, encoded_len
from compress._params import plain_tensors
from compress._quant import dequantize, effective_weight

__all__ = ["MAGIC", "export", "header_bytes", "load", "read_meta", "size_bytes"]

MAGIC = b"DWNSZ\x00\x01\n"
_PREFIX = len(MAGIC) + 4
_KIND_BITS = {"f16": (16,), "f32": (32,), "int": INT_BITS}
_FIELDS = ("name", "shape", "kind", "bits", "enc", "count", "off", "len")


def header_bytes(meta: dict[str, Any], records: list[dict[str, Any]]) -> bytes:
    """The serialized header; shared with the size estimate so both agree byte for byte."""
    header = {"format": "downsize", "version": 1, "meta": meta, "tensors": records}
    try:
        return json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    except (TypeError, ValueError) as err:
        raise ValueError(f"meta must be a JSON-serializable dict: {err}") from None


def export(model: nn.Module, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None
           ) -> int:
    """Write ``model`` as it is evaluated (masks and quantization applied) to one file.

    Args:
        model: A model, compressed with :func:`compress.apply` or not.
        path: Where to write the artifact.
        meta: JSON-serializable dict stored in the header, e.g. the architecture
            that :func:`load`'s ``build_fn`` needs to rebuild the model.

    Returns:
        The number of bytes written (the artifact's size).
    """
    records: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    offset = 0
    for entry in plain_tensors(model):
        if entry.module is not None:
            bits, values, scale = effective_weight(entry.module)
        else:
            bits, values, scale = 32, entry.tensor.detach().float(), None
        kind, words, zero, head = _to_words(bits, values, scale)
        enc = encode(words, zero, bits)
        blob = head + enc.data
        records.append(dict(zip(_FIELDS, (
            entry.name, list(entry.tensor.shape), kind, bits, enc.enc, enc.count, offset, len(blob)
        ), strict=True)))
        blobs.append(blob)
        offset += len(blob)
    header = header_bytes(meta or {}, records)
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<I", len(header)) + header)
        for blob in blobs:
            f.write(blob)
    return _PREFIX + len(header) + offset


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``meta`` dict stored by :func:`export`, without reading the weights.

    Raises:
        ValueError: If the file is not a valid artifact.
    """
    header, _ = _read(path, header_only=True)
    return dict(header["meta"])


def load(path: str | os.PathLike[str], build_fn: Callable[[dict[str, Any]], nn.Module]
         ) -> nn.Module:
    """Rebuild a plain model from an artifact.

    Args:
        path: An artifact written by :func:`export`.
        build_fn: Builds the uncompressed model from the stored ``meta``.

    Returns:
        ``build_fn(meta)`` with the dequantized weights loaded: its outputs equal
        those of the compressed model that was exported.

    Raises:
        ValueError: If the file is not a valid artifact, or does not fit the model.
    """
    header, payload = _read(path, header_only=False)
    model = build_fn(dict(header["meta"]))
    expected = {t.name: tuple(t.tensor.shape) for t in plain_tensors(model)}
    names = [r["name"] for r in header["tensors"]]
    if sorted(names) != sorted(expected) or len(set(names)) != len(names):
        missing = sorted(set(expected) - set(names))[:3]
        extra = sorted(set(names) - set(expected))[:3]
        raise ValueError(f"{path}: tensors do not match the built model "
                         f"(missing {missing}, unexpected {extra})")
    state: dict[str, torch.Tensor] = {}
    for r in header["tensors"]:
        if tuple(r["shape"]) != expected[r["name"]]:
            raise ValueError(f"{path}: {r['name']} has shape {r['shape']}, "
                             f"the built model has {list(expected[r['name']])}")
        state[r["name"]] = _decode_record(r, payload[r["off"] : r["off"] + r["len"]])
    missing_keys, _ = model.load_state_dict(state, strict=False)
    left = [k for k in missing_keys if not k.endswith("num_batches_tracked")]
    if left:
        raise ValueError(f"{path}: the built model has tensors the artifact lacks: {left[:3]}")
    return model


def size_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes on disk of an artifact; for an ONNX file, its ``.onnx.data`` sibling too."""
    size = os.path.getsize(path)
    if str(path).endswith(".onnx"):
        data = Path(f"{path}.data")
        if data.exists():
            size += data.stat().st_size
    return size


def _to_words(bits: int, values: torch.Tensor, scale: torch.Tensor | None
              ) -> tuple[str, np.ndarray, int, bytes]:
    """(kind, unsigned words, the word meaning zero, bytes stored before the words)."""
    if scale is not None:
        qmax = 2 ** (bits - 1) - 1
        words = (values.cpu().numpy().astype(np.int64) + qmax).astype(np.uint64)
        return "int", words.ravel(), qmax, scale.float().cpu().numpy().astype("<f4").tobytes()
    # -0.0 + 0.0 == +0.0, so a pruned weight always has the all-zero bit pattern.
    if bits == 16:
        arr = (values.to(torch.float16) + 0.0).cpu().numpy().astype("<f2")
        return "f16", arr.view("<u2").ravel(), 0, b""
    arr = (values.float() + 0.0).cpu().numpy().astype("<f4")
    return "f32", arr.view("<u4").ravel(), 0, b""


def _decode_record(r: dict[str, Any], data: bytes) -> torch.Tensor:
    shape, bits = tuple(r["shape"]), r["bits"]
    n = int(np.prod(shape, dtype=np.int64))
    head = shape[0] * 4 if r["kind"] == "int" else 0
    words = decode(r["enc"], r["count"], data[head:], n, bits, _zero_word(r["kind"], bits))
    if r["kind"] == "f16":
        arr = words.astype("<u2").view("<f2").astype(np.float32)
        return torch.from_numpy(arr.reshape(shape))
    if r["kind"] == "f32":
        return torch.from_numpy(words.astype("<u4").view("<f4").reshape(shape).copy())
    qmax = 2 ** (bits - 1) - 1
    if n and int(words.max()) > 2 * qmax:
        raise ValueError(f"{r['name']}: code {int(words.max())} exceeds {bits}-bit range")
    codes = torch.from_numpy((words.astype(np.int64) - qmax).astype(np.float32).reshape(shape))
    scale = np.frombuffer(data[:head], dtype="<f4").astype(np.float32)
    view = (shape[0],) + (1,) * (len(shape) - 1)
    return dequantize(codes, torch.from_numpy(scale.reshape(view)))


def _zero_word(kind: str, bits: int) -> int:
    return 2 ** (bits - 1) - 1 if kind == "int" else 0


def _read(path: str | os.PathLike[str], *, header_only: bool) -> tuple[dict[str, Any], bytes]:
    """Parse and validate the header; the payload is returned unless ``header_only``."""
    with open(path, "rb") as f:
        prefix = f.read(_PREFIX)
        if len(prefix) < _PREFIX or prefix[: len(MAGIC)] != MAGIC:
            raise ValueError(f"{path} is not a downsize artifact (bad magic bytes)")
        (hlen,) = struct.unpack("<I", prefix[len(MAGIC) :])
        total = os.fstat(f.fileno()).st_size
        if hlen > total - _PREFIX:
            raise ValueError(f"{path}: header length {hlen} exceeds the file size {total}")
        raw = f.read(hlen)
        payload = b"" if header_only else f.read()
    try:
        header = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: the header is not valid JSON ({err})") from None
    _validate(header, total - _PREFIX - hlen, str(path))
    return header, payload


def _validate(header: Any, payload_len: int, where: str) -> None:
    """Check every field so decoding can only read inside the payload."""
    def bad(msg: str) -> ValueError:
        return ValueError(f"{where}: invalid artifact header: {msg}")

    def is_int(x: Any) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0

    if not isinstance(header, dict) or header.get("format") != "downsize":
        raise bad("not a downsize header")
    if header.get("version") != 1:
        raise bad(f"version={header.get('version')!r} is not supported (expected 1)")
    if not isinstance(header.get("meta"), dict) or not isinstance(header.get("tensors"), list):
        raise bad("'meta' must be an object and 'tensors' a list")
    for r in header["tensors"]:
        if not isinstance(r, dict) or set(r) != set(_FIELDS):
            raise bad(f"a tensor record must have exactly the fields {_FIELDS}")
        if not isinstance(r["name"], str):
            raise bad("a tensor name is not a string")
        shape = r["shape"]
        if not isinstance(shape, list) or not all(is_int(d) for d in shape):
            raise bad(f"{r['name']}: shape={shape!r} is not a list of sizes")
        if r["kind"] not in _KIND_BITS or r["bits"] not in _KIND_BITS[r["kind"]]:
            raise bad(f"{r['name']}: kind={r['kind']!r} with bits={r['bits']!r} is not allowed")
        if r["kind"] == "int" and not shape:
            raise bad(f"{r['name']}: a quantized tensor needs an output-channel dimension")
        if r["enc"] not in ENCODINGS:
            raise bad(f"{r['name']}: enc={r['enc']!r} is not one of {ENCODINGS}")
        if not (is_int(r["count"]) and is_int(r["off"]) and is_int(r["len"])):
            raise bad(f"{r['name']}: count, off and len must be non-negative integers")
        n = int(np.prod(shape, dtype=object))
        if r["count"] > n or r["off"] + r["len"] > payload_len:
            raise bad(f"{r['name']}: count or byte range is out of bounds")
        head = shape[0] * 4 if r["kind"] == "int" else 0
        if r["len"] != head + encoded_len(r["enc"], r["count"], n, r["bits"]):
            raise bad(f"{r['name']}: len={r['len']} does not match its encoding")
