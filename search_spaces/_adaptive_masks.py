"""Nested pruning masks of an adaptive package, stored as the bits that are not implied.

A point's mask is the search's own (a magnitude mask of its fp32 weights, from the
supernet), intersected with the next larger point's, so that the masks nest. Ranking
the shared copy's *quantized* weights again instead would break ties among equal codes
by position, and at 2-bit, 80% sparse points that was measured to lose most of their
accuracy (``scripts/bench_adaptive.py``); so the masks are stored, cheaply: the largest
point's mask is the shared copy's nonzeros, and for each smaller point, from the
largest down, one bit per weight that the next larger point keeps inside the smaller
one's slice. Points that do not nest are each stored within the shared copy (their
union) instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from search_spaces._supernet import slice_to

__all__ = ["Masks", "decode_masks", "encode_masks", "target_shapes"]

Masks = dict[str, torch.Tensor]  # weight name -> bool mask


def target_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The weights ``compress`` prunes (``Conv2d``, ``Linear``), in module order."""
    return {
        f"{name}.weight": tuple(m.weight.shape)
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    }


def _chain(
    base: Masks,
    own: Sequence[Masks | None],
    shapes: Sequence[dict[str, tuple[int, ...]]],
    bits: np.ndarray | None,
    nested: bool,
) -> tuple[list[Masks], list[bool]]:
    """The masks, smallest point first; from ``own`` masks (encoding, with the bits it
    writes) or from ``bits`` (decoding). Nested points: the largest's is ``base``, each
    other's is stored within the next larger one's. Points that do not nest: each is
    stored within ``base`` (the union's)."""
    k = len(shapes)
    out: list[Masks | None] = [None] * k
    if nested:
        out[k - 1] = dict(base)
    written: list[bool] = []
    pos = 0
    for i in range(k - 2 if nested else k - 1, -1, -1):
        larger = out[i + 1] if nested else base
        assert larger is not None
        masks: Masks = {}
        for name, shape in shapes[i].items():
            sel = slice_to(larger[name], shape)
            if bits is None:
                mine = own[i][name] & sel  # type: ignore[index]
                written.extend(mine[sel].tolist())
            else:
                n = int(sel.sum())
                if pos + n > len(bits):
                    raise ValueError("the stored masks are shorter than the points need")
                mine = torch.zeros(shape, dtype=torch.bool)
                mine[sel] = torch.from_numpy(bits[pos : pos + n].astype(bool))
                pos += n
            masks[name] = mine
        out[i] = masks
    return [m for m in out if m is not None], written


def encode_masks(
    base: Masks,
    own: Sequence[Masks],
    shapes: Sequence[dict[str, tuple[int, ...]]],
    *,
    nested: bool = True,
) -> tuple[bytes, list[Masks]]:
    """The packed bits, and the masks they decode to (smallest point first)."""
    masks, written = _chain(base, own, shapes, None, nested)
    return np.packbits(np.array(written, dtype=bool)).tobytes(), masks


def decode_masks(
    base: Masks, shapes: Sequence[dict[str, tuple[int, ...]]], data: bytes, *, nested: bool = True
) -> list[Masks]:
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    masks, _ = _chain(base, [None] * len(shapes), shapes, bits, nested)
    return masks
