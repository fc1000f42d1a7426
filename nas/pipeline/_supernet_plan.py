"""Fit the supernet's training to ``search.timeout_s``: the budget bounds the whole search.

A supernet search spends its budget three ways: training the supernet once, scoring
candidates on it, and finalising the best. The finalists' share is reserved first
(:meth:`SupernetStrategy.reserve_s`, from a measured step of the largest network); of
the rest, :data:`TRAIN_SHARE` goes to training, the remainder to scoring. The training's
epochs are then the most of ``strategy.epochs`` that fit, at step times measured on a
throwaway supernet before anything is written (warm-up steps train the largest network
alone, shared steps its sub-networks too). Fewer than :data:`MIN_EPOCHS` do not fit:
the search is refused in one line naming the seconds the training needs. The driver
records the plan in the study at its first start and a resumed study reuses it, so one
study never mixes estimates from two supernets.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from torch import nn

from nas.config import ConfigError
from nas.pipeline._context import TrialContext
from nas.pipeline._supernet_train import SupernetRecipe, step_seconds
from search_spaces import SlicedSupernet

__all__ = ["MIN_EPOCHS", "SAFETY", "TRAIN_SHARE", "fit_epochs"]

TRAIN_SHARE = 2 / 3
"""Of what finalising leaves (``strategy.finalise_share``, 0.35), the supernet's
training gets this share and the scoring the rest. Chosen by arithmetic, not swept: at
1,800 s it fits 21-27 of the 30 default epochs and leaves scoring ~600 s, 2,400-3,100
candidates (docs/bench/search_supernet.json at 13ca037); the step times it plans with are
pessimistic (SAFETY), and what training does not use goes to scoring."""
SAFETY = 1.3
"""A whole epoch over its measured steps: batches loaded and augmented, Python between
steps, and this machine's drift of 5-30% over minutes."""
MIN_EPOCHS = 2
"""One of warm-up and one shared: less trains no sub-network at all."""


def fit_epochs(
    ctx: TrialContext,
    seconds: float,
    *,
    recipe: SupernetRecipe,
    reserve_s: Callable[[nn.Module], float],
    finalists: int,
) -> dict[str, Any]:
    """The ``strategy`` config values to change ({}: the configured epochs fit) so that
    training ``recipe`` fits ``seconds``; ConfigError when even :data:`MIN_EPOCHS` do
    not. ``reserve_s(largest)``: the finalists' time, from a stand-in largest network."""
    if ctx.evaluator is not None:
        # Its start-up (a fresh interpreter importing torch, loading the data) takes a
        # core for seconds: measured beside it, steps took up to twice as long.
        ctx.evaluator.wait_ready()
    fresh = SlicedSupernet(ctx.space, ctx.splits.spec)
    reserve = reserve_s(fresh.extract(fresh.largest))
    times = {
        shared: step_seconds(
            fresh,
            ctx.splits,
            recipe,
            seed=ctx.seed,
            shared=shared,
            device=ctx.device,
            precision=ctx.precision,
        )  # fmt: skip
        for shared in (False, True)
    }
    steps = -(-len(ctx.splits.train) // recipe.batch_size)
    warm_s, shared_s = steps * times[False] * SAFETY, steps * times[True] * SAFETY

    def need(epochs: int, warmup: int) -> float:
        return warmup * warm_s + (epochs - warmup) * shared_s

    room = (seconds - reserve) * TRAIN_SHARE
    epochs, warmup = recipe.epochs, recipe.warmup_epochs
    if need(epochs, min(warmup, epochs)) <= room:
        return {}
    for fitted in range(epochs - 1, MIN_EPOCHS - 1, -1):
        # Warm-up keeps its share of the epochs; at least one, and one shared epoch.
        fitted_warmup = min(fitted - 1, max(1, round(warmup * fitted / epochs)))
        if need(fitted, fitted_warmup) <= room:
            print(
                f"The supernet trains {fitted} of strategy.epochs={epochs} epochs "
                f"(warm-up {fitted_warmup}) to fit search.timeout_s: ~{shared_s:.0f} s an "
                f"epoch measured, {room:.0f} s for training, {reserve:.0f} s kept for "
                f"finalising (at least {finalists} finalists); the rest scores candidates.",
                file=sys.stderr,
            )
            return {"epochs": fitted, "warmup_epochs": fitted_warmup}
    least = need(MIN_EPOCHS, 1)
    whole = math.ceil(reserve + least / TRAIN_SHARE)
    raise ConfigError(
        f"search.timeout_s leaves {seconds:.0f} s, too little for strategy=supernet: its "
        f"training needs at least {least:.0f} s ({MIN_EPOCHS} epochs of {steps} steps, "
        f"~{shared_s:.0f} s an epoch measured) and the search {whole} s with its scoring "
        f"and {finalists} finalists; set search.timeout_s={whole} or "
        "more, or strategy.checkpoint to a trained supernet"
    )
