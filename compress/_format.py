"""The artifact format: one file, no pickle, every byte of a compressed model counted.

Layout: ``MAGIC`` (8 bytes), the JSON length as a little-endian ``u32``, a compact
ASCII JSON object ``{"format": "downsize", "version": 2, "meta": {...}}`` (``meta``
is the caller's dict, e.g. the architecture to rebuild the model; a ``"structure"``
object follows when the model's layers differ from what ``build_fn`` gives: the
``"lowrank"`` rank of each factorized layer and the ``"groups"`` of each
convolution that structured pruning changed), the binary tensor table (``_table``:
a few bytes per tensor, names and shapes implied by the built model and checked by
a crc32), then the payload: each tensor's bytes in table order, optionally
raw-deflate compressed as a whole (a table flag) when that is smaller. An ``"int"``
tensor is one fp16 scale per output channel followed by its k-bit codes ``q + qmax``;
``"f16"``/``"f32"`` tensors are raw IEEE bits. The codes or bits are stored in one
of the encodings of ``_packing``.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from compress._lowrank import factorize, factorized_rank, reduces, replace
from compress._packing import decode, encode, encoded_len
from compress._params import PlainTensor, built_shapes, plain_tensors
from compress._quant import dequantize, effective_weight
from compress._structured import resize
from compress._table import FLAG_DEFLATE, Record, parse_table, signature, table_bytes

__all__ = [
    "MAGIC",
    "VERSION",
    "export",
    "header_bytes",
    "load",
    "read_meta",
    "shape_overrides",
    "size_bytes",
    "structure_of",
]

MAGIC = b"DWNSZ\x00\x01\n"
VERSION = 2
_PREFIX = len(MAGIC) + 4
_SCALE_BYTES = 2  # fp16 per output channel: the fake-quant forward rounds scales to fp16


def header_bytes(meta: dict[str, Any], structure: dict[str, Any] | None = None) -> bytes:
    """The serialized JSON header; shared with the size estimate so both agree byte for byte."""
    header = {"format": "downsize", "version": VERSION, "meta": meta}
    if structure:
        header["structure"] = structure
    try:
        return json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    except (TypeError, ValueError) as err:
        raise ValueError(f"meta must be a JSON-serializable dict: {err}") from None


def export(
    model: nn.Module, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None
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
    tensors = plain_tensors(model)
    header = header_bytes(meta or {}, structure_of(model))
    shapes = shape_overrides(model, tensors)
    records: list[Record] = []
    blobs: list[bytes] = []
    for entry in tensors:
        if entry.module is not None:
            bits, values, scale = effective_weight(entry.module)
        else:
            bits, values, scale = 32, entry.tensor.detach().float(), None
        kind, words, zero, head = _to_words(bits, values, scale)
        enc = encode(words, zero, bits)
        records.append(Record(kind, bits, enc.enc, enc.count, shapes.get(entry.name)))
        blobs.append(head + enc.data)
    payload = b"".join(blobs)
    packed = _deflate(payload)
    flags = FLAG_DEFLATE if len(packed) < len(payload) else 0
    if flags:
        payload = packed
    sig = signature([(t.name, tuple(t.tensor.shape)) for t in tensors])
    data = (
        MAGIC
        + struct.pack("<I", len(header))
        + header
        + table_bytes(records, sig=sig, flags=flags)
        + payload
    )
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``meta`` dict stored by :func:`export`, without reading the weights.

    Raises:
        ValueError: If the file is not a valid artifact.
    """
    meta, _, _ = _read(path, header_only=True)
    return meta


def load(
    path: str | os.PathLike[str], build_fn: Callable[[dict[str, Any]], nn.Module]
) -> nn.Module:
    """Rebuild a plain model from an artifact.

    Args:
        path: An artifact written by :func:`export`.
        build_fn: Builds the uncompressed model from the stored ``meta``.

    Returns:
        ``build_fn(meta)`` with the dequantized weights loaded, its factorized
        layers rebuilt and its pruned layers resized: its outputs equal those of
        the compressed model that was exported.

    Raises:
        ValueError: If the file is not a valid artifact, or does not fit the model.
    """
    meta, structure, rest = _read(path, header_only=False)
    model = build_fn(dict(meta))
    try:
        model = _factorize_as(model, structure.get("lowrank", {}))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    built = [(t.name, tuple(t.tensor.shape)) for t in plain_tensors(model)]
    try:
        flags, sig, records, used = parse_table(rest, [shape for _, shape in built])
    except ValueError as err:
        raise ValueError(f"{path}: invalid tensor table: {err}") from None
    tensors = [(name, r.shape or shape) for (name, shape), r in zip(built, records, strict=True)]
    sizes = [int(np.prod(shape, dtype=np.int64)) for _, shape in tensors]
    if sig != signature(tensors):
        raise ValueError(
            f"{path}: the tensor names and shapes do not match the built model "
            f"(table crc32 {sig:08x}, model {signature(tensors):08x}); "
            "is build_fn the one the artifact was exported with?"
        )
    try:
        resize(
            model,
            {
                name: shape
                for (name, shape), (_, old) in zip(tensors, built, strict=True)
                if shape != old
            },
            structure.get("groups", {}),
        )
    except (ValueError, AttributeError) as err:
        raise ValueError(f"{path}: the stored structure does not fit the model: {err}") from None
    state = _decode_all(tensors, records, sizes, rest[used:], flags, str(path))
    missing_keys, _ = model.load_state_dict(state, strict=False)
    left = [k for k in missing_keys if not k.endswith("num_batches_tracked")]
    if left:  # plain_tensors lists every such key, so a bug of ours
        raise RuntimeError(f"{path}: tensors left unset: {left[:3]}")
    return model


def _decode_all(
    tensors: list[tuple[str, tuple[int, ...]]],
    records: list[Any],
    sizes: list[int],
    rest: bytes,
    flags: int,
    path: str,
) -> dict[str, torch.Tensor]:
    """Every tensor of the table, decoded from the payload that follows it."""
    lengths = []
    for (name, shape), r, n in zip(tensors, records, sizes, strict=True):
        if r.kind == "int" and not shape:
            raise ValueError(f"{path}: {name}: a quantized tensor needs an output channel")
        head = shape[0] * _SCALE_BYTES if r.kind == "int" else 0
        lengths.append(head + encoded_len(r.enc, r.count, n, r.bits))
    payload = _payload(rest, flags, sum(lengths), path)
    state: dict[str, torch.Tensor] = {}
    offset = 0
    for (name, shape), r, length in zip(tensors, records, lengths, strict=True):
        try:
            state[name] = _decode(r, shape, payload[offset : offset + length])
        except ValueError as err:
            raise ValueError(f"{path}: {name}: {err}") from None
        offset += length
    return state


def structure_of(model: nn.Module) -> dict[str, Any]:
    """The header's ``"structure"``: how ``model``'s layers differ from the built ones."""
    out: dict[str, Any] = {}
    ranks = factorized_rank(model)
    if ranks:
        out["lowrank"] = ranks
    built = built_shapes(model)
    if built is not None:
        groups = {
            name: m.groups
            for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.groups != built.groups.get(name, 1)
        }
        if groups:
            out["groups"] = groups
    return out


def shape_overrides(model: nn.Module, tensors: list[PlainTensor]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of the tensors that structured pruning changed (stored in the table).

    A tensor created after pruning (a low-rank factor) is always stored: what it
    would be as built is not recorded, and storing its own shape is always valid.
    """
    built = built_shapes(model)
    if built is None:
        return {}
    return {
        t.name: tuple(t.tensor.shape)
        for t in tensors
        if t.tensor.dim() and built.tensors.get(t.name) != tuple(t.tensor.shape)
    }


def size_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes on disk of an artifact; for an ONNX file, its ``.onnx.data`` sibling too."""
    size = os.path.getsize(path)
    if str(path).endswith(".onnx"):
        data = Path(f"{path}.data")
        if data.exists():
            size += data.stat().st_size
    return size


def _to_words(
    bits: int, values: torch.Tensor, scale: torch.Tensor | None
) -> tuple[str, np.ndarray, int, bytes]:
    """(kind, unsigned words, the word meaning zero, bytes stored before the words)."""
    if scale is not None:
        qmax = 2 ** (bits - 1) - 1
        words = (values.cpu().numpy().astype(np.int64) + qmax).astype(np.uint64)
        # Exact: quantize_weight already rounded the scales to fp16.
        head = scale.to(torch.float16).cpu().numpy().astype("<f2").tobytes()
        return "int", words.ravel(), qmax, head
    # -0.0 + 0.0 == +0.0, so a pruned weight always has the all-zero bit pattern.
    if bits == 16:
        arr = (values.to(torch.float16) + 0.0).cpu().numpy().astype("<f2")
        return "f16", arr.view("<u2").ravel(), 0, b""
    arr = (values.float() + 0.0).cpu().numpy().astype("<f4")
    return "f32", arr.view("<u4").ravel(), 0, b""


def _decode(r: Record, shape: tuple[int, ...], data: bytes) -> torch.Tensor:
    n = int(np.prod(shape, dtype=np.int64))
    head = shape[0] * _SCALE_BYTES if r.kind == "int" else 0
    zero = 2 ** (r.bits - 1) - 1 if r.kind == "int" else 0
    words = decode(r.enc, r.count, data[head:], n, r.bits, zero)
    if r.kind == "f16":
        arr = words.astype("<u2").view("<f2").astype(np.float32)
        return torch.from_numpy(arr.reshape(shape))
    if r.kind == "f32":
        return torch.from_numpy(words.astype("<u4").view("<f4").reshape(shape).copy())
    if n and int(words.max()) > 2 * zero:
        raise ValueError(f"code {int(words.max())} exceeds the {r.bits}-bit range")
    codes = torch.from_numpy((words.astype(np.int64) - zero).astype(np.float32).reshape(shape))
    scale = np.frombuffer(data[:head], dtype="<f2").astype(np.float32)
    view = (shape[0],) + (1,) * (len(shape) - 1)
    return dequantize(codes, torch.from_numpy(scale.reshape(view)))


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)  # raw deflate: no header or checksum
    return c.compress(data) + c.flush()


def _payload(data: bytes, flags: int, raw_len: int, where: str) -> bytes:
    """The raw payload, exactly ``raw_len`` bytes; inflating never allocates more."""
    if not flags & FLAG_DEFLATE:
        if len(data) != raw_len:
            raise ValueError(
                f"{where}: the payload has {len(data)} bytes, the tensor table implies {raw_len}"
            )
        return data
    if len(data) >= raw_len:
        raise ValueError(
            f"{where}: a compressed payload of {len(data)} bytes is not "
            f"smaller than the {raw_len} it holds"
        )
    d = zlib.decompressobj(-15)
    try:
        raw = d.decompress(data, raw_len)
    except zlib.error as err:
        raise ValueError(f"{where}: the compressed payload is corrupt ({err})") from None
    if len(raw) != raw_len or not d.eof or d.unconsumed_tail or d.unused_data:
        raise ValueError(
            f"{where}: the compressed payload does not hold exactly the "
            f"{raw_len} bytes the tensor table implies"
        )
    return raw


def _factorize_as(model: nn.Module, ranks: dict[str, int]) -> nn.Module:
    """Replace the layers at ``ranks``' paths by (unset) factors of those ranks."""
    for path, rank in ranks.items():
        try:
            module = model.get_submodule(path)
        except AttributeError:
            raise ValueError(f"lowrank layer {path!r} is not in the built model") from None
        if not reduces(module, rank):
            raise ValueError(
                f"lowrank rank {rank} does not fit the layer {path!r} ({type(module).__name__})"
            )
        model = replace(model, path, factorize(module, rank, init=False))
    return model


def _check_structure(structure: object) -> dict[str, dict[str, int]]:
    ok = (
        isinstance(structure, dict)
        and set(structure) <= {"lowrank", "groups"}
        and all(
            isinstance(v, dict)
            and v
            and all(
                isinstance(k, str) and isinstance(n, int) and not isinstance(n, bool)
                for k, n in v.items()
            )
            for v in structure.values()
        )
    )
    if not ok:
        raise ValueError(
            "'structure' must map 'lowrank' and/or 'groups' to objects of layer paths and integers"
        )
    return structure  # type: ignore[return-value]


def _read(
    path: str | os.PathLike[str], *, header_only: bool
) -> tuple[dict[str, Any], dict[str, dict[str, int]], bytes]:
    """``(meta, structure, the bytes after the JSON header)``; those are empty if
    ``header_only``."""
    with open(path, "rb") as f:
        prefix = f.read(_PREFIX)
        if len(prefix) < _PREFIX or prefix[: len(MAGIC)] != MAGIC:
            raise ValueError(f"{path} is not a downsize artifact (bad magic bytes)")
        (hlen,) = struct.unpack("<I", prefix[len(MAGIC) :])
        total = os.fstat(f.fileno()).st_size
        if hlen > total - _PREFIX:
            raise ValueError(f"{path}: header length {hlen} exceeds the file size {total}")
        raw = f.read(hlen)
        rest = b"" if header_only else f.read()
    try:
        header = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: the header is not valid JSON ({err})") from None
    if not isinstance(header, dict) or header.get("format") != "downsize":
        raise ValueError(f"{path}: invalid artifact header: not a downsize header")
    if header.get("version") != VERSION:
        raise ValueError(
            f"{path}: invalid artifact header: version={header.get('version')!r} "
            f"is not supported (expected {VERSION})"
        )
    if set(header) - {"structure"} != {"format", "version", "meta"} or not isinstance(
        header["meta"], dict
    ):
        raise ValueError(
            f"{path}: invalid artifact header: expected exactly "
            "'format', 'version', an object 'meta' and optionally 'structure'"
        )
    try:
        structure = _check_structure(header.get("structure", {}))
    except ValueError as err:
        raise ValueError(f"{path}: invalid artifact header: {err}") from None
    return header["meta"], structure, rest
