"""The faults a scheduler or a machine delivers, through the real command line.

Each test is one row of ``scripts/bench_faults.py`` on the local runner: it starts
``python -m nas.search``, injects the fault while a trial runs, checks the stop, the
records and the processes left, then runs the same command again (what each row
checks: that script's docstring and its row functions). The bench records every row,
on both runners, in docs/bench/faults.json. The rest of the faults are tested at unit
level: a cut or damaged journal (tests/nas/study/test_journal.py), a diverged trial
(test_reliability.py), a trial's hard time limit on a blocked thread and the stop
signals' handling (tests/nas/test_stop.py), a full journal or MLflow store
(tests/nas/study/test_journal.py, test_recorder.py, tests/nas/test_stop.py); a Ray
node lost mid-trial: test_ray_runner.py. The disk_full row fills a real tmpfs where
it may mount one (root), else writes its artifact to /dev/full.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _bench() -> ModuleType:
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))  # its own helpers, as when it runs as a script
    spec = importlib.util.spec_from_file_location("bench_faults", SCRIPTS / "bench_faults.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench()

# The rows the suite runs: one per way a stop is handled. The bench runs the rest, each a
# variant of one of these through the same code: SIGTERM to the group alone and SIGINT
# (every_process signals the group too, and more), SIGHUP with or without nohup (the
# SIGTERM path; test_stop.py: an inherited SIG_IGN is kept), a pre-emption whose trial
# fits the grace (test_stop.py: the grace timer), a killed loader worker (the evaluator's
# row: the same recorder path; test_stream.py: its message), a hung loader
# (test_reliability.py: a hung evaluation; test_stop.py: the hard limit on a blocked
# thread) and a full journal or MLflow store (tests/nas/study, unit level).
SUITE = {
    ("sigterm_group", "every_process"), ("preempt_sigusr1", "too_long"),
    ("worker_killed", "evaluator"), ("disk_full", "artifact"),
}  # fmt: skip
ROWS = [
    pytest.param(fault, variant, id="-".join(x for x in (fault, variant) if x))
    for fault, _, variant in bench.rows_wanted(sorted({f for f, _ in SUITE}), ["local"])
    if (fault, variant) in SUITE
]


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[Any, Path]]:
    """Every row, two at a time (each its own search: most of a row is waiting for a
    held trial or a search's start, so two share 2 cores well), run once."""
    work = tmp_path_factory.mktemp("faults")
    images = bench.image_folder(work / "images")
    wanted = [(fault, "local", variant) for fault, variant in (p.values for p in ROWS)]
    done = bench.run_rows(wanted, work, images, jobs=2)
    return {
        (row.fault, row.variant): (row, work / "-".join(x for x in want if x))
        for row, want in zip(done, wanted, strict=True)
    }


@pytest.mark.parametrize(("fault", "variant"), ROWS)
def test_a_fault_ends_in_a_clean_stated_state(fault: str, variant: str, rows) -> None:
    row, folder = rows[(fault, variant)]
    failed = [name for name, ok in row.checks.items() if not ok]
    logs = "\n".join(p.read_text()[-2500:] for p in sorted(folder.glob("job-*.log")))
    assert row.clean, f"failed: {failed}; said: {row.said!r}; exit {row.exit_code}\n{logs}"


def test_the_suite_runs_rows_the_bench_has() -> None:
    assert len(ROWS) == len(SUITE)  # a renamed variant must not silently drop a row


def test_the_bench_lists_every_fault_of_the_issue() -> None:
    wanted = {
        "sigterm_group", "sigint_group", "sighup_group", "preempt_sigusr1", "worker_killed",
        "disk_full", "diverged", "hung_trial", "cut_journal", "ray_node_lost",
    }  # fmt: skip
    assert set(bench.FAULTS) == wanted == set(bench.SCENARIOS)
    runners = {(f, r) for f, r, _ in bench.rows_wanted(list(bench.FAULTS), ["local", "ray"])}
    assert ("ray_node_lost", "ray") in runners and ("ray_node_lost", "local") not in runners
    assert all((f, "local") in runners for f in wanted - {"ray_node_lost"})


def test_the_bench_refuses_an_unknown_fault() -> None:
    r = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_faults.py"), "--faults", "nosuch"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 2 and "unknown fault(s) nosuch" in r.stderr
