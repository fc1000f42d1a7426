"""The scored population of a weight-sharing search (``nas.study.summarize_population``):
the table and plot the parent run gets, and Kendall's tau between each finalist's
estimated and final accuracy, on studies built in memory."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import scipy.stats
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from nas.study import kendall_tau, keys, population_rows, summarize_population

DISTRIBUTIONS = {"x": IntDistribution(0, 100), "bits": CategoricalDistribution([4, 8, 32])}


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(directions=["maximize", "minimize"])


def _scored(
    study: optuna.Study,
    x: int,
    acc: float,
    size: float,
    *,
    feasible: bool = True,
    seconds: float = 0.1,
) -> int:
    metrics: dict[str, Any] = {
        "val_accuracy": acc if feasible else 0.0,
        "size_bytes": size,
        "size_bytes_estimate": size,
        "macs": 1000.0 * x,
        "score_seconds": seconds if feasible else None,
    }
    study.add_trial(
        create_trial(
            params={"x": x, "bits": 8},
            distributions=DISTRIBUTIONS,
            values=[metrics["val_accuracy"], size],
            user_attrs={
                keys.PHASE: "score",
                keys.FEASIBLE: feasible,
                keys.METRICS: metrics,
                keys.ARCH: {"width_mult": 0.5, "depths": [x]},
            },
        )
    )
    return len(study.trials) - 1


def _final(study: optuna.Study, of: int, acc: float, *, feasible: bool = True) -> int:
    scored = study.trials[of]
    size = scored.values[1] * 0.9
    study.add_trial(
        create_trial(
            params=scored.params,
            distributions=DISTRIBUTIONS,
            values=[acc, size],
            user_attrs={
                keys.PHASE: "final",
                keys.FEASIBLE: feasible,
                keys.FINALIST_OF: of,
                keys.METRICS: {"val_accuracy": acc, "size_bytes": size},
            },
        )
    )
    return len(study.trials) - 1


@pytest.fixture
def study() -> tuple[optuna.Study, list[int]]:
    """Five feasible scored candidates, one infeasible, one failed; four finalists."""
    s = _study()
    scored = [
        _scored(s, 1, 0.50, 1000, seconds=0.1),
        _scored(s, 2, 0.60, 2000, seconds=0.3),
        _scored(s, 3, 0.70, 3000, seconds=0.2),
        _scored(s, 4, 0.80, 4000, seconds=0.5),
        _scored(s, 5, 0.40, 5000, seconds=0.4),
    ]
    _scored(s, 6, 0.0, 99, feasible=False)
    s.add_trial(
        create_trial(state=TrialState.FAIL, params={"x": 7, "bits": 8}, distributions=DISTRIBUTIONS)
    )
    # Final accuracies ranked (0, 1, 3, 2): one discordant pair of six; tau = 4/6.
    for of, acc in zip(scored[:4], [0.55, 0.58, 0.90, 0.85], strict=True):
        _final(s, of, acc)
    return s, scored


def test_population_rows_are_the_scored_candidates(study: tuple[optuna.Study, list[int]]) -> None:
    s, scored = study
    rows = population_rows(s)
    assert [r["trial"] for r in rows] == [*scored, 5]  # no finals, no failed trial
    first = rows[0]
    assert first["feasible"] is True
    assert first["val_accuracy_estimate"] == 0.50
    assert first["size_bytes_estimate"] == 1000
    assert first["x"] == 1 and first["bits"] == 8  # the params, flat
    assert first["arch"] == '{"width_mult": 0.5, "depths": [1]}'
    assert first["latency_ms_estimate"] is None  # no hw profile
    infeasible = rows[-1]
    assert infeasible["feasible"] is False and infeasible["val_accuracy_estimate"] is None


def test_summarize_population_writes_the_table_and_plot(
    study: tuple[optuna.Study, list[int]], tmp_path: Path
) -> None:
    s, _ = study
    out = tmp_path / "out"
    summary = summarize_population(s, out, title="test: population")

    assert summary.files == [out / "population.csv", out / "population.png"]
    with open(out / "population.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6
    assert {
        "trial",
        "feasible",
        "val_accuracy_estimate",
        "size_bytes_estimate",
        "x",
        "arch",
    } <= set(table[0])
    assert (out / "population.png").read_bytes().startswith(b"\x89PNG")

    m = summary.metrics
    assert m["n_scored"] == 5  # feasible scored candidates only
    assert m["n_finalised"] == 4
    assert m["score_seconds_median"] == pytest.approx(0.3)
    assert m["kendall_tau_finalists"] == pytest.approx(4 / 6)
    estimated, final = [0.50, 0.60, 0.70, 0.80], [0.55, 0.58, 0.90, 0.85]
    assert m["kendall_tau_finalists"] == pytest.approx(scipy.stats.kendalltau(estimated, final)[0])


def test_an_infeasible_finalist_is_not_counted(tmp_path: Path) -> None:
    s = _study()
    a, b, c = (_scored(s, x, acc, 1000 * x) for x, acc in ((1, 0.5), (2, 0.6), (3, 0.7)))
    _final(s, a, 0.5)
    _final(s, b, 0.4)
    _final(s, c, 0.9, feasible=False)
    m = summarize_population(s, tmp_path, title="t").metrics
    assert m["n_finalised"] == 2
    assert m["kendall_tau_finalists"] == pytest.approx(-1.0)


@pytest.mark.parametrize("finalists", [0, 1])
def test_kendall_tau_is_nan_with_fewer_than_two_finalists(tmp_path: Path, finalists: int) -> None:
    s = _study()
    scored = [_scored(s, x, 0.1 * x, 1000 * x) for x in (1, 2, 3)]
    for of in scored[:finalists]:
        _final(s, of, 0.5)
    summary = summarize_population(s, tmp_path, title="t")
    assert math.isnan(summary.metrics["kendall_tau_finalists"])
    assert summary.metrics["n_finalised"] == finalists
    assert (tmp_path / "population.png").exists()


def test_an_empty_population_still_writes_its_files(tmp_path: Path) -> None:
    summary = summarize_population(_study(), tmp_path, title="t")
    assert summary.metrics["n_scored"] == 0
    assert math.isnan(summary.metrics["score_seconds_median"])
    assert all(p.exists() for p in summary.files)


@pytest.mark.parametrize(
    ("xs", "ys", "expected"),
    [
        ([1, 2, 3, 4], [1, 2, 3, 4], 1.0),
        ([1, 2, 3, 4], [4, 3, 2, 1], -1.0),
        ([0.5, 0.6, 0.7, 0.8], [0.55, 0.58, 0.90, 0.85], 4 / 6),
    ],
)
def test_kendall_tau_agrees_with_scipy(xs: list[float], ys: list[float], expected: float) -> None:
    assert kendall_tau(xs, ys) == pytest.approx(expected)
    assert kendall_tau(xs, ys) == pytest.approx(scipy.stats.kendalltau(xs, ys)[0])


def test_kendall_tau_with_ties_is_tau_b() -> None:
    xs, ys = [1, 2, 2, 3, 4], [1, 3, 2, 2, 5]
    assert kendall_tau(xs, ys) == pytest.approx(scipy.stats.kendalltau(xs, ys, variant="b")[0])


@pytest.mark.parametrize(("xs", "ys"), [([], []), ([0.5], [0.7]), ([0.5, 0.5], [0.1, 0.2])])
def test_kendall_tau_is_nan_without_two_pairs_or_spread(xs: list[float], ys: list[float]) -> None:
    assert math.isnan(kendall_tau(xs, ys))
