"""FrontState: one front per device, the accuracy floor, and the MLflow tags that
follow them (a recording stand-in for the Tracker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution

from nas.study import FrontState, front_rows, keys


class Recorded:
    """The Tracker calls FrontState makes, kept for inspection."""

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, str]] = {}
        self.parent: list[dict[str, float]] = []

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.tags.setdefault(run_id, {}).update(tags)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        pass

    def log_artifact(self, run_id: str, path: Path) -> None:
        pass

    def log_parent(self, *, metrics: dict[str, float], step: int = 0, **_: Any) -> None:
        self.parent.append(dict(metrics))


def _study(rows: list[tuple[float, float, dict[str, dict[str, float]] | None]]) -> optuna.Study:
    """Trained trials (val accuracy, size, per-device constraints), run ids r0, r1, ..."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for i, (acc, size, per_device) in enumerate(rows):
        attrs: dict[str, Any] = {keys.RUN_ID: f"r{i}", keys.FEASIBLE: True}
        if per_device is not None:
            attrs[keys.DEVICE_CONSTRAINTS] = per_device
        study.add_trial(
            optuna.trial.create_trial(
                values=[acc, size],
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs=attrs,
            )
        )
    return study


OK, OVER = {"size_bytes": -0.5}, {"size_bytes": 0.5}


def test_each_device_has_its_own_front_and_hypervolume() -> None:
    study = _study(
        [
            (0.90, 1_000, {"phone": OK, "mcu": OK}),  # on both fronts
            (0.95, 5_000, {"phone": OK, "mcu": OVER}),  # phone only: too large for the mcu
            (0.97, 9_000, {"phone": OVER, "mcu": OK}),  # mcu only
            (0.85, 2_000, {"phone": OK, "mcu": OK}),  # dominated everywhere
        ]
    )
    tracker = Recorded()
    state = FrontState(tracker, 0.5, 1e6, min_accuracy=0.2, devices=["phone", "mcu"])  # type: ignore[arg-type]
    state.refresh(study, step=1)
    phone, mcu = state.by_device["phone"], state.by_device["mcu"]
    assert [p.number for p in phone.front] == [0, 1]
    assert [p.number for p in mcu.front] == [0, 2]
    assert {p.number for p in phone.points} == {0, 1, 3}
    assert phone.hv > 0 and mcu.hv > 0 and phone.hv != mcu.hv
    assert state.hv == pytest.approx((phone.hv + mcu.hv) / 2)
    assert [p.number for p in state.front] == [0, 1, 2]  # the union
    t = tracker.tags
    assert t["r0"]["pareto.phone"] == t["r0"]["pareto.mcu"] == t["r0"]["pareto"] == "true"
    assert (t["r1"]["pareto.phone"], t["r1"]["pareto.mcu"], t["r1"]["pareto"]) == (
        "true", "false", "true",
    )  # fmt: skip
    assert (t["r2"]["pareto.phone"], t["r2"]["pareto.mcu"]) == ("false", "true")
    assert t["r3"]["pareto"] == "false"
    assert tracker.parent[-1] == {
        "hypervolume.phone": phone.hv, "front_size.phone": 2,
        "hypervolume.mcu": mcu.hv, "front_size.mcu": 2,
    }  # fmt: skip


def test_a_chance_level_model_is_on_no_front_and_says_why() -> None:
    """The smallest model would be on the front only because nothing smaller exists."""
    study = _study([(0.10, 9_676, None), (0.74, 20_000, None), (0.98, 90_000, None)])
    tracker = Recorded()
    floored = FrontState(tracker, 0.05, 1e6, min_accuracy=0.2)  # type: ignore[arg-type]
    floored.refresh(study, step=None)
    assert [p.number for p in floored.front] == [1, 2]
    assert len(floored.points) == 3  # still plotted as a trained trial
    assert tracker.tags["r0"]["pareto"] == "false"
    assert tracker.tags["r0"][keys.TAG_OFF_FRONT] == (
        "val_accuracy 0.1000 is below search.min_accuracy 0.2000"
    )
    assert keys.TAG_OFF_FRONT not in tracker.tags["r1"]
    unfloored = FrontState(Recorded(), 0.05, 1e6, min_accuracy=0.0)  # type: ignore[arg-type]
    unfloored.refresh(study, step=None)
    assert [p.number for p in unfloored.front] == [0, 1, 2]
    # The rejected member's area is gone from the hypervolume too.
    assert floored.hv < unfloored.hv


def test_a_single_device_search_keeps_its_one_front_and_tags() -> None:
    study = _study([(0.9, 1_000, None), (0.8, 2_000, None)])
    tracker = Recorded()
    state = FrontState(tracker, 0.5, 1e6)  # type: ignore[arg-type]
    state.refresh(study, step=3)
    assert state.by_device == {} and [p.number for p in state.front] == [0]
    assert tracker.tags["r0"] == {"pareto": "true"}
    assert set(tracker.parent[-1]) == {"hypervolume", "front_size"}


def test_an_energy_front_ranks_by_energy_and_its_rows_keep_the_bytes() -> None:
    # The study's second objective is the energy (search.cost=energy_uj): the smaller
    # model (r1) spends more energy, so the front is the other way round from sizes.
    study = optuna.create_study(directions=["maximize", "minimize"])
    for i, (acc, energy, size) in enumerate([(0.9, 2.0, 9_000.0), (0.8, 5.0, 1_000.0)]):
        metrics = {"size_bytes": size, "energy_uj": energy}
        attrs = {keys.RUN_ID: f"r{i}", keys.FEASIBLE: True, keys.METRICS: metrics}
        study.add_trial(optuna.trial.create_trial(values=[acc, energy], user_attrs=attrs))
    state = FrontState(Recorded(), 0.5, 1000.0, cost="energy_uj")  # type: ignore[arg-type]
    state.refresh(study, step=None)
    assert [p.number for p in state.front] == [0]
    (row,) = front_rows(study, state.front)
    assert (row["size_bytes"], row["energy_uj"]) == (9_000, 2.0)
