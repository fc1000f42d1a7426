"""The persisted Optuna study: samplers by name, storage, and resume rules."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from nas._config import ConfigError, SamplerConfig

__all__ = [
    "DIRECTIONS",
    "INTERRUPTED",
    "counted_trials",
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
    if cfg.name not in _SAMPLERS:
        raise ConfigError(f"sampler={cfg.name} is not known; choose one of {list_samplers()}")
    return _SAMPLERS[cfg.name](cfg, seed)


# Constraints reach every sampler through trial.set_constraint (Optuna 5).
@register_sampler("tpe")
def _tpe(cfg: SamplerConfig, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=cfg.n_startup_trials, multivariate=True
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

    Returns (study, resumed). Trials a crash left RUNNING are marked FAILED and
    tagged interrupted, so they are neither lost nor counted.
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
    if resumed:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study._storage.set_trial_user_attr(t._trial_id, INTERRUPTED, True)
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return study, resumed


def counted_trials(study: optuna.Study) -> int:
    """Trials that count toward ``search.n_trials``: finished, and not cut short."""
    done = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    )
    return sum(1 for t in done if not t.user_attrs.get(INTERRUPTED, False))


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:300]
