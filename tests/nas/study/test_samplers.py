"""Samplers by name, and the constraint model that keeps proposals feasible."""

from __future__ import annotations

import optuna
import pytest

from nas import compose
from nas.study import ConstraintModelSampler, list_samplers, make_sampler


def _infeasible_shares(sampler: optuna.samplers.BaseSampler, n: int = 50) -> tuple[int, int]:
    """(infeasible in the first 10, infeasible after) on a toy constrained study.

    Feasible when 2 * x * k <= 1 (a quarter of the box), i.e. log1p(constraint) is
    log 2 + log x + log k.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    flags = []
    for _ in range(n):
        t = study.ask()
        x = t.suggest_float("x", 0.05, 1.0)
        k = t.suggest_categorical("k", [1, 2, 4])
        mode = t.suggest_categorical("mode", ["a", "b"])
        c = 2 * x * k - 1
        t.set_constraint("budget", c)
        study.tell(t, [x * k + (mode == "a") * 0.01, x])
        flags.append(c > 0)
    return sum(flags[:10]), sum(flags[10:])


def test_constraint_model_avoids_the_infeasible_region() -> None:
    _, blind = _infeasible_shares(optuna.samplers.RandomSampler(seed=0))
    _, aware = _infeasible_shares(
        ConstraintModelSampler(optuna.samplers.RandomSampler(seed=0), n_candidates=16, seed=0)
    )
    assert blind >= 20  # about 75% of the box is infeasible
    assert aware <= 10, (blind, aware)


@pytest.mark.parametrize("name", ["tpe", "nsga2", "random"])
def test_wrapped_samplers_run_and_delegate(name: str) -> None:
    cfg = compose([f"sampler={name}", "sampler.feasibility_candidates=8"])
    sampler = make_sampler(cfg.sampler, 0)
    assert isinstance(sampler, ConstraintModelSampler)
    first, after = _infeasible_shares(sampler, n=30)
    assert after <= 10


def test_feasibility_candidates_zero_leaves_the_sampler_bare() -> None:
    cfg = compose(["sampler=tpe", "sampler.feasibility_candidates=0"])
    assert isinstance(make_sampler(cfg.sampler, 0), optuna.samplers.TPESampler)
    assert set(list_samplers()) >= {"tpe", "nsga2", "random", "gp"}


def test_conditional_parameters_pass_through_tpe_groups() -> None:
    """TPE with group=True proposes conditional parameters the model does not see."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    cfg = compose(["sampler=tpe", "sampler.n_startup_trials=3", "sampler.feasibility_candidates=4"])
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler(cfg.sampler, 0)
    )
    for _ in range(15):
        t = study.ask()
        x = t.suggest_float("x", 0.05, 1.0)
        kind = t.suggest_categorical("kind", ["a", "b"])
        y = t.suggest_int("ya", 1, 4) if kind == "a" else t.suggest_float("yb", 0.0, 1.0)
        t.set_constraint("budget", 2 * x - 1)
        study.tell(t, [x + y, x])
    assert len(study.trials) == 15
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
