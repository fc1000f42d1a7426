"""Model size before training (a guaranteed upper bound) and after (statistics).

:func:`estimate_size_bytes` lets a search reject a candidate against a byte
budget before spending any training on it. It must never be below what
:func:`compress.export` will write, whatever values training gives the weights:

- The JSON header depends only on ``meta``, so its length is exact. The binary
  tensor table takes two bytes per tensor plus a varint entry count that never
  exceeds the tensor's size, so its length is bounded by the sizes alone.
- The payload is stored deflated only when that is smaller, so the raw
  payload bounds it.
- Each compressed weight stores the cheapest of several encodings; its size is
  bounded by a concave, piecewise-linear function of its nonzero count ``x``
  (``_packing`` explains the encodings; relative indexing needs at most
  ``x + (n - x) / 2**g`` entries). Pruning fixes ``x`` per layer (``"layer"``
  scope) or only the total (``"global"``), in which case the worst split of the
  nonzeros across layers is found greedily, steepest segments first.
- Structural techniques (``channel_prune``, ``lowrank``) are applied to a copy of
  the model: which layers they change, and to what widths and ranks, depends
  only on the architecture and the config, never on the weights. The copy's
  shapes, shape overrides and header ``"structure"`` are then exact.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from compress._format import _PREFIX, _SCALE_BYTES, header_bytes, shape_overrides, structure_of
from compress._lowrank import LowRankConfig, factorize_all
from compress._packing import GAP_BITS, packed_len
from compress._params import plain_tensors, weight
from compress._prune import PruneConfig, pruned_count
from compress._quant import QuantConfig
from compress._structured import ChannelPruneConfig, channel_prune
from compress._table import table_len_bound

__all__ = ["estimate_size_bytes", "stats"]


def estimate_size_bytes(
    model: nn.Module, cfgs: Sequence[Any], *, meta: dict[str, Any] | None = None
) -> int:
    """Upper bound on the bytes :func:`compress.export` writes after applying ``cfgs``.

    Args:
        model: The uncompressed built model (only its shapes are used; structural
            techniques are applied to a copy, and need its forward pass to trace).
        cfgs: The compression configs that :func:`compress.apply` will apply.
        meta: The same ``meta`` that will be passed to ``export``.

    Returns:
        A size in bytes, never below the exported artifact's, for any weights
        (including after fine-tuning), and typically within 10-20% of it.

    Raises:
        ValueError: If ``cfgs`` holds a technique this estimate does not model, or
            a structural technique after ``prune``/``quant`` (``apply`` refuses that).
    """
    shaped, bits, prune = _apply_shapes(model, cfgs)
    tensors = plain_tensors(shaped)
    overrides = shape_overrides(shaped, tensors)
    sizes: list[int] = []
    fixed = 0  # bytes known exactly or bounded without the nonzero counts
    layers: list[tuple[int, int]] = []  # (n, k) of each compressed weight
    for entry in tensors:
        n = entry.tensor.numel()
        sizes.append(n)
        if entry.module is None:
            fixed += packed_len(n, 32)
        else:
            fixed += entry.tensor.shape[0] * _SCALE_BYTES if bits <= 8 else 0
            layers.append((n, bits))

    if prune is None:
        weights = sum(_bound(n, k)(n) for n, k in layers)
    elif prune.scope == "layer":
        weights = sum(_bound(n, k)(n - pruned_count(prune.sparsity, n)) for n, k in layers)
    else:
        total = sum(n for n, _ in layers)
        weights = _worst_split(layers, total - pruned_count(prune.sparsity, total))
    payload = fixed + math.ceil(weights)
    header = header_bytes(meta or {}, structure_of(shaped))
    return _PREFIX + len(header) + table_len_bound(sizes, list(overrides.values())) + payload


def _apply_shapes(
    model: nn.Module, cfgs: Sequence[Any]
) -> tuple[nn.Module, int, PruneConfig | None]:
    """The model with the structural configs applied (to a copy), its bit-width and the
    pruning that holds at the end."""
    bits, prune = 32, None
    shaped = model
    for cfg in cfgs:
        if isinstance(cfg, QuantConfig):
            bits = cfg.bits if cfg.bits != 32 else bits  # 32 leaves earlier quantization on
        elif isinstance(cfg, PruneConfig):
            prune = cfg  # masks only tighten, so the last config's sparsity holds
        elif isinstance(cfg, ChannelPruneConfig | LowRankConfig):
            if prune is not None or bits != 32:
                raise ValueError(
                    f"{type(cfg).__name__} must come before PruneConfig and QuantConfig"
                )
            if shaped is model:
                shaped = copy.deepcopy(model)
            if isinstance(cfg, ChannelPruneConfig):
                shaped = channel_prune(shaped, cfg)
            else:
                shaped = factorize_all(shaped, cfg.rank_ratio, init=False)
        else:
            raise ValueError(f"estimate_size_bytes does not model {type(cfg).__name__}")
    return shaped, bits, prune


def stats(model: nn.Module) -> dict[str, int]:
    """Parameter counts of ``model`` as it is evaluated.

    Returns:
        ``{"params": total parameters, "nonzero_params": nonzero parameters}``,
        counting the effective (masked, quantized) weights.
    """
    params = nonzero = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            params += p.numel()
            w: torch.Tensor = p
            if name.endswith("parametrizations.weight.original"):
                owner = model.get_submodule(name.rsplit("parametrizations.", 1)[0].rstrip("."))
                w = weight(owner)  # the effective weight, masked and quantized
            nonzero += int(torch.count_nonzero(w))
    return {"params": params, "nonzero_params": nonzero}


def _lines(n: int, k: int) -> list[tuple[float, float]]:
    """``(a, b)`` such that each encoding of ``x`` nonzeros takes ``<= a + b * x`` bytes.

    Every ``ceil`` is bounded by its argument plus one.
    """
    lines = [(float(packed_len(n, k)), 0.0), (packed_len(n, 1) + 1.0, k / 8)]
    for g in GAP_BITS:
        per_entry = (g + k) / 8
        lines.append((n / 2**g * per_entry + 2.0, (1 - 1 / 2**g) * per_entry))
    return lines


def _bound(n: int, k: int) -> Any:
    lines = _lines(n, k)
    return lambda x: min(a + b * x for a, b in lines)


def _worst_split(layers: list[tuple[int, int]], budget: int) -> float:
    """Max over splits of ``budget`` nonzeros across layers of the summed bounds.

    Each layer's bound is concave (a minimum of lines), so taking the steepest
    segments first across all layers solves the continuous relaxation, which is
    itself an upper bound of the integer problem.
    """
    base = 0.0
    segments: list[tuple[float, float]] = []  # (slope, length)
    for n, k in layers:
        lines = _lines(n, k)
        f = _bound(n, k)
        xs = {0.0, float(n)}
        for i, (a1, b1) in enumerate(lines):
            for a2, b2 in lines[i + 1 :]:
                if b1 != b2 and 0 < (x := (a2 - a1) / (b1 - b2)) < n:
                    xs.add(x)
        pts = sorted(xs)
        base += f(0.0)
        for x0, x1 in zip(pts, pts[1:], strict=False):
            segments.append(((f(x1) - f(x0)) / (x1 - x0), x1 - x0))
    total, left = base, float(budget)
    for slope, length in sorted(segments, reverse=True):
        if left <= 0 or slope <= 0:
            break
        take = min(length, left)
        total += slope * take
        left -= take
    return total
