"""The persisted Optuna study: samplers by name, storage, and resume rules."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Sequence
from pathlib import Path
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
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from nas._config import ConfigError, SamplerConfig

__all__ = [
    "DIRECTIONS",
    "ConstraintModelSampler",
    "INTERRUPTED",
    "counted_trials",
    "end_interrupted_trials",
    "list_samplers",
    "make_sampler",
    "open_study",
    "register_sampler",
]

DIRECTIONS = ("maximize", "minimize")  # val_accuracy, size_bytes (as given to Optuna)
INTERRUPTED = "interrupted"
"""User attr of a trial that a crash or Ctrl-C cut short; it does not count toward n_trials."""

SamplerFactory = Callable[[SamplerConfig, int], optuna.samplers.BaseSampler]
_SAMPLERS: dict[str, SamplerFactory] = {}


def register_sampler(name: str) -> Callable[[SamplerFactory], SamplerFactory]:
    """Register a sampler factory under its ``conf/sampler/<name>.yaml`` name."""

    def deco(fn: SamplerFactory) -> SamplerFactory:
        if name in _SAMPLERS:
            raise ValueError(f"sampler {name!r} is already registered")
        _SAMPLERS[name] = fn
        return fn

    return deco


def list_samplers() -> list[str]:
    return sorted(_SAMPLERS)


def make_sampler(cfg: SamplerConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The registered sampler ``cfg`` names, behind a :class:`ConstraintModelSampler`
    when ``cfg.feasibility_candidates`` > 0."""
    if cfg.name not in _SAMPLERS:
        raise ConfigError(f"sampler={cfg.name} is not known; choose one of {list_samplers()}")
    sampler = _SAMPLERS[cfg.name](cfg, seed)
    n = int(getattr(cfg, "feasibility_candidates", 0))
    if n > 0:
        sampler = ConstraintModelSampler(sampler, n_candidates=n, seed=seed)
    return sampler


# Constraints reach every sampler through trial.set_constraint (Optuna 5): a trial's
# FrozenTrial.constraints reads them from its system attrs. TPE puts infeasible trials
# in its "bad" group, NSGA-II uses constrained domination and GP models each constraint
# with its own GP. TPE's startup trials (and NSGA-II's first generation) are random
# draws, blind to them; ConstraintModelSampler covers those too.
@register_sampler("tpe")
def _tpe(cfg: SamplerConfig, seed: int) -> optuna.samplers.BaseSampler:
    # group=True: a multivariate TPE per group of parameters that occur together, so
    # conditional ones (prune_kind -> sparsity | channel_ratio, distill -> T, alpha) are
    # modelled jointly rather than falling back to independent draws.
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=cfg.n_startup_trials, multivariate=True, group=True
    )


@register_sampler("nsga2")
def _nsga2(cfg: SamplerConfig, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=cfg.population_size)


@register_sampler("random")
def _random(cfg: SamplerConfig, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@register_sampler("gp")
def _gp(cfg: SamplerConfig, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=cfg.n_startup_trials)


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


def make_storage(storage: str | None, study_name: str, output_dir: Path) -> BaseStorage | str:
    """A journal file in the output directory by default, else the given RDB URL."""
    if storage is None:
        path = output_dir / f"{study_name}.journal"
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" in storage:
        # An RDB URL (postgresql://..., mysql://..., sqlite:///...), the storage for a
        # search across machines. A search may wait minutes between two writes, in which
        # a server or proxy can drop idle connections: check each one before use.
        if storage.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
            # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; this project has psycopg2.
            storage = "postgresql+psycopg2://" + storage[len("postgresql://") :]
        try:
            return optuna.storages.RDBStorage(storage, engine_kwargs={"pool_pre_ping": True})
        except Exception as e:  # an unreachable server, a malformed URL, a missing driver
            raise ConfigError(
                f"search.storage: cannot open study storage: {_one_line(e)}"
            ) from None
    # A bare path means a journal file.
    return JournalStorage(JournalFileBackend(str(Path(storage).expanduser().resolve())))


def open_study(
    *,
    study_name: str,
    storage: BaseStorage | str,
    sampler: optuna.samplers.BaseSampler,
    config_hash: str,
) -> tuple[optuna.Study, bool]:
    """Create the study or load it; refuse to continue it under a different config.

    Returns (study, resumed). Trials a crash left RUNNING stay so until
    :func:`end_interrupted_trials` (once the tracking parent run is open).
    """
    try:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
        resumed = True
    except KeyError:
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            sampler=sampler,
            directions=["maximize", "minimize"],
        )
        study.set_user_attr("config_hash", config_hash)
        resumed = False
    except Exception as e:  # an unreachable or malformed RDB URL
        raise ConfigError(f"search.storage: cannot open study storage: {_one_line(e)}") from None
    found = study.user_attrs.get("config_hash")
    if resumed and found != config_hash:
        raise ConfigError(
            f"search.study_name={study_name!r} already holds a search with a different config "
            f"(hash {found}, now {config_hash}); pick another study_name or restore the config"
        )
    return study, resumed


def end_interrupted_trials(study: optuna.Study, run_of: Callable[[FrozenTrial], str]) -> None:
    """Mark the trials a killed process left RUNNING as FAILED and interrupted.

    They are then neither lost nor counted. ``run_of`` gives each one's tracking run
    id (creating the run if the process died before it did), recorded as the
    ``mlflow_run_id`` user attr while the trial can still take attrs.
    """
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "mlflow_run_id", run_of(t))
        study._storage.set_trial_user_attr(t._trial_id, INTERRUPTED, True)
        study._storage.set_trial_user_attr(t._trial_id, "error", "interrupted")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)


def counted_trials(study: optuna.Study) -> int:
    """Trials that count toward ``search.n_trials``: finished, and not cut short."""
    done = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    )
    return sum(1 for t in done if not t.user_attrs.get(INTERRUPTED, False))


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:300]
