"""The persisted Optuna study: storage, resume rules and interrupted trials."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from nas.config import ConfigError, one_line
from nas.study import keys

__all__ = ["counted_trials", "end_interrupted_trials", "make_storage", "open_study"]


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
            raise ConfigError(f"search.storage: cannot open study storage: {one_line(e)}") from None
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
        study.set_user_attr(keys.CONFIG_HASH, config_hash)
        resumed = False
    except Exception as e:  # an unreachable or malformed RDB URL
        raise ConfigError(f"search.storage: cannot open study storage: {one_line(e)}") from None
    found = study.user_attrs.get(keys.CONFIG_HASH)
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
        study._storage.set_trial_user_attr(t._trial_id, keys.RUN_ID, run_of(t))
        study._storage.set_trial_user_attr(t._trial_id, keys.INTERRUPTED, True)
        study._storage.set_trial_user_attr(t._trial_id, keys.ERROR, "interrupted")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)


def counted_trials(study: optuna.Study) -> int:
    """Trials that count toward ``search.n_trials``: finished, and not cut short."""
    done = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    )
    return sum(1 for t in done if not t.user_attrs.get(keys.INTERRUPTED, False))
