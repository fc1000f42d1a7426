"""``nas.study.JournalFile``: the study journal is written whole or not at all, and a
last record that a crash or a full disk cut is dropped when it is opened again. (A
whole search over such a journal: tests/e2e/test_faults.py.)"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import optuna
import pytest

from nas._stop import DiskFull
from nas.config import ConfigError
from nas.study import JournalFile, make_storage


def _study(path: Path) -> optuna.Study:
    """The study "s" in the journal at ``path``: created, or loaded as it is."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.JournalStorage(JournalFile(str(path)))
    try:
        return optuna.load_study(study_name="s", storage=storage)
    except KeyError:
        return optuna.create_study(
            study_name="s", storage=storage, directions=["maximize", "minimize"]
        )


def _finished(study: optuna.Study) -> list[int]:
    return [t.number for t in study.trials if t.state.is_finished()]


def test_a_write_the_disk_cuts_short_leaves_no_partial_record(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.journal"
    study = _study(path)
    study.tell(study.ask(), [0.9, 10.0])
    whole = path.read_bytes()
    real_write = os.write

    def full_after_half(fd: int, data) -> int:  # type: ignore[no-untyped-def]
        if len(data) > 1:  # half gets written, then the disk is full
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_after_half)
    with pytest.raises(DiskFull) as info:
        study.ask()
    monkeypatch.undo()
    assert info.value.filename == str(path)
    assert path.read_bytes() == whole  # the half record was taken back
    again = _study(path)  # space freed: it goes on
    again.tell(again.ask(), [0.8, 20.0])
    assert _finished(_study(path)) == [0, 1]


@pytest.mark.parametrize("damage", ["cut", "zeros"])
def test_a_last_record_a_crash_damaged_is_dropped_and_said(
    tmp_path: Path, damage: str, capsys
) -> None:
    path = tmp_path / "s.journal"
    study = _study(path)
    study.tell(study.ask(), [0.9, 10.0])
    study.ask()
    data = path.read_bytes()
    last = data[data.rstrip(b"\n").rfind(b"\n") + 1 :]
    if damage == "cut":  # a crash in the middle of the write
        path.write_bytes(data[: len(data) - len(last) // 2])
    else:  # a whole line of zeros, as a file system may leave after a power loss
        path.write_bytes(data[: len(data) - len(last)] + b"\0" * (len(last) - 1) + b"\n")
    again = _study(path)
    assert "dropped its last record" in capsys.readouterr().err
    assert path.read_bytes() == data[: len(data) - len(last)]
    assert [t.number for t in again.trials] == [0]  # the cut record began trial 1
    again.tell(again.ask(), [0.8, 20.0])  # and it goes on
    assert _finished(_study(path)) == [0, 1]


def test_damage_before_the_last_record_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.journal"
    study = _study(path)
    for _ in range(3):
        study.tell(study.ask(), [0.9, 10.0])
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"op_code": 4, "worker\n'
    path.write_bytes(b"".join(lines))
    with pytest.raises(ConfigError, match=r"s\.journal is damaged before its last record") as info:
        make_storage(str(path), "s", tmp_path)
    assert "\n" not in str(info.value)


def test_a_whole_journal_is_left_as_it_is(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.journal"
    study = _study(path)
    study.tell(study.ask(), [0.9, 10.0])
    data = path.read_bytes()
    _study(path)
    assert path.read_bytes() == data and capsys.readouterr().err == ""


def test_an_interrupted_candidate_runs_again_once(tmp_path: Path) -> None:
    """Resume queues each interrupted trial's parameters (and a finalist's phase), as
    Optuna's RetryFailedTrialCallback does: the next ask runs that candidate again."""
    from nas.study import end_interrupted_trials, keys, requeue_interrupted

    study = _study(tmp_path / "s.journal")
    cut = study.ask()
    cut.suggest_float("sparsity", 0.0, 0.9)
    cut.set_user_attr(keys.PHASE, "final")
    cut.set_user_attr(keys.FINALIST_OF, 7)
    study.ask()  # cut before it drew anything: nothing to run again
    end_interrupted_trials(study, lambda t: "run")
    assert requeue_interrupted(study) == [0]
    assert requeue_interrupted(study) == []  # once
    again = study.ask()
    assert again.params == {}
    assert again.suggest_float("sparsity", 0.0, 0.9) == cut.params["sparsity"]
    assert again.user_attrs[keys.RETRY_OF] == 0
    assert again.user_attrs[keys.PHASE] == "final" and again.user_attrs[keys.FINALIST_OF] == 7
