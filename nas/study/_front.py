"""The Pareto front of a live study, kept in step with MLflow's `pareto` tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.study import keys
from nas.study._pareto import Point, hypervolume, pareto_front
from nas.study._tracking import Tracker

__all__ = ["FrontState", "front_rows"]


class FrontState:
    """The current front; keeps MLflow's `pareto` tags and the hypervolume in step."""

    def __init__(self, tracker: Tracker, ref_acc: float, ref_size: float) -> None:
        self.tracker, self.ref_acc, self.ref_size = tracker, ref_acc, ref_size
        self.front: list[Point] = []
        self.points: list[Point] = []
        self.hv = 0.0
        self._tagged: dict[int, bool] = {}
        self._runs: dict[int, str] = {}
        self._artifact_logged: set[int] = set()

    def refresh(self, study: optuna.Study, *, step: int | None) -> None:
        self.points = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            run_id = t.user_attrs.get(keys.RUN_ID)
            if run_id:
                self._runs[t.number] = run_id
            # Only recorded trials (with a run) make the front: a strategy's scored-only
            # trials are estimates, its finalists the real thing.
            if run_id and t.user_attrs.get(keys.FEASIBLE) and t.values is not None:
                self.points.append(_point(t))
        self.front = pareto_front(self.points)
        self.hv = hypervolume(self.points, ref_accuracy=self.ref_acc, ref_size_bytes=self.ref_size)
        on_front = {p.number for p in self.front}
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        for number, run_id in self._runs.items():
            want = number in on_front
            if self._tagged.get(number) == want and step is not None:
                continue
            self.tracker.set_tags(run_id, {keys.TAG_PARETO: str(want).lower()})
            self._tagged[number] = want
            t = by_number[number]
            if want and number not in self._artifact_logged:
                test_acc = t.user_attrs.get(keys.TEST_ACCURACY)
                if test_acc is not None:
                    self.tracker.log_metrics(run_id, {keys.TEST_ACCURACY: float(test_acc)})
                artifact = t.user_attrs.get(keys.ARTIFACT)
                if artifact and Path(artifact).exists():
                    self.tracker.log_artifact(run_id, Path(artifact))
                self._artifact_logged.add(number)
        if step is not None:
            self.tracker.log_parent(
                metrics={"hypervolume": self.hv, "front_size": len(self.front)}, step=step
            )


def _point(t: FrozenTrial) -> Point:
    m = t.user_attrs.get(keys.METRICS, {})
    extra: dict[str, Any] = {
        k: t.params[k] for k in ("bits", "sparsity", "width_mult") if k in t.params
    }
    if "latency_ms" in m:
        extra["latency_ms"] = round(m["latency_ms"], 4)
    return Point(t.number, float(t.values[0]), float(t.values[1]), extra)


def front_rows(study: optuna.Study, front: list[Point]) -> list[dict[str, Any]]:
    rows = []
    for p in front:
        t = study.trials[p.number]
        m = t.user_attrs.get(keys.METRICS, {})
        row: dict[str, Any] = {
            "trial": p.number,
            "run_id": t.user_attrs.get(keys.RUN_ID, ""),
            "val_accuracy": p.accuracy,
            "test_accuracy": t.user_attrs.get(keys.TEST_ACCURACY),
            "size_bytes": int(p.size_bytes),
        }
        for k in (
            "latency_ms",
            "peak_memory_bytes",
            "params",
            "nonzero_params",
            "macs",
            "train_seconds",
        ):
            if k in m:
                row[k] = m[k]
        row.update(t.params)
        row["arch"] = json.dumps(t.user_attrs.get(keys.ARCH, {}))
        rows.append(row)
    return rows
