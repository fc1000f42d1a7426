"""Which operating points an adaptive package holds: a *nested* chain along the search's
estimated front.

A chain nests when each point contains the next smaller: at least its width, depth,
kernel and expansion in every stage (so it is a slice), its bit-width and its density,
with masks of the same scope.
Then one shared copy, the largest point's, derives them all. Of all nested chains of
``min_points`` to ``max_points`` scored candidates, the one whose estimates (inherited
val accuracy, size) have the largest hypervolume, by the search's own definition and
reference point, is exact dynamic programming: sorted by size, a 2-d hypervolume is a
sum over consecutive points, ``(log10 ref_size - log10 size_j) * (acc_j - acc_i)``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.config import ConfigError
from nas.export._resolve import param_value
from nas.pipeline import spread_by_size

__all__ = ["Candidate", "front_spread", "nested_chain", "nests", "read_population", "union_of"]

# Bit-widths in the order one derives the next from: fp32 and fp16 hold any integer
# width, and a b-bit code holds every narrower one (its top bits).
_BITS_ORDER = {2: 0, 3: 1, 4: 2, 6: 3, 8: 4, 16: 5, 32: 6}
# Compression a point may carry: shape-changing techniques (channel pruning, low rank)
# give tensors that are not slices of a shared copy.
_ALLOWED = {"bits", "sparsity", "prune_scope", "prune_kind", "channel_ratio", "rank_ratio"}


@dataclass
class Candidate:
    """A scored candidate of a supernet search, as its population table records it."""

    trial: int
    arch: dict[str, Any]
    params: dict[str, Any]
    val_accuracy: float
    size_bytes: float
    latency_ms: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: dict[str, float] = field(default_factory=dict)

    @property
    def bits(self) -> int:
        return int(self.params.get("bits", 32))

    @property
    def sparsity(self) -> float:
        return float(self.params.get("sparsity", 0.0))

    @property
    def scope(self) -> str | None:
        """How its mask ranks weights ("global", "layer"); None when it prunes nothing."""
        return str(self.params.get("prune_scope", "global")) if self.sparsity > 0 else None

    def vector(self) -> list[float]:
        """Every number of the architecture, then the bit-width's rank and the density:
        ``a`` contains ``b`` when each entry of ``a`` is at least ``b``'s."""
        return [*_numbers(self.arch), float(_BITS_ORDER[self.bits]), 1.0 - self.sparsity]

    def check_derivable(self) -> None:
        if self.params.get("prune_kind", "unstructured") != "unstructured" or (
            float(self.params.get("channel_ratio", 0.0)) > 0
            or float(self.params.get("rank_ratio", 1.0)) < 1.0
        ):
            raise ConfigError(
                f"trial {self.trial} changes its layers' shapes (structured pruning or low "
                "rank); an adaptive package holds only points sliced from one shared copy"
            )


def _numbers(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in _numbers(value[k])]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _numbers(v)]
    return [float(value)] if isinstance(value, int | float) else []


def read_population(path: Path, device: str | None) -> list[Candidate]:
    """The feasible, scored candidates of ``population.csv``; ``device``: the name the
    search's one profile gives its latency and peak memory (several devices' figures
    are read from their own columns)."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("feasible") != "True" or not row.get("val_accuracy_estimate"):
                continue
            params = {
                k: param_value(v)
                for k, v in row.items()
                if k not in {"trial", "arch"} and "estimate" not in k and v != ""
            }
            c = Candidate(
                trial=int(row["trial"]),
                arch=json.loads(row["arch"]),
                params={k: v for k, v in params.items() if k in _ALLOWED},
                val_accuracy=float(row["val_accuracy_estimate"]),
                size_bytes=float(row["size_bytes_estimate"]),
            )
            for key, value in row.items():
                if value in ("", None):
                    continue
                for prefix, into in (
                    ("latency_ms_estimate", c.latency_ms),
                    ("peak_memory_bytes", c.peak_memory_bytes),
                ):
                    if key == prefix and device is not None:
                        into[device] = float(value)
                    elif key.startswith(prefix + "."):
                        into[key[len(prefix) + 1 :]] = float(value)
            out.append(c)
    return out


def nested_chain(
    cands: Sequence[Candidate],
    *,
    ref_accuracy: float,
    ref_size_bytes: float,
    min_points: int = 3,
    max_points: int = 6,
) -> list[Candidate]:
    """The nested chain of ``min_points``..``max_points`` candidates whose estimated
    front has the largest hypervolume, smallest first.

    Raises:
        ConfigError: no chain of ``min_points`` nests among the candidates above the
            reference point.
    """
    pool = [c for c in cands if c.val_accuracy > ref_accuracy and 0 < c.size_bytes < ref_size_bytes]
    if len(pool) < min_points:
        # A weak search (or a test's) leaves too few above the reference: choose along
        # the whole population, from just below its worst estimate and above its largest.
        pool = [c for c in cands if c.size_bytes > 0]
        if len(pool) < min_points:
            raise ConfigError(
                f"the search scored {len(pool)} feasible candidates; an adaptive package "
                f"needs at least {min_points}"
            )
        ref_accuracy = min(c.val_accuracy for c in pool) - 1e-6
        ref_size_bytes = max(c.size_bytes for c in pool) * 1.01
    pool.sort(key=lambda c: (c.size_bytes, -c.val_accuracy))
    vec = np.array([c.vector() for c in pool])
    acc = np.array([c.val_accuracy for c in pool])
    room = math.log10(ref_size_bytes) - np.log10([c.size_bytes for c in pool])
    # contains[i, j]: j contains i (i may come just before j in the chain), and is more
    # accurate (a less accurate larger point adds nothing to the front).
    contains = np.all(vec[:, None, :] <= vec[None, :, :], axis=2) & _same_ranking(pool)
    contains &= acc[None, :] > acc[:, None]
    contains &= np.triu(np.ones_like(contains), k=1)  # larger comes later: sizes ascend
    np.fill_diagonal(contains, False)
    gain = np.where(contains, room[None, :] * (acc[None, :] - acc[:, None]), -np.inf)
    # best[k][j]: the largest hypervolume of a chain of k + 1 points ending at j.
    best = [room * (acc - ref_accuracy)]
    back: list[np.ndarray] = []
    for _ in range(1, max_points):
        total = best[-1][:, None] + gain
        back.append(np.argmax(total, axis=0))
        best.append(np.max(total, axis=0))
    lengths = range(min_points - 1, max_points)
    k = max(lengths, key=lambda k: (float(np.max(best[k])), k))
    if not np.isfinite(np.max(best[k])):
        raise ConfigError(
            f"no {min_points} scored candidates nest (each containing the next smaller in "
            "width, depth, kernel, bits and density); pass --points to choose others"
        )
    j = int(np.argmax(best[k]))
    chain = [j]
    for level in range(k, 0, -1):
        j = int(back[level - 1][j])
        chain.append(j)
    return [pool[i] for i in reversed(chain)]


def _same_ranking(pool: Sequence[Candidate]) -> np.ndarray:
    """``[i, j]``: j's mask can contain i's. A global mask's per-layer densities differ
    from a layer mask's, so a sparser point nests only in a mask of its own scope (or
    in a dense point)."""
    scopes = [c.scope for c in pool]
    return np.array([[big is None or big == small for big in scopes] for small in scopes])


def nests(points: Sequence[Candidate]) -> bool:
    """Whether ``points`` (in any order) form a chain, each containing the next smaller."""
    ordered = sorted(points, key=lambda c: sum(c.vector()))
    return all(
        all(a <= b for a, b in zip(small.vector(), big.vector(), strict=True))
        and (big.scope is None or big.scope == small.scope)
        for small, big in zip(ordered, ordered[1:], strict=False)
    )


def union_of(points: Sequence[Candidate]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The smallest architecture and compression that contain every point: the shared
    copy's (for a nested chain, its largest point's)."""
    arch = _max_tree([c.arch for c in points])
    widest = max(points, key=lambda c: (1.0 - c.sparsity, c.bits))
    params = dict(widest.params)
    params["bits"] = max((c.bits for c in points), key=lambda b: _BITS_ORDER[b])
    params["sparsity"] = min(c.sparsity for c in points)
    return arch, params


def _max_tree(values: Sequence[Any]) -> Any:
    first = values[0]
    if isinstance(first, dict):
        return {k: _max_tree([v[k] for v in values]) for k in first}
    if isinstance(first, list):
        return [_max_tree([v[i] for v in values]) for i in range(len(first))]
    if isinstance(first, int | float):
        return max(values)
    return first


def front_spread(cands: Sequence[Candidate], k: int) -> list[Candidate]:
    """Up to ``k`` members of the estimated front (most accurate for their size), evenly
    spread along its log-size axis, smallest first: the points when none nest."""
    front: list[Candidate] = []
    for c in sorted(cands, key=lambda c: (c.size_bytes, -c.val_accuracy)):
        if not front or c.val_accuracy > front[-1].val_accuracy:
            front.append(c)
    picked = spread_by_size([(c.val_accuracy, c.size_bytes, i) for i, c in enumerate(front)], k)
    return [front[i] for i in picked]
