"""The search-strategy seam (``nas.pipeline.Strategy``) carries a three-phase
strategy through the same runner, recorder and tracker as ``scratch``: a one-off
``prepare``, cheap scoring of every candidate (Optuna trials, not MLflow runs), and
finalists trained and recorded as ordinary child runs, which alone make the front."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from nas import compose
from nas.driver import run_search
from nas.pipeline import STRATEGIES, Proposal, TrialContext, TrialResult, train_proposal
from nas.study import keys


class CheapStrategy:
    """Scores without training (a made-up accuracy from the architecture); the two
    best scored candidates are finalised by training them from scratch."""

    records_scores = False
    trains_once = False
    min_finalists = 2
    max_finalists = None
    prepared = 0
    scored = 0

    def __init__(self, cfg: Any = None) -> None:
        pass

    def check(self, ctx: TrialContext) -> None:
        pass

    def reserve_s(self, ctx: TrialContext, seconds: float | None = None) -> float:
        return 0.0

    def plan(self, ctx: TrialContext, seconds: float | None, recorded: Any) -> dict[str, Any]:
        return {}

    def prepare(self, ctx: TrialContext) -> None:
        type(self).prepared += 1

    def score(self, proposal: Proposal, ctx: TrialContext) -> TrialResult:
        type(self).scored += 1
        size = proposal.metrics["size_bytes_estimate"]
        metrics = dict(proposal.metrics, val_accuracy=1.0 - 1.0 / (1.0 + size), size_bytes=size)
        return TrialResult(True, proposal.arch, proposal.compression, metrics, proposal.constraints)

    def finalists(self, study: optuna.Study, ctx: TrialContext, batch: int = 1) -> list[int]:
        scored = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get(keys.PHASE) != "final" and t.user_attrs.get(keys.FEASIBLE)
        ]
        return [t.number for t in sorted(scored, key=lambda t: -t.values[0])[:2]]

    def finalize(self, proposal: Proposal, ctx: TrialContext) -> TrialResult:
        return train_proposal(proposal, ctx)


@pytest.fixture
def cheap_strategy() -> Any:
    if "cheap_test" not in STRATEGIES:
        STRATEGIES.add("cheap_test", CheapStrategy)
    CheapStrategy.prepared = CheapStrategy.scored = 0
    return CheapStrategy


@pytest.fixture
def search(tmp_path: Path, fast) -> Any:
    """``search(n_trials)``: a fast search in ``tmp_path`` with the cheap strategy."""

    def search(n_trials: int) -> Any:
        cfg = compose(
            fast(
                "compress.finetune_epochs=0",
                "sampler=random",
                f"search.n_trials={n_trials}",
                f"search.output_dir={tmp_path}",
            )
        )
        cfg.strategy.name = "cheap_test"
        return run_search(cfg)

    return search


def test_scored_trials_are_not_runs_and_finalists_are(
    tmp_path: Path, cheap_strategy: Any, search: Any
) -> None:
    outcome = search(6)

    assert cheap_strategy.prepared == 1
    study = optuna.load_study(
        study_name=outcome.study_name,
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(
                str(tmp_path / f"{outcome.study_name}.journal")
            )
        ),
    )
    trials = study.get_trials(deepcopy=False)
    final = [t for t in trials if t.user_attrs.get(keys.PHASE) == "final"]
    scored = [t for t in trials if t.user_attrs.get(keys.PHASE) != "final"]
    assert len(scored) == 6 and len(final) == 2
    assert all(keys.RUN_ID not in t.user_attrs for t in scored)
    assert all(t.state == TrialState.COMPLETE and keys.RUN_ID in t.user_attrs for t in final)
    for t in final:  # a finalist is its scored trial, re-proposed with the same params
        assert t.params == study.trials[t.user_attrs[keys.FINALIST_OF]].params
        assert t.user_attrs[keys.ARTIFACT].endswith(f"trial_{t.number:05d}.dsz")

    client = MlflowClient(tracking_uri=outcome.tracking_uri)
    runs = client.search_runs(
        [client.get_run(outcome.parent_run_id).info.experiment_id],
        filter_string=f"tags.`{keys.TAG_PARENT}` = '{outcome.parent_run_id}'",
    )
    assert sorted(int(r.data.tags[keys.TAG_TRIAL]) for r in runs) == sorted(t.number for t in final)
    assert {r.info.status for r in runs} == {"FINISHED"}
    # The front is made of finalists only: scored trials are estimates.
    assert outcome.front and {row["trial"] for row in outcome.front} <= {t.number for t in final}


def test_a_resumed_search_does_not_finalise_twice(cheap_strategy: Any, search: Any) -> None:
    first = search(4)
    again = search(4)

    assert again.study_name == first.study_name
    assert cheap_strategy.scored == 4  # nothing left to score on resume
    client = MlflowClient(tracking_uri=again.tracking_uri)
    runs = client.search_runs(
        [client.get_run(again.parent_run_id).info.experiment_id],
        filter_string=f"tags.`{keys.TAG_PARENT}` = '{again.parent_run_id}'",
    )
    assert len(runs) == 2


class ExtraStrategy(CheapStrategy):
    """One finalist always runs; two more only while search.timeout_s has time left. Its
    scoring is slow and keeps no reserve, so a short budget is spent before phase 3."""

    min_finalists = 1

    def score(self, proposal: Proposal, ctx: TrialContext) -> TrialResult:
        time.sleep(0.3)
        return super().score(proposal, ctx)

    def reserve_s(self, ctx: TrialContext, seconds: float | None = None) -> float:
        return -1000.0  # score every trial whatever the deadline says

    def finalists(self, study: optuna.Study, ctx: TrialContext, batch: int = 1) -> list[int]:
        scored = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get(keys.PHASE) != "final" and t.user_attrs.get(keys.FEASIBLE)
        ]
        return [t.number for t in sorted(scored, key=lambda t: -t.values[0])[:3]]


@pytest.mark.parametrize(("timeout_s", "finalised"), [("null", 3), ("1", 1)])
def test_finalists_past_the_first_run_only_while_the_budget_lasts(
    tmp_path: Path, fast: Any, timeout_s: str, finalised: int
) -> None:
    if "extra_test" not in STRATEGIES:
        STRATEGIES.add("extra_test", ExtraStrategy)
    cfg = compose(
        fast(
            "compress.finetune_epochs=0",
            "sampler=random",
            "search.n_trials=5",
            f"search.timeout_s={timeout_s}",
            f"search.output_dir={tmp_path}",
        )
    )
    cfg.strategy.name = "extra_test"
    outcome = run_search(cfg)

    study = optuna.load_study(
        study_name=outcome.study_name,
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(
                str(tmp_path / f"{outcome.study_name}.journal")
            )
        ),
    )
    final = [t for t in study.trials if t.user_attrs.get(keys.PHASE) == "final"]
    assert len(final) == finalised
    assert all(t.state == TrialState.COMPLETE for t in study.trials)  # none left queued
