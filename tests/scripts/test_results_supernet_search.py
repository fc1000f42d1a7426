"""The supernet-against-scratch section shows how far each front's val figures sit above
its test accuracy: what selection on val costs, per strategy and seed."""

from __future__ import annotations

import math

from _results._supernet_search import _front_gap


def test_the_gap_is_the_mean_over_the_front_in_points() -> None:
    front = [
        {"val_accuracy": 0.98, "test_accuracy": 0.95},
        {"val_accuracy": 0.90, "test_accuracy": 0.91},
    ]
    gap = _front_gap(front)
    assert gap is not None and math.isclose(gap, 1.0)  # (3 - 1) / 2 points


def test_an_empty_front_has_no_gap() -> None:
    assert _front_gap([]) is None
