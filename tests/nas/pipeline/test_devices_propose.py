"""A proposal of a multi-device search: figures and constraints per device, one
"feasible on any device" constraint for the samplers, bit-widths per device."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest

from nas import compose
from nas.hw import RandomSuggest
from nas.pipeline import (
    AIMED_DEVICE,
    ANY_DEVICE,
    Proposal,
    any_device_constraint,
    infeasible_result,
    propose,
)
from nas.runners import make_context
from nas.runners._context import usable_bits

DEVICES = ["mobile", "raspi4", "mcu"]


def _ctx(tmp: Path, fast, *extra: str):  # type: ignore[no-untyped-def]
    # train.threads=1: make_context sets torch's threads for the whole test process.
    cfg = compose(fast("+hw=[mobile,raspi4,mcu]", "train.threads=1", *extra))
    return cfg, make_context(cfg, out_dir=tmp, study_name="t", evaluator=False)


def test_each_device_gets_its_figures_and_constraints(tmp_path: Path, fast) -> None:
    # Budgets inside the range the tiny space spans, so the devices disagree.
    cfg, ctx = _ctx(
        tmp_path, fast, "search.device_constraint=any",
        "devices.mobile.size_budget_bytes=3000", "devices.mcu.peak_memory_budget_bytes=1500",
    )  # fmt: skip
    assert ctx.hw is None and [d.name for d in ctx.devices] == DEVICES
    # The union of the devices' kernels, within compress.bits.
    assert (
        ctx.bits
        == usable_bits(cfg)
        == sorted(
            set(cfg.compress.bits)
            & ({*cfg.devices.mobile.bits} | {8, 32} | {*cfg.devices.mcu.bits})
        )
    )
    rng = np.random.default_rng(0)
    seen_feasible = {d: 0 for d in DEVICES}
    for number in range(40):
        p = propose(RandomSuggest(rng), ctx, number=number)
        assert list(p.device_constraints) == DEVICES
        for d in ("mobile", "raspi4"):
            assert math.isfinite(p.metrics[f"latency_ms_estimate.{d}"])
            assert f"peak_memory_bytes.{d}" in p.metrics
        # raspi4 has int8 and fp32 kernels only: any other bit-width is infeasible there.
        raspi = p.device_constraints["raspi4"]
        assert raspi["bits"] == (0.0 if p.compression["bits"] in (8, 32) else 1.0)
        assert p.device_constraints["mcu"]["bits"] == (0.0 if p.compression["bits"] <= 8 else 1.0)
        # int8 activations on the mcu: a quarter of the fp32 peak of the same model.
        assert p.metrics["peak_memory_bytes.mcu"] * 4 == p.metrics["peak_memory_bytes.mobile"]
        on = [d for d, c in p.device_constraints.items() if all(v <= 0 for v in c.values())]
        assert p.feasible_on == on and p.feasible == bool(on)
        assert p.constraints == {ANY_DEVICE: any_device_constraint(p.device_constraints)}
        assert (p.constraints[ANY_DEVICE] <= 0) == p.feasible
        for d in on:
            seen_feasible[d] += 1
    assert all(seen_feasible.values()), seen_feasible
    assert len(set(seen_feasible.values())) > 1, "the budgets should split the devices"


def test_the_samplers_can_see_one_constraint_feasible_on_any_device(tmp_path: Path, fast) -> None:
    _, ctx = _ctx(
        tmp_path, fast, "search.device_constraint=any", "devices.mobile.size_budget_bytes=3000"
    )
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    p = propose(trial, ctx, number=trial.number)
    study.tell(trial, [0.5, 1.0])
    stored = {k: v for k, v in study.trials[0].system_attrs.items() if k.startswith("constraints")}
    assert stored == {f"constraints:{ANY_DEVICE}": p.constraints[ANY_DEVICE]}


def test_any_device_is_the_best_devices_worst_violation() -> None:
    per = {"a": {"size": 0.3, "lat": -0.2}, "b": {"size": -0.1, "lat": 0.05}}
    assert any_device_constraint(per) == pytest.approx(0.05)  # b is nearest to feasible
    per["c"] = {"size": -0.4, "lat": -0.01}
    assert any_device_constraint(per) == pytest.approx(-0.01)
    p = Proposal(0, {}, {"bits": 8}, {"size_bytes_estimate": 1.0}, {}, device_constraints=per)
    assert p.feasible and p.feasible_on == ["c"]
    r = infeasible_result(p)
    assert r.device_constraints == per and r.feasible_on == []  # never trained


def test_round_robin_aims_each_trial_at_one_device_and_still_trains_any_fit(
    tmp_path: Path, fast
) -> None:  # type: ignore[no-untyped-def]
    # round_robin is the default.
    _, ctx = _ctx(
        tmp_path, fast,
        "devices.mobile.size_budget_bytes=3000", "devices.mcu.peak_memory_budget_bytes=1500",
    )  # fmt: skip
    rng = np.random.default_rng(1)
    for number in range(12):
        p = propose(RandomSuggest(rng), ctx, number=number)
        aimed = p.device_constraints[DEVICES[number % 3]]
        assert p.constraints == {AIMED_DEVICE: max(aimed.values())}
        # Trained when it fits any device, whichever it was aimed at.
        assert p.feasible == bool(p.feasible_on)
