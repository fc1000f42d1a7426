from __future__ import annotations

import math

import numpy as np
import pytest

from nas.study import Point, hypervolume, pareto_front


def test_front_keeps_only_non_dominated_points() -> None:
    pts = [
        Point(0, 0.9, 1000),
        Point(1, 0.95, 2000),
        Point(2, 0.85, 1500),
        Point(3, 0.95, 3000),
        Point(4, 0.97, 5000),
    ]
    assert [p.number for p in pareto_front(pts)] == [0, 1, 4]


def test_hypervolume_matches_optuna_reference() -> None:
    from optuna._hypervolume import compute_hypervolume

    rng = np.random.default_rng(0)
    pts = [
        Point(i, float(a), float(s))
        for i, (a, s) in enumerate(
            zip(rng.uniform(0.6, 1.0, 40), 10 ** rng.uniform(3, 6, 40), strict=True)
        )
    ]
    ref_acc, ref_size = 0.5, 4e6
    ours = hypervolume(pts, ref_accuracy=ref_acc, ref_size_bytes=ref_size)
    # Optuna minimizes: use (-accuracy, log10 size) against (-ref_acc, log10 ref_size).
    loss = np.array([[-p.accuracy, math.log10(p.size_bytes)] for p in pts])
    ref = np.array([-ref_acc, math.log10(ref_size)])
    assert ours == pytest.approx(compute_hypervolume(loss, ref), rel=1e-9)


def test_points_beyond_reference_add_nothing() -> None:
    pts = [Point(0, 0.4, 100), Point(1, 0.9, 5e6)]
    assert hypervolume(pts, ref_accuracy=0.5, ref_size_bytes=4e6) == 0.0
