"""The tiny ``strategy=supernet`` search the end-to-end tests run (local and Ray): a
small space and data, one epoch of supernet training, two finalists."""

from __future__ import annotations

import math
from typing import Any


def tiny_supernet(*, n_trials: int, warmup_epochs: int) -> tuple[str, ...]:
    return (
        "strategy=supernet",
        "search_space=mbconv",
        "search_space.width_mults=[0.25,0.5]",
        "search_space.depth_max=2",
        "search_space.expansions=[2,4]",
        "dataset.n_train=300",
        "sampler=random",
        "strategy.epochs=1",
        f"strategy.warmup_epochs={warmup_epochs}",
        "strategy.bn_calib_images=64",
        "strategy.finalists=2",
        "strategy.max_finalists=2",
        "strategy.finetune_epochs=1",
        f"search.n_trials={n_trials}",
        "train.threads=1",  # tiny tensors: a second thread costs more than it gives
        # A supernet trained for 3 steps finalises near-chance models; these tests are of
        # the mechanics, so none is kept off the front by the accuracy floor.
        "search.min_accuracy=0",
    )


def assert_finalists_cover_the_sizes(finals: list[Any], feasible: list[Any]) -> None:
    """Two finalists cover the scored sizes: first the best estimate of the larger half
    (in log size), then of the smaller (nas.pipeline._supernet_predict, none landed)."""
    from nas.study import keys

    assert len(finals) == 2
    logs = {t.number: math.log(t.user_attrs[keys.METRICS]["size_bytes"]) for t in feasible}
    middle = (min(logs.values()) + max(logs.values())) / 2
    halves = [[t for t in feasible if (logs[t.number] >= middle) == large] for large in (1, 0)]
    for final, half in zip(finals, halves, strict=True):
        best = max(t.user_attrs[keys.METRICS]["val_accuracy"] for t in half)
        assert final.user_attrs[keys.FINALIST_OF] in {
            t.number for t in half if t.user_attrs[keys.METRICS]["val_accuracy"] == best
        }
