"""A proposal's modelled energy: a metric of every trial with a device, checked against
``hw.energy_budget_uj`` before training, per device in a multi-device search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nas import compose
from nas.hw import RandomSuggest
from nas.pipeline import infeasible_result, propose
from nas.runners import make_context

# Only the energy budget decides feasibility here.
NO_OTHER_BUDGETS = ("+hw=mobile", "hw.size_budget_bytes=null", "hw.latency_budget_ms=null")


def _proposals(tmp: Path, fast, *overrides: str, n: int = 24):  # type: ignore[no-untyped-def]
    # train.threads=1: make_context sets torch's threads for the whole test process.
    cfg = compose(fast("train.threads=1", *overrides))
    ctx = make_context(cfg, out_dir=tmp, study_name="t", evaluator=False)
    rng = np.random.default_rng(0)
    return [propose(RandomSuggest(rng), ctx, number=i) for i in range(n)]


def test_a_budget_rejects_the_candidates_over_it_before_training(tmp_path: Path, fast) -> None:
    free = _proposals(tmp_path, fast, *NO_OTHER_BUDGETS)
    energies = sorted(p.metrics["energy_uj"] for p in free)
    assert energies[0] > 0 and all("energy_uj" not in p.constraints for p in free)
    budget = energies[len(energies) // 2]  # the median: about half are over it
    budgeted = _proposals(tmp_path, fast, *NO_OTHER_BUDGETS, f"hw.energy_budget_uj={budget}")
    over = [p for p in budgeted if p.metrics["energy_uj"] > budget]
    assert over and len(over) < len(budgeted)
    for p in budgeted:
        assert p.constraints["energy_uj"] == pytest.approx(p.metrics["energy_uj"] / budget - 1)
        assert p.feasible == (p.metrics["energy_uj"] <= budget)
    # Refused before training: recorded at zero accuracy, with its energy as its cost.
    refused = infeasible_result(over[0])
    assert refused.objectives("energy_uj") == (0.0, over[0].metrics["energy_uj"])


def test_each_device_gets_its_energy(tmp_path: Path, fast) -> None:
    for p in _proposals(tmp_path, fast, "+hw=[mobile,mcu]", n=6):
        mobile, mcu = p.metrics["energy_uj.mobile"], p.metrics["energy_uj.mcu"]
        # The same table and model; the mcu moves 1-byte activations, the phone 4-byte.
        assert 0 < mcu < mobile
        assert "energy_uj" not in p.metrics
