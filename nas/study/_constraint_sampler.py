"""A sampler wrapper that screens proposals with a model of the hw constraints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.search_space import IntersectionSearchSpace
from optuna.trial import FrozenTrial, TrialState

__all__ = ["ConstraintModelSampler"]


class ConstraintModelSampler(optuna.samplers.BaseSampler):
    """Wraps a sampler so that its proposals avoid the region predicted infeasible.

    Feasibility (``trial.set_constraint``; feasible when every value <= 0) is known
    for every finished trial, cheaply, before training. This wrapper fits one ridge
    regression per constraint, of log(value / budget) = log(1 + constraint) on the
    parameters (log-scaled numbers, one-hot choices), over the parameters every trial
    has. For each new trial it asks the wrapped sampler for its relative proposal (up
    to ``n_candidates`` times; parameters the wrapped sampler leaves to independent
    sampling, as TPE does in its random start-up, are drawn at random), and keeps the
    first one predicted feasible, else the one predicted least infeasible. Until
    ``min_trials`` trials have constraints it changes nothing.

    Lifecycle: as any Optuna sampler; before_trial/after_trial go to the wrapped one.
    """

    def __init__(
        self,
        base: optuna.samplers.BaseSampler,
        *,
        n_candidates: int = 16,
        min_trials: int = 5,
        seed: int | None = None,
    ) -> None:
        self.base = base
        self.n_candidates = n_candidates
        self.min_trials = min_trials
        self._rng = np.random.RandomState(seed)
        self._space = IntersectionSearchSpace(include_pruned=True)

    def __str__(self) -> str:
        return f"ConstraintModelSampler({self.base})"

    def reseed_rng(self) -> None:
        self._rng.seed()
        self.base.reseed_rng()

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.base.after_trial(study, trial, state, values)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        # The wrapped sampler's space (with TPE's groups, conditional parameters too),
        # and the parameters every trial has, on which the constraint model is fitted.
        return {**self._model_space(study), **self.base.infer_relative_search_space(study, trial)}

    def _model_space(self, study: optuna.Study) -> dict[str, BaseDistribution]:
        return {k: d for k, d in self._space.calculate(study).items() if not d.single()}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        base_space = self.base.infer_relative_search_space(study, trial)
        space = {k: d for k, d in self._model_space(study).items() if k in search_space}
        model = _ConstraintModel.fit(study, space, self.min_trials) if space else None
        if model is None:
            return self.base.sample_relative(study, trial, base_space)
        best: tuple[float, dict[str, Any]] | None = None
        for _ in range(self.n_candidates):
            params = dict(self.base.sample_relative(study, trial, base_space))
            for name, dist in space.items():
                if name not in params:
                    params[name] = _draw(dist, self._rng)
            violation = model.violation(params)
            if violation <= 0:
                return params
            if best is None or violation < best[0]:
                best = (violation, params)
        assert best is not None
        return best[1]

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.base.sample_independent(study, trial, param_name, param_distribution)


def _draw(dist: BaseDistribution, rng: np.random.RandomState) -> Any:
    """A uniform draw from ``dist``, as RandomSampler makes (in external repr)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[rng.randint(len(dist.choices))]
    assert isinstance(dist, FloatDistribution | IntDistribution)
    if dist.log:
        value = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
    else:
        value = rng.uniform(dist.low, dist.high)
    if dist.step is not None:
        value = dist.low + round((value - dist.low) / dist.step) * dist.step
    value = min(max(value, dist.low), dist.high)
    return int(round(value)) if isinstance(dist, IntDistribution) else float(value)


class _ConstraintModel:
    """Ridge regressions of log(1 + constraint) on encoded params, one per constraint."""

    def __init__(
        self,
        space: dict[str, BaseDistribution],
        keys: list[str],
        mean: np.ndarray,
        scale: np.ndarray,
        coef: np.ndarray,
    ) -> None:
        self.space, self.keys, self.mean, self.scale, self.coef = space, keys, mean, scale, coef

    @classmethod
    def fit(
        cls, study: optuna.Study, space: dict[str, BaseDistribution], min_trials: int
    ) -> _ConstraintModel | None:
        done = study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        )
        rows = [t for t in done if t.constraints and all(k in t.params for k in space)]
        if len(rows) < min_trials:
            return None
        keys = sorted(rows[-1].constraints)
        rows = [t for t in rows if sorted(t.constraints) == keys]
        if len(rows) < min_trials:
            return None
        x = np.array([_encode(space, t.params) for t in rows])
        y = np.array([[math.log1p(max(t.constraints[k], -0.999)) for k in keys] for t in rows])
        mean, scale = x.mean(0), x.std(0)
        scale[scale == 0] = 1.0
        z = np.hstack([np.ones((len(rows), 1)), (x - mean) / scale])
        reg = np.eye(z.shape[1])
        reg[0, 0] = 0.0  # the intercept is not shrunk
        coef = np.linalg.solve(z.T @ z + reg, z.T @ y)
        return cls(space, keys, mean, scale, coef)

    def violation(self, params: dict[str, Any]) -> float:
        """Predicted largest log(value / budget); the params look feasible when <= 0."""
        x = (np.array(_encode(self.space, params)) - self.mean) / self.scale
        return float(np.max(np.concatenate([[1.0], x]) @ self.coef))


def _encode(space: dict[str, BaseDistribution], params: dict[str, Any]) -> list[float]:
    out: list[float] = []
    for name, dist in sorted(space.items()):
        v = params[name]
        if isinstance(dist, CategoricalDistribution):
            numeric = all(
                isinstance(c, int | float) and not isinstance(c, bool) for c in dist.choices
            )
            if numeric:
                positive = all(float(c) > 0 for c in dist.choices)  # type: ignore[arg-type]
                out.append(math.log(v) if positive else float(v))
            else:
                out.extend(float(v == c) for c in dist.choices)
        else:
            low = dist.low  # type: ignore[attr-defined]
            out.append(math.log(v) if low > 0 else float(v))
    return out
