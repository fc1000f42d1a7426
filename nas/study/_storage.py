"""The persisted Optuna study: storage, resume rules and interrupted trials."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from nas._stop import writing
from nas.config import ConfigError, one_line
from nas.study import keys

__all__ = [
    "JournalFile",
    "counted_trials",
    "end_interrupted_trials",
    "make_storage",
    "open_study",
    "requeue_interrupted",
    "study_attr",
]


class JournalFile(JournalFileBackend):
    """Optuna's journal file, written whole or not at all, and made whole when opened.

    Optuna appends one JSON line per operation. A write that fails part-way (the disk
    fills) or a process killed in the middle of one leaves a cut last line, and the
    next append would glue a record to it: a journal Optuna refuses from then on. So a
    failed append is truncated back to where it began, and opening the file drops a
    cut (or undecodable) last record, saying so; the operation it described had not
    completed, and a trial it left running is swept as interrupted on resume.
    """

    def __init__(self, file_path: str) -> None:
        with writing(file_path):
            super().__init__(file_path)
        self._repair()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        self._lock.acquire()
        try:
            with writing(self._file_path):
                fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND)
                try:
                    start = os.lseek(fd, 0, os.SEEK_END)
                    try:
                        view = memoryview(data)
                        while view:
                            view = view[os.write(fd, view) :]
                        os.fsync(fd)
                    except BaseException:
                        os.ftruncate(fd, start)  # freeing space needs none
                        raise
                finally:
                    os.close(fd)
        finally:
            self._lock.release()

    def _repair(self) -> None:
        path = self._file_path
        self._lock.acquire()
        try:
            with open(path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                tail_at = max(0, size - _TAIL_BYTES)  # a record is far smaller
                f.seek(tail_at)
                keep = tail_at + _whole_prefix(f.read())
            if keep == size or keep == tail_at > 0:
                return  # whole; or no line ends in the tail, which no crash leaves
            with writing(path), open(path, "rb+") as f:
                f.truncate(keep)
        finally:
            self._lock.release()
        print(
            f"Study journal {path}: dropped its last record ({size - keep} bytes), which "
            "a crash or a full disk had cut short; the operation it began runs again.",
            file=sys.stderr,
        )


_TAIL_BYTES = 1 << 22


def _whole_prefix(data: bytes) -> int:
    """Bytes of ``data`` up to its last whole record: the end of the last line that is
    complete and decodes (at most the last two lines are looked at; damage deeper in is
    not a crash's, and Optuna reports it)."""
    end = len(data)
    for _ in range(2):
        if end == 0:
            break
        if data[end - 1 : end] != b"\n":
            end = data.rfind(b"\n", 0, end) + 1  # a cut line: drop it
            continue
        start = data.rfind(b"\n", 0, end - 1) + 1
        try:
            json.loads(data[start:end])
            break
        except ValueError:
            end = start  # a whole line that does not decode (zeros a crash left): drop it
    return end


def make_storage(storage: str | None, study_name: str, output_dir: Path) -> BaseStorage | str:
    """A journal file in the output directory by default, else the given RDB URL."""
    if storage is None:
        return _journal(output_dir / f"{study_name}.journal")
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
    return _journal(Path(storage).expanduser().resolve())


def _journal(path: Path) -> JournalStorage:
    """The journal file at ``path`` (made whole), replayed; refused in one line when it
    is damaged before its last record, which no crash does."""
    try:
        return JournalStorage(JournalFile(str(path)))
    except ValueError as e:  # json's decode error, Optuna's "Invalid log format"
        raise ConfigError(
            f"study journal {path} is damaged before its last record ({one_line(e, 120)}), "
            "which no crash leaves; restore it from a copy, or move it away to start the "
            "study afresh"
        ) from None


def study_attr(
    storage: str | None, study_name: str, output_dir: Path, key: str
) -> tuple[bool, Any, BaseStorage | str | None]:
    """(whether the study exists, its user attr ``key`` or None, the storage opened or
    None), read without writing: a journal or SQLite file that is not there yet is not
    created. Pass the storage on to :func:`open_study`: a resumed journal replays once."""
    if storage is None or "://" not in storage:
        path = output_dir / f"{study_name}.journal" if storage is None else Path(storage)
        if not path.expanduser().exists():
            return False, None, None
    elif storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///") :]).exists():
        return False, None, None
    opened = make_storage(storage, study_name, output_dir)
    try:
        study = optuna.load_study(study_name=study_name, storage=opened)
    except KeyError:
        return False, None, opened
    return True, study.user_attrs.get(key), opened


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


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Queue each interrupted trial's candidate to run again, once (as Optuna's
    ``RetryFailedTrialCallback`` does): the next ``ask`` gets its parameters, and its
    phase when it was a finalist. Returns the numbers queued."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(keys.RETRY_OF) for t in trials}
    queued = []
    for t in trials:
        if not t.user_attrs.get(keys.INTERRUPTED) or t.number in retried or not t.params:
            continue
        attrs = {k: t.user_attrs[k] for k in (keys.PHASE, keys.FINALIST_OF) if k in t.user_attrs}
        study.enqueue_trial(t.params, user_attrs={**attrs, keys.RETRY_OF: t.number})
        queued.append(t.number)
    return queued


def counted_trials(study: optuna.Study) -> int:
    """Trials that count toward ``search.n_trials``: finished, and not cut short."""
    done = study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    )
    return sum(1 for t in done if not t.user_attrs.get(keys.INTERRUPTED, False))


def trial_at(study: optuna.Study, number: int) -> FrozenTrial:
    """Trial ``number`` of ``study``, copied alone.

    ``study.trials[number]`` deep-copies every trial of the study to return one: at
    thousands of trials (a supernet search scores ~2,000) that is a fraction of a
    second per call, and the recorder made one per trial, so a search slowed as it grew
    (each finalist's choice took 13 s, then 39 s, in docs/bench/search_supernet.json's
    seed-0 run at b8c3524). The storage's own list is read without copying, and only
    the trial asked for is copied (a caller may keep or change it).
    """
    trials = study.get_trials(deepcopy=False)
    if 0 <= number < len(trials) and trials[number].number == number:
        return copy.deepcopy(trials[number])
    # Numbers are positions in Optuna's storages; this is only a safeguard.
    for t in trials:
        if t.number == number:
            return copy.deepcopy(t)
    raise KeyError(f"study {study.study_name!r} has no trial {number}")
