"""Which operating points an adaptive package holds (``nas.export._adaptive_points``):
the nested chain of largest estimated hypervolume, against brute force; nesting; the
union of points that do not nest; reading the population table."""

from __future__ import annotations

import csv
import itertools
import json
import random
from pathlib import Path

import pytest

from nas.config import ConfigError
from nas.export._adaptive_points import Candidate, nested_chain, nests, read_population, union_of
from nas.study import Point, hypervolume

REF_ACC, REF_SIZE = 0.5, 1e6


def _random(n: int, seed: int) -> list[Candidate]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        width = rng.choice([0.25, 0.5, 1.0])
        depths = [rng.randint(1, 3) for _ in range(2)]
        bits = rng.choice([2, 4, 8, 32])
        sparsity = rng.choice([0.0, 0.3, 0.6])
        size = 1e3 * width * sum(depths) * bits * (1 - sparsity) + rng.random()
        acc = min(0.99, 0.5 + 0.1 * width + 0.02 * sum(depths) + 0.01 * bits**0.5)
        acc += rng.uniform(-0.05, 0.05)
        arch = {"width_mult": width, "depths": depths}
        out.append(Candidate(i, arch, {"bits": bits, "sparsity": sparsity}, acc, size))
    return out


def _hv(chain: list[Candidate]) -> float:
    points = [Point(c.trial, c.val_accuracy, c.size_bytes) for c in chain]
    return hypervolume(points, ref_accuracy=REF_ACC, ref_size_bytes=REF_SIZE)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_chain_is_the_nested_one_of_largest_hypervolume(seed: int) -> None:
    cands = _random(16, seed)
    chain = nested_chain(cands, ref_accuracy=REF_ACC, ref_size_bytes=REF_SIZE, max_points=4)
    assert 3 <= len(chain) <= 4 and nests(chain)
    assert [c.size_bytes for c in chain] == sorted(c.size_bytes for c in chain)
    best = max(
        (
            _hv(list(combo))
            for k in (3, 4)
            for combo in itertools.combinations(sorted(cands, key=lambda c: c.size_bytes), k)
            if nests(combo)
            and all(a.val_accuracy < b.val_accuracy for a, b in zip(combo, combo[1:], strict=False))
        ),
        default=None,
    )
    assert best is not None
    assert _hv(chain) == pytest.approx(best)


def test_nesting_needs_every_dimension() -> None:
    small = Candidate(
        0, {"width_mult": 0.5, "depths": [1, 2]}, {"bits": 4, "sparsity": 0.5}, 0.8, 10
    )
    big = Candidate(1, {"width_mult": 1.0, "depths": [2, 2]}, {"bits": 8, "sparsity": 0.2}, 0.9, 20)
    assert nests([big, small])
    fewer_bits = Candidate(2, big.arch, {"bits": 2, "sparsity": 0.2}, 0.9, 20)
    sparser = Candidate(3, big.arch, {"bits": 8, "sparsity": 0.7}, 0.9, 20)
    assert not nests([small, fewer_bits]) and not nests([small, sparser])
    arch, params = union_of([small, fewer_bits, sparser])
    assert arch == big.arch and params["bits"] == 8 and params["sparsity"] == 0.2


def test_no_nested_chain_is_one_line() -> None:
    # Three points, each larger in one dimension and smaller in another: none nests.
    cands = [
        Candidate(i, {"width_mult": w, "depths": [d]}, {"bits": 8, "sparsity": 0.0}, a, s)
        for i, (w, d, a, s) in enumerate(
            [(0.5, 3, 0.8, 10), (1.0, 1, 0.85, 20), (0.25, 4, 0.9, 30)]
        )
    ]
    with pytest.raises(ConfigError, match="no 3 scored candidates nest"):
        nested_chain(cands, ref_accuracy=REF_ACC, ref_size_bytes=REF_SIZE)


def test_structured_points_are_refused() -> None:
    c = Candidate(
        7, {"width_mult": 1.0}, {"prune_kind": "structured", "channel_ratio": 0.5}, 0.9, 1
    )
    with pytest.raises(ConfigError, match="trial 7 changes its layers' shapes"):
        c.check_derivable()


def test_the_population_table_is_read_with_its_device_figures(tmp_path: Path) -> None:
    path = tmp_path / "population.csv"
    rows = [
        {"trial": 3, "feasible": True, "val_accuracy_estimate": 0.9, "size_bytes_estimate": 1e4,
         "latency_ms_estimate": 0.4, "peak_memory_bytes": 2e4, "macs": 1e6, "score_seconds": 0.1,
         "width_mult": 0.5, "bits": 4, "sparsity": 0.3, "prune_scope": "layer",
         "arch": json.dumps({"width_mult": 0.5})},
        {"trial": 4, "feasible": False, "val_accuracy_estimate": "", "size_bytes_estimate": 1e4,
         "arch": "{}"},
    ]  # fmt: skip
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow(r)
    (c,) = read_population(path, "mobile")
    assert c.trial == 3 and c.arch == {"width_mult": 0.5}
    assert c.params == {"bits": 4, "sparsity": 0.3, "prune_scope": "layer"}
    assert c.latency_ms == {"mobile": 0.4} and c.peak_memory_bytes == {"mobile": 2e4}
