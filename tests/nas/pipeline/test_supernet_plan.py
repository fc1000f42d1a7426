"""A supernet search keeps its budget: the training's epochs fitted to ``search.timeout_s``
(or the search refused in one line), the fit recorded and reused on resume; and a
supernet that has not learned stops the search before anything is scored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig
from test_supernet import SMALL, make_ctx, strategy_of

from nas import compose
from nas.config import ConfigError
from nas.pipeline import NotLearning, SupernetStrategy, TrialContext, train_supernet
from nas.pipeline import _supernet_plan as plan_module
from nas.pipeline._datasets import DATASETS
from nas.pipeline._supernet_plan import SAFETY, TRAIN_SHARE
from nas.pipeline._supernet_train import JUDGED_AFTER_STEPS

WARM_S, SHARED_S, RESERVE_S = 0.01, 0.03, 20.0
"""Step times and finalists' reserve the tests pretend to measure (no timing in tests)."""


@pytest.fixture
def ctx(fast: Callable[..., list[str]], tmp_path: Path, monkeypatch) -> TrialContext:
    cfg = compose(fast(*SMALL, "strategy.epochs=10", "strategy.warmup_epochs=2"))
    monkeypatch.setattr(
        plan_module, "step_seconds", lambda *a, shared, **k: SHARED_S if shared else WARM_S
    )
    monkeypatch.setattr(
        SupernetStrategy, "reserve_s", lambda self, ctx, seconds=None, largest=None: RESERVE_S
    )
    return make_ctx(cfg, tmp_path)


def _epoch_s(ctx: TrialContext, step: float) -> float:
    steps = -(-len(ctx.splits.train) // int(ctx.train_cfg.batch_size))
    return steps * step * SAFETY


def _seconds_for(ctx: TrialContext, epochs: int, warmup: int) -> float:
    """The budget at which exactly ``epochs`` (``warmup`` of them warm-up) fit."""
    need = warmup * _epoch_s(ctx, WARM_S) + (epochs - warmup) * _epoch_s(ctx, SHARED_S)
    return RESERVE_S + need / TRAIN_SHARE + 1e-6


def test_no_limit_or_room_enough_trains_the_configured_epochs(ctx: TrialContext) -> None:
    strategy = strategy_of(ctx)
    assert strategy.plan(ctx, None, None) == {}
    assert strategy.plan(ctx, _seconds_for(ctx, 10, 2), None) == {}


def test_a_short_budget_fits_fewer_epochs_and_scales_warm_up(ctx: TrialContext, capsys) -> None:
    plan = strategy_of(ctx).plan(ctx, _seconds_for(ctx, 5, 1), None)
    assert plan == {"epochs": 5, "warmup_epochs": 1}
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "trains 5 of strategy.epochs=10 epochs (warm-up 1)" in said[0]


def test_a_budget_too_short_for_two_epochs_is_refused_naming_the_seconds(
    ctx: TrialContext,
) -> None:
    least = round(_epoch_s(ctx, WARM_S) + _epoch_s(ctx, SHARED_S))
    with pytest.raises(ConfigError) as e:
        strategy_of(ctx).plan(ctx, _seconds_for(ctx, 2, 1) - 1.0, None)
    msg = str(e.value)
    assert "\n" not in msg and f"its training needs at least {least} s" in msg
    whole = int(np.ceil(_seconds_for(ctx, 2, 1)))
    assert f"set search.timeout_s={whole} or more" in msg


def test_a_recorded_plan_is_reused_and_nothing_is_measured(ctx: TrialContext, monkeypatch) -> None:
    monkeypatch.setattr(plan_module, "step_seconds", None)  # calling it would raise
    recorded = {"epochs": 3, "warmup_epochs": 1}
    assert strategy_of(ctx).plan(ctx, 1.0, recorded) == recorded
    assert strategy_of(ctx).plan(ctx, 1.0, {}) == {}  # a study from before plans


def test_a_cached_supernet_needs_no_fitting(
    fast: Callable[..., list[str]], tmp_path: Path, monkeypatch
) -> None:
    ctx = make_ctx(compose(fast(*SMALL)), tmp_path)
    assert ctx.strategy is not None
    ctx.strategy.prepare(ctx)
    fresh = make_ctx(compose(fast(*SMALL)), tmp_path)  # a new search, same cache
    monkeypatch.setattr(plan_module, "step_seconds", None)
    assert strategy_of(fresh).plan(fresh, 1.0, None) == {}


def test_step_seconds_measures_a_whole_step(cfg_small: DictConfig, tmp_path: Path) -> None:
    from nas.pipeline._supernet_train import step_seconds
    from search_spaces import SlicedSupernet

    ctx = make_ctx(cfg_small, tmp_path)
    recipe = strategy_of(ctx).recipe(ctx)
    fresh = SlicedSupernet(ctx.space, ctx.splits.spec)
    warm = step_seconds(fresh, ctx.splits, recipe, seed=0, shared=False, repeats=3)
    shared = step_seconds(fresh, ctx.splits, recipe, seed=0, shared=True, repeats=3)
    assert 0 < warm < shared  # a shared step also trains the sandwich's sub-networks


@pytest.fixture
def cfg_small(fast: Callable[..., list[str]]) -> DictConfig:
    return compose(fast(*SMALL))


# -- a supernet that does not learn ------------------------------------------------------


@pytest.fixture
def unlearnable(monkeypatch) -> None:
    original = DATASETS.get("digits")

    def shuffled(cfg: Any) -> tuple[np.ndarray, np.ndarray, None]:
        images, labels, _ = original(cfg)
        return images, np.random.default_rng(0).permutation(labels), None

    monkeypatch.setitem(DATASETS._entries, "digits", shuffled)


def test_training_on_shuffled_labels_stops_after_warm_up(
    unlearnable: None, fast: Callable[..., list[str]], tmp_path: Path
) -> None:
    cfg = compose(fast(*SMALL, "dataset.n_train=null", "strategy.epochs=4",
                       "strategy.warmup_epochs=2"))  # fmt: skip
    ctx = make_ctx(cfg, tmp_path)
    strategy = strategy_of(ctx)
    from search_spaces import SlicedSupernet

    epochs: list[int] = []
    with pytest.raises(NotLearning) as e:
        train_supernet(
            SlicedSupernet(ctx.space, ctx.splits.spec), ctx.splits, strategy.recipe(ctx), seed=0,
            on_epoch=lambda epoch, loss: epochs.append(epoch),
        )  # fmt: skip
    assert epochs == [0, 1]  # stopped at the end of warm-up, before any shared epoch
    msg = str(e.value)
    assert "\n" not in msg and "the supernet is not learning: after warm-up of 4" in msg
    assert "chance for 10 classes is 2.303" in msg


def test_the_same_training_on_the_real_labels_goes_on(
    fast: Callable[..., list[str]], tmp_path: Path
) -> None:
    cfg = compose(fast(*SMALL, "dataset.n_train=null", "strategy.epochs=3",
                       "strategy.warmup_epochs=2"))  # fmt: skip
    ctx = make_ctx(cfg, tmp_path)
    from search_spaces import SlicedSupernet

    stats = train_supernet(
        SlicedSupernet(ctx.space, ctx.splits.spec), ctx.splits, strategy_of(ctx).recipe(ctx),
        seed=0,
    )  # fmt: skip
    assert stats.steps * 2 // 3 >= JUDGED_AFTER_STEPS  # judged at the end of warm-up


def test_a_search_on_unlearnable_data_exits_2_in_one_line_scoring_nothing(
    unlearnable: None, fast: Callable[..., list[str]], tmp_path: Path, capsys, mlflow_runs
) -> None:
    from nas.search import main

    args = fast(*SMALL, "dataset.n_train=null", "strategy.epochs=4", "strategy.warmup_epochs=2",
                f"search.output_dir={tmp_path}", "search.n_trials=20")  # fmt: skip
    assert main(args) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "the supernet is not learning" in errors[0], errors
    (journal,) = tmp_path.glob("*.journal")
    import optuna

    study = optuna.load_study(
        study_name=journal.stem, storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        ),
    )  # fmt: skip
    assert study.trials == []  # nothing scored
    (parent,) = mlflow_runs(tmp_path, "search")
    assert parent.info.status == "FAILED"
