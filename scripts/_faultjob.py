"""The harness of scripts/bench_faults.py: one search run as a job, what its records
say after a fault, and a real disk that fills. No part of the product.

Imported as ``from _faultjob import ...`` (``scripts/`` is first on ``sys.path`` of a
script run as ``python scripts/x.py``). Light at import: no torch, optuna or mlflow
until records are read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Job", "Records", "Row", "fill", "on_nodes", "records", "resume", "settle", "small_disk"]

SCRIPTS = Path(__file__).resolve().parent


@dataclass
class Row:
    """One fault on one runner, and what a user finds after it and after resuming."""

    fault: str
    runner: str
    variant: str = ""
    exit_code: int | None = None
    parent_state: str = ""
    finished_before: int = 0
    finished_after: int = 0
    resumed: bool = False
    clean: bool = False
    said: str = ""  # the line that says what happened
    checks: dict[str, bool] = field(default_factory=dict)
    seconds: float = 0.0

    def check(self, name: str, ok: bool) -> None:
        self.checks[name] = bool(ok)


# -- one search, run as a job -------------------------------------------------------------


class Job:
    """``python -m nas.search`` in its own session, with the fault plugin."""

    def __init__(
        self, work: Path, overrides: list[str], *, out: Path | None = None,
        journal: Path | None = None, db: Path | None = None, **faults: str,
    ) -> None:  # fmt: skip
        self.work, self.overrides = work, list(overrides)
        self.out_dir = out or work / "out"
        self.journal = journal or self.out_dir / "faults.journal"
        self.db = db or self.out_dir / "mlflow.db"
        if journal is not None:
            self.overrides.append(f"search.storage={journal}")
        if db is not None:
            self.overrides.append(f"mlflow.tracking_uri=sqlite:///{db}")
        self.marks = work / "marks"
        self.marks.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("FAULT_", "RAY_AD"))}
        self.env["PYTHONPATH"] = os.pathsep.join([str(SCRIPTS), self.env.get("PYTHONPATH", "")])
        self.env["FAULT_MARKS"] = str(self.marks)
        self.env.update({f"FAULT_{k.upper()}": v for k, v in faults.items()})
        self.proc: subprocess.Popen[str] | None = None
        self.out = self.err = ""

    def again(self) -> Job:
        """The same command, with no fault."""
        job = Job(self.work, self.overrides, out=self.out_dir)
        job.journal, job.db = self.journal, self.db
        return job

    def cmd(self) -> list[str]:
        return [
            sys.executable, "-m", "nas.search", "--plugin", "faultplug", *self.overrides,
            f"search.output_dir={self.out_dir}",
        ]  # fmt: skip

    def start(self, *, sighup_ignored: bool = False) -> Job:
        def child() -> None:
            # A terminal's foreground job: Ctrl-C stops it (a shell's `cmd &` ignores it).
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            # SIGHUP as a terminal's job has it: ignored under nohup, else its default
            # (stopping), whatever this process inherited (a bench run under nohup
            # would otherwise pass its own SIG_IGN on to every job).
            signal.signal(signal.SIGHUP, signal.SIG_IGN if sighup_ignored else signal.SIG_DFL)

        self.proc = subprocess.Popen(
            self.cmd(), env=self.env, cwd=self.work, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=child,
        )  # fmt: skip
        return self

    def wait_for(self, what: str, ok: Callable[[], Any], limit: float = 300) -> Any:
        assert self.proc is not None
        end = time.monotonic() + limit
        while time.monotonic() < end:
            found = ok()
            if found:
                return found
            if self.proc.poll() is not None:
                self.finish()
                raise RuntimeError(f"the search ended ({self.proc.returncode}) before {what}:"
                                   f"\n{self.err[-3000:]}")  # fmt: skip
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"timed out waiting for {what}:\n{self.err[-3000:]}")

    def mark(self, name: str) -> Callable[[], bool]:
        return (self.marks / name).exists

    def signal_group(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def signal_all(self, sig: int) -> None:
        """``sig`` to every process of the job, whatever its process group (as Slurm
        signals every process of a job's cgroup)."""
        for pid in self.survivors():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), sig)

    def finish(self, limit: float = 300) -> int:
        assert self.proc is not None
        try:
            out, err = self.proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"the search did not end in {limit:.0f} s") from None
        self.out, self.err = self.out + out, self.err + err
        logs = len(list(self.work.glob("job-*.log")))
        (self.work / f"job-{logs}.log").write_text(f"{self.cmd()}\n{self.out}\n{self.err}")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()

    def run(self, limit: float = 600, **kw: Any) -> int:
        """Start, and wait for the end."""
        self.start(**kw)
        return self.finish(limit)

    def survivors(self) -> list[str]:
        """Processes of the job's session still alive (its children left the process
        group, never the session): none may outlive the search."""
        assert self.proc is not None
        sid = self.proc.pid
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] != "Z":
                    found.append(stat.parent.name)
        return found

    def children(self, comm: str) -> list[int]:
        """Processes named ``comm`` (``pt_data_worker``: DataLoader workers) in the job."""
        assert self.proc is not None
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                text = stat.read_text()
                name = text[text.index("(") + 1 : text.rindex(")")]
                if int(text.rsplit(")", 1)[1].split()[3]) == self.proc.pid and name == comm:
                    pids.append(int(stat.parent.name))
        return pids

    def said(self, *needles: str) -> str:
        """The first line of stderr or stdout holding every ``needles``, else ''."""
        for line in (self.err + "\n" + self.out).splitlines():
            if all(n in line for n in needles):
                return line.strip()
        return ""


# -- what the records say -------------------------------------------------------------------


@dataclass
class Records:
    states: dict[int, str]  # trial number -> COMPLETE, FAIL, PRUNED, RUNNING
    attrs: dict[int, dict[str, Any]]
    values: dict[int, Any]
    parent: str
    running_runs: int
    run_status: dict[int, str]
    run_tags: dict[int, dict[str, str]]

    @property
    def counted(self) -> int:
        """Trials that count: finished, and not cut short (what resume keeps)."""
        return sum(
            1 for n, s in self.states.items()
            if s in ("COMPLETE", "PRUNED", "FAIL") and not self.attrs[n].get("interrupted")
        )  # fmt: skip

    def why(self, number: int) -> str:
        a = self.attrs.get(number, {})
        return str(a.get("error") or a.get("stopped") or "")


def records(job: Job) -> Records:
    import optuna
    from mlflow.tracking import MlflowClient

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    backend = optuna.storages.journal.JournalFileBackend(str(job.journal))
    study = optuna.load_study(study_name="faults", storage=optuna.storages.JournalStorage(backend))
    trials = study.get_trials(deepcopy=False)
    client = MlflowClient(tracking_uri=f"sqlite:///{job.db}")
    exp = client.get_experiment_by_name("downsize")
    runs = client.search_runs([exp.experiment_id], max_results=5000) if exp else []
    parents = [r for r in runs if r.data.tags.get("nas.role") == "search"]
    children = {int(r.data.tags["nas.trial"]): r for r in runs
                if r.data.tags.get("nas.role") == "trial"}  # fmt: skip
    return Records(
        states={t.number: t.state.name for t in trials},
        attrs={t.number: dict(t.user_attrs) for t in trials},
        values={t.number: t.values for t in trials},
        parent=parents[0].info.status if parents else "",
        running_runs=sum(1 for r in runs if r.info.status == "RUNNING"),
        run_status={n: r.info.status for n, r in children.items()},
        run_tags={n: dict(r.data.tags) for n, r in children.items()},
    )


def resume(row: Row, job: Job, before: Records, limit: float = 600) -> Records:
    """The same command again, with no fault: it resumes, keeps what had finished and
    finishes; nothing is left RUNNING."""
    code = job.again().run(limit)
    after = records(job)
    kept = all(after.values.get(n) == v for n, v in before.values.items() if v is not None)
    row.resumed = code == 0 and kept
    row.finished_after = after.counted
    row.check("resume exits 0", code == 0)
    row.check("resume keeps every finished trial", kept)
    row.check("resume finishes the search", after.counted >= before.counted)
    row.check("nothing RUNNING after resume", after.running_runs == 0
              and "RUNNING" not in after.states.values())  # fmt: skip
    row.check("parent FINISHED after resume", after.parent == "FINISHED")
    return after


def settle(row: Row, job: Job, code: int) -> Records:
    """What the fault left: exit code, the parent run, finished trials, survivors."""
    time.sleep(0.5)  # a child that is exiting on its own
    recs = records(job)
    row.exit_code, row.parent_state = code, recs.parent
    row.finished_before = recs.counted
    row.check("no process of the search outlives it", not job.survivors())
    row.check("no traceback", "Traceback" not in job.err)
    return recs


# -- a disk that fills --------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, mb: int = 24) -> Iterator[Path | None]:
    """A tmpfs of ``mb`` MB mounted at ``path`` (a real disk that fills), or None where
    this process may not mount one (not root, or no CAP_SYS_ADMIN)."""
    path.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(path)],
                        capture_output=True).returncode == 0  # fmt: skip
    try:
        yield path if ok else None
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to its last byte with a ballast file; returns the ballast."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 1 << 12, 1):  # what fitted stays; then a smaller piece
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return ballast


# -- Ray ------------------------------------------------------------------------------------


def on_nodes(job: Job, k: int) -> dict[int, str] | None:
    """Trials running on ``k`` distinct Ray nodes (from their MLflow runs' tags)."""
    from mlflow.tracking import MlflowClient

    # Not before the search has opened its store (the journal follows it) and begun a
    # trial: two processes creating one MLflow database race on its migrations.
    if not job.journal.exists() or b'"op_code":4' not in job.journal.read_bytes():
        return None
    try:
        client = MlflowClient(tracking_uri=f"sqlite:///{job.db}")
        exp = client.get_experiment_by_name("downsize")
        runs = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")
    except Exception:  # the store is being created
        return None
    nodes = {
        int(r.data.tags["nas.trial"]): r.data.tags["ray.node_id"]
        for r in runs if "ray.node_id" in r.data.tags
    }  # fmt: skip
    return nodes if len(set(nodes.values())) >= k else None
