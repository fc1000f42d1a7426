"""Optuna samplers by ``sampler=`` option (:data:`SAMPLERS`), all seeded.

Constraints reach every sampler through ``trial.set_constraint`` (Optuna 5): a
trial's ``FrozenTrial.constraints`` reads them from its system attrs. TPE puts
infeasible trials in its "bad" group, NSGA-II uses constrained domination and GP
models each constraint with its own GP. TPE's start-up trials (and NSGA-II's first
generation) are random draws, blind to them; :class:`ConstraintModelSampler` covers
those too.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from nas.config import Registry, SamplerConfig
from nas.study._constraint_sampler import ConstraintModelSampler

__all__ = ["DIRECTIONS", "SAMPLERS", "list_samplers", "make_sampler", "register_sampler"]

DIRECTIONS = ("maximize", "minimize")  # val_accuracy, size_bytes (as given to Optuna)

SamplerFactory = Callable[[SamplerConfig, int], optuna.samplers.BaseSampler]
SAMPLERS: Registry[SamplerFactory] = Registry("sampler")
"""Sampler factories ``(cfg, seed) -> sampler`` by ``sampler=`` option."""


def register_sampler(name: str) -> Callable[[SamplerFactory], SamplerFactory]:
    """Register a sampler factory under its ``conf/sampler/<name>.yaml`` name."""
    return SAMPLERS.register(name)


def list_samplers() -> list[str]:
    return SAMPLERS.names()


def make_sampler(cfg: SamplerConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The registered sampler ``cfg`` names, behind a :class:`ConstraintModelSampler`
    when ``cfg.feasibility_candidates`` > 0."""
    sampler = SAMPLERS.get(cfg.name)(cfg, seed)
    n = int(getattr(cfg, "feasibility_candidates", 0))
    if n > 0:
        sampler = ConstraintModelSampler(sampler, n_candidates=n, seed=seed)
    return sampler


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
