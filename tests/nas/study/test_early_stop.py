"""Multi-objective ASHA: rungs, Pareto-rank promotion, persistence, the config switch.
(A search with it: tests/e2e/test_search.py.)"""

from __future__ import annotations

import pickle
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas import compose
from nas.config import ConfigError
from nas.study import (
    MOASHA,
    StudyLink,
    continues,
    crowding_distance,
    keys,
    make_early_stop,
    make_storage,
    nondominated_ranks,
    rungs,
)


def test_rungs_are_geometric_and_exclude_the_last_epoch() -> None:
    assert rungs(5, 1, 3) == [1, 3]
    assert rungs(9, 1, 3) == [1, 3]
    assert rungs(10, 1, 3) == [1, 3, 9]
    assert rungs(8, 2, 2) == [2, 4]
    assert rungs(1, 1, 3) == []


def test_only_rung_epochs_are_judged() -> None:
    judge = MOASHA(epochs=5, min_epochs=1, reduction_factor=2)
    for n, acc in enumerate([0.9, 0.8]):
        judge.should_stop(n, 0, acc, 1000.0)
    # Epoch index 1 = 2 epochs trained: not a rung (rungs 1, 2, 4 -> 2 is one for eta=2).
    assert judge.rungs == [1, 2, 4]
    judge3 = MOASHA(epochs=5, min_epochs=1, reduction_factor=3)
    for n in range(5):
        judge3.should_stop(n, 0, 0.9 - n * 0.1, 1000.0)
    # 2 epochs trained is no rung for eta=3: even the worst trial goes on.
    assert judge3.should_stop(4, 1, 0.0, 1e9) is False
    assert set(judge3.table[1]) == set(range(5))
    assert judge3.table[3] == {}


def test_fewer_than_eta_results_always_continue() -> None:
    judge = MOASHA(epochs=5, min_epochs=1, reduction_factor=3)
    assert judge.should_stop(0, 0, 0.9, 1000.0) is False
    assert judge.should_stop(1, 0, 0.1, 1e6) is False  # dominated, but only 2 < eta results
    assert judge.should_stop(2, 0, 0.05, 2e6) is True  # third result: top 1 of 3 goes on


def test_dominated_candidates_stop_and_pareto_rank_decides() -> None:
    results = {
        0: (0.95, 10_000.0),  # rank 0
        1: (0.90, 5_000.0),  # rank 0
        2: (0.80, 20_000.0),  # dominated by 0 -> rank 1
        3: (0.70, 50_000.0),  # rank 2
        4: (0.60, 60_000.0),  # rank 3
        5: (0.50, 70_000.0),  # rank 4
    }
    assert nondominated_ranks(list(results.values())) == [0, 0, 1, 2, 3, 4]
    kept = [k for k in results if continues(k, results, eta=3)]
    assert kept == [0, 1]  # ceil(6 / 3) = 2, both non-dominated
    assert [k for k in results if continues(k, results, eta=2)] == [0, 1, 2]


def test_crowding_distance_breaks_ties_within_a_rank() -> None:
    # Five non-dominated points: extremes first, then the least crowded interior one.
    pts = [(0.80, 3.0), (0.85, 3.5), (0.86, 3.55), (0.95, 4.5), (0.99, 5.0)]
    assert nondominated_ranks(pts) == [0] * 5
    d = crowding_distance(pts)
    assert d[0] == d[4] == float("inf")
    assert d[3] > d[1] > 0 and d[3] > d[2]
    results = {i: (a, 10**s) for i, (a, s) in enumerate(pts)}
    assert [k for k in results if continues(k, results, eta=2)] == [0, 3, 4]


def test_grace_trials_continue() -> None:
    results = {0: (0.9, 1.0), 1: (0.5, 2.0), 2: (0.4, 3.0)}
    assert not continues(2, results, eta=3, grace_trials=0)
    assert continues(2, results, eta=3, grace_trials=3)


def test_judge_is_picklable_and_rebuilt_from_the_study(tmp_path: Path) -> None:
    storage = make_storage(None, "s", tmp_path)
    study = optuna.create_study(
        study_name="s", storage=storage, directions=["maximize", "minimize"]
    )
    link = StudyLink(storage=None, study_name="s", output_dir=str(tmp_path))
    judge = MOASHA(epochs=5, min_epochs=1, reduction_factor=3, link=link)
    trials = [study.ask() for _ in range(3)]
    assert judge.should_stop(0, 0, 0.9, 1000.0) is False
    assert judge.should_stop(1, 0, 0.8, 2000.0) is False
    assert judge.should_stop(1, 1, 0.85, 2000.0) is False
    study.tell(trials[0], [0.95, 1000.0])
    study.tell(trials[1], state=TrialState.PRUNED)
    assert study.trials[1].user_attrs[keys.PARTIAL] == {
        "size_bytes": 2000.0,
        "val_accuracy": {"1": 0.8, "2": 0.85},
    }
    # A resumed search (or a Ray actor) gets a copy without open handles, seeded lazily.
    fresh = pickle.loads(pickle.dumps(MOASHA(epochs=5, link=link)))
    assert fresh.should_stop(2, 0, 0.1, 5000.0) is True  # third result at rung 1, dominated
    assert set(fresh.table[1]) == {0, 1, 2}
    study.tell(trials[2], state=TrialState.PRUNED)


def test_config_switches_it_off_and_validates() -> None:
    assert make_early_stop(compose(["early_stop=none"])) is None
    judge = make_early_stop(compose(["early_stop=moasha", "early_stop.reduction_factor=2"]))
    assert isinstance(judge, MOASHA) and judge.eta == 2
    with pytest.raises(ConfigError, match="early_stop.min_epochs=0 must be >= 1"):
        compose(["early_stop.min_epochs=0"])
