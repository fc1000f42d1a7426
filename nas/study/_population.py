"""The scored population of a weight-sharing search, for its parent run.

Under a strategy that scores candidates without recording each as an MLflow run
(``supernet``), the candidates live in the Optuna study only. This module turns
them into what a user browses on the parent run: a table of every scored
candidate, a plot of the population with its estimated front and the finalised
artifacts, and how well the estimates ranked the finalists (Kendall's tau between
the estimated and the final val accuracy).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.study import keys
from nas.study._pareto import Point, pareto_front, write_csv
from nas.study._storage import trial_at

__all__ = ["PopulationSummary", "kendall_tau", "population_rows", "summarize_population"]


@dataclass
class PopulationSummary:
    """What the parent run gets: metrics, and the files written."""

    metrics: dict[str, float]
    files: list[Path]


def _scored(study: optuna.Study) -> list[FrozenTrial]:
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get(keys.PHASE) != "final"
    ]


def _finals(study: optuna.Study) -> list[FrozenTrial]:
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get(keys.PHASE) == "final" and t.user_attrs.get(keys.FEASIBLE)
    ]


def population_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per scored candidate (feasible or not): its params and estimates."""
    rows = []
    for t in _scored(study):
        m = t.user_attrs.get(keys.METRICS) or {}
        row: dict[str, Any] = {
            "trial": t.number,
            "feasible": bool(t.user_attrs.get(keys.FEASIBLE)),
            "val_accuracy_estimate": m.get("val_accuracy")
            if t.user_attrs.get(keys.FEASIBLE)
            else None,
            "size_bytes_estimate": m.get("size_bytes_estimate"),
            "latency_ms_estimate": m.get("latency_ms_estimate"),
            "peak_memory_bytes": m.get("peak_memory_bytes"),
            "macs": m.get("macs"),
            "score_seconds": m.get("score_seconds"),
        }
        # A multi-device search's figures per device (latency_ms_estimate.<device>):
        # what an adaptive package stores per point.
        row.update(
            {
                k: v
                for k, v in m.items()
                if k.startswith(("latency_ms_estimate.", "peak_memory_bytes."))
            }
        )
        row.update(t.params)
        row["arch"] = json.dumps(t.user_attrs.get(keys.ARCH, {}))
        rows.append(row)
    return rows


def kendall_tau(xs: list[float], ys: list[float]) -> float:
    """Kendall's tau-b of two paired samples (nan with fewer than two pairs or no spread)."""
    if len(xs) < 2:
        return math.nan
    from scipy.stats import kendalltau

    tau = kendalltau(xs, ys).statistic
    return float(tau) if tau is not None else math.nan


def summarize_population(study: optuna.Study, out_dir: Path, *, title: str) -> PopulationSummary:
    """Write ``population.csv`` and ``population.png`` to ``out_dir``; the metrics."""
    rows = population_rows(study)
    scored = [r for r in rows if r["feasible"]]
    finals = _finals(study)
    estimated, final = [], []
    for t in finals:
        of = t.user_attrs.get(keys.FINALIST_OF)
        if of is None:
            continue
        est = (trial_at(study, of).user_attrs.get(keys.METRICS) or {}).get("val_accuracy")
        if est is not None:
            estimated.append(float(est))
            final.append(float(t.values[0]))
    seconds = [r["score_seconds"] for r in scored if r["score_seconds"] is not None]
    metrics = {
        "n_scored": float(len(scored)),
        "n_finalised": float(len(finals)),
        "kendall_tau_finalists": kendall_tau(estimated, final),
        "score_seconds_median": statistics.median(seconds) if seconds else math.nan,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out_dir / "population.csv", out_dir / "population.png"
    write_csv(csv_path, rows)
    _plot(png_path, scored, finals, title=title)
    return PopulationSummary({k: v for k, v in metrics.items()}, [csv_path, png_path])


def _plot(
    path: Path, scored: list[dict[str, Any]], finals: list[FrozenTrial], *, title: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [
        Point(r["trial"], float(r["val_accuracy_estimate"]), float(r["size_bytes_estimate"]))
        for r in scored
    ]
    front = pareto_front(points)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter([p.size_bytes for p in points], [p.accuracy for p in points], s=6,
               c="#c3ccd6", label=f"scored, inherited weights ({len(points)})")  # fmt: skip
    ax.step([p.size_bytes for p in front], [p.accuracy for p in front], where="post",
            c="#30638e", lw=1.2, label=f"estimated front ({len(front)})")  # fmt: skip
    ax.scatter([float(t.values[1]) for t in finals], [float(t.values[0]) for t in finals], s=40,
               c="#d1495b", zorder=3, label=f"finalised artifacts ({len(finals)})")  # fmt: skip
    if points or finals:
        ax.set_xscale("log")
    ax.set_xlabel("size_bytes (log scale)")
    ax.set_ylabel("val_accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
