"""The Pareto front of a live study, kept in step with MLflow's `pareto` tags."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.pipeline import feasible_on
from nas.study import keys
from nas.study._pareto import Point, hypervolume, pareto_front
from nas.study._tracking import Tracker

__all__ = ["Front", "FrontState", "front_rows"]


@dataclass
class Front:
    """One device's front (or the search's, with one device or none)."""

    points: list[Point] = field(default_factory=list)
    """Trained trials feasible here (the floor's rejects included: they are plotted)."""
    front: list[Point] = field(default_factory=list)
    hv: float = 0.0


class FrontState:
    """The current fronts; keeps MLflow's `pareto` tags and the hypervolumes in step.

    Args:
        min_accuracy: the floor (``search.min_accuracy``): a trial below it is on no
            front, adds no hypervolume, and its run is tagged ``off_front`` with why.
        devices: the devices of a multi-device search, each with its own front, tag
            ``pareto.<device>`` and metric ``hypervolume.<device>``; empty for one front.
        cost: the front's cost axis (``search.cost``): the study's second objective, so
            a :class:`Point`'s ``size_bytes`` holds it; ``ref_size`` is its reference.
    """

    def __init__(
        self,
        tracker: Tracker,
        ref_acc: float,
        ref_size: float,
        *,
        min_accuracy: float = 0.0,
        devices: Sequence[str] = (),
        cost: str = "size_bytes",
    ) -> None:
        self.tracker, self.ref_acc, self.ref_size = tracker, ref_acc, ref_size
        self.cost = cost
        self.min_accuracy = float(min_accuracy)
        self.devices = list(devices)
        self.by_device: dict[str, Front] = {d: Front() for d in self.devices}
        self.front: list[Point] = []
        self.points: list[Point] = []
        self.hv = 0.0
        self._tagged: dict[int, dict[str, str]] = {}
        self._runs: dict[int, str] = {}
        self._artifact_logged: set[int] = set()
        self._off_front: set[int] = set()

    def refresh(self, study: optuna.Study, *, step: int | None) -> None:
        trained: list[tuple[FrozenTrial, Point]] = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            run_id = t.user_attrs.get(keys.RUN_ID)
            if run_id:
                self._runs[t.number] = run_id
            # Only recorded trials (with a run) make the front: a strategy's scored-only
            # trials are estimates, its finalists the real thing.
            if run_id and t.user_attrs.get(keys.FEASIBLE) and t.values is not None:
                trained.append((t, _point(t)))
        self.points = [p for _, p in trained]
        if self.devices:
            for device in self.devices:
                here = [p for t, p in trained if device in _feasible_on(t)]
                self.by_device[device] = self._front_of(here)
            members = {p.number: p for f in self.by_device.values() for p in f.front}
            self.front = sorted(members.values(), key=lambda p: (p.size_bytes, p.number))
            self.hv = sum(f.hv for f in self.by_device.values()) / len(self.devices)
        else:
            single = self._front_of(self.points)
            self.front, self.hv = single.front, single.hv
        self._tag(study, {t.number: t for t, _ in trained}, step)
        if step is not None:
            self.tracker.log_parent(metrics=self.metrics(), step=step)

    def metrics(self) -> dict[str, float]:
        """The parent run's live metrics: the hypervolume and front size of each front."""
        if not self.devices:
            return {"hypervolume": self.hv, "front_size": len(self.front)}
        out: dict[str, float] = {}
        for device, f in self.by_device.items():
            out[keys.device_tag("hypervolume", device)] = f.hv
            out[keys.device_tag("front_size", device)] = len(f.front)
        return out

    def _front_of(self, points: list[Point]) -> Front:
        eligible = [p for p in points if p.accuracy >= self.min_accuracy]
        return Front(
            points=points,
            front=pareto_front(eligible),
            hv=hypervolume(eligible, ref_accuracy=self.ref_acc, ref_size_bytes=self.ref_size),
        )

    def _tag(self, study: optuna.Study, trained: dict[int, FrozenTrial], step: int | None) -> None:
        """Set each run's pareto tags where they changed, and log a new member's test
        accuracy and artifact; tag a trained trial kept off the fronts by the floor."""
        on_any = {p.number for p in self.front}
        per_device = {d: {p.number for p in f.front} for d, f in self.by_device.items()}
        by_number: dict[int, FrozenTrial] | None = None
        for number, run_id in self._runs.items():
            want = {keys.TAG_PARETO: str(number in on_any).lower()}
            for device, members in per_device.items():
                want[keys.device_tag(keys.TAG_PARETO, device)] = str(number in members).lower()
            t = trained.get(number)
            if t is not None and number not in self._off_front:
                acc = float(t.values[0])
                if acc < self.min_accuracy:
                    want[keys.TAG_OFF_FRONT] = (
                        f"val_accuracy {acc:.4f} is below search.min_accuracy "
                        f"{self.min_accuracy:.4f}"
                    )
                    self._off_front.add(number)
            if self._tagged.get(number) == want and step is not None:
                continue
            self.tracker.set_tags(run_id, want)
            self._tagged[number] = {k: v for k, v in want.items() if k != keys.TAG_OFF_FRONT}
            if number in on_any and number not in self._artifact_logged:
                if by_number is None:
                    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
                self._log_member(run_id, by_number[number])

    def _log_member(self, run_id: str, t: FrozenTrial) -> None:
        test_acc = t.user_attrs.get(keys.TEST_ACCURACY)
        if test_acc is not None:
            self.tracker.log_metrics(run_id, {keys.TEST_ACCURACY: float(test_acc)})
        artifact = t.user_attrs.get(keys.ARTIFACT)
        if artifact and Path(artifact).exists():
            self.tracker.log_artifact(run_id, Path(artifact))
        self._artifact_logged.add(t.number)


def _feasible_on(t: FrozenTrial) -> list[str]:
    return feasible_on(t.user_attrs.get(keys.DEVICE_CONSTRAINTS) or {})


def _point(t: FrozenTrial) -> Point:
    """A trial on the front's axes: val accuracy and the study's second objective (the
    cost, ``search.cost``), with the figures a plot's hover shows."""
    m = t.user_attrs.get(keys.METRICS, {})
    extra: dict[str, Any] = {
        k: t.params[k] for k in ("bits", "sparsity", "width_mult") if k in t.params
    }
    for key, digits in (("latency_ms", 4), ("size_bytes", 0), ("energy_uj", 3)):
        if key in m:
            extra[key] = round(m[key], digits)
    return Point(t.number, float(t.values[0]), float(t.values[1]), extra)


def front_rows(
    study: optuna.Study, front: list[Point], device: str | None = None
) -> list[dict[str, Any]]:
    """The front as table rows; ``device``: that device's figures (latency, peak
    memory, energy) of a multi-device search, under the plain column names."""
    rows = []
    # Read in place: study.trials would deep-copy every trial of the study.
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for p in front:
        t = trials[p.number]
        m = dict(t.user_attrs.get(keys.METRICS, {}))
        if device is not None:
            for k in ("latency_ms", "peak_memory_bytes", "energy_uj"):
                if keys.device_tag(k, device) in m:
                    m[k] = m[keys.device_tag(k, device)]
        row: dict[str, Any] = {
            "trial": p.number,
            "run_id": t.user_attrs.get(keys.RUN_ID, ""),
            "val_accuracy": p.accuracy,
            "test_accuracy": t.user_attrs.get(keys.TEST_ACCURACY),
            # The bytes written, whichever axis the front is on (p.size_bytes is its cost).
            "size_bytes": int(m.get("size_bytes", p.size_bytes)),
        }
        for k in (
            "energy_uj",
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
