"""Every fault a scheduler or a machine delivers, injected into a real search.

Each row starts ``python -m nas.search`` (the real command line, in its own session as
a job is), injects one fault while a trial runs (a signal to the whole process group,
a SIGKILLed child, a full disk, a trial that diverges or hangs, a journal a crash cut,
a Ray node lost), waits for the search to end, then runs the same command again and
checks what a user would:

- the exit code, and the one line that says what happened;
- the study and the MLflow parent run: what had finished is still there, nothing is
  left RUNNING, the trial in flight ended as the fault's row wants;
- no process of the search outlives it (loader workers, the evaluator, a local Ray);
- the same command resumes, and finishes.

Faults come from ``scripts/faultplug.py`` (a ``--plugin``: a trial held in training or
evaluation, a NaN loss, a loader that never delivers, an artifact path that is
``/dev/full``), from signals and ``kill``, from a real full disk (a small tmpfs filled
with a ballast file; ``disk_full`` needs root to mount it, else its rows use the
plugin's ``/dev/full``), from truncating the journal, and from killing a worker node of
a real 3-node cluster (``scripts/ray_cluster.sh``).

    python scripts/bench_faults.py                      # every row, both runners
    python scripts/bench_faults.py --runner local --faults sigterm_group,disk_full

Prints the table and writes ``docs/bench/faults.json``: ``rows`` (one per fault, runner
and variant: ``fault``, ``runner``, ``exit_code``, ``parent_state``,
``finished_before``, ``finished_after``, ``resumed``, ``clean``, and what was checked).
``tests/e2e/test_faults.py`` runs the local rows through :func:`run_row`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _bench import Bench, abs_path
from _faultjob import Job, Row, fill, on_nodes, records, resume, settle, small_disk
from _faults_record import line, write_record

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
OUT = REPO / "docs" / "bench" / "faults.json"

FAST = (
    "dataset=digits", "search_space=tiny", "train.epochs=2", "compress.finetune_epochs=1",
    "search.progress=false", "search.timeout_s=null", "search.study_name=faults",
    "search.n_trials=3", "search.min_accuracy=0",
)  # fmt: skip
"""A search of a few seconds a trial, two epochs (a trial can be held after the first)."""

RAY = ("runner=ray", "runner.max_concurrent=1")

FAULTS = (
    "sigterm_group", "sigint_group", "sighup_group", "preempt_sigusr1", "worker_killed",
    "disk_full", "diverged", "hung_trial", "cut_journal", "ray_node_lost",
)  # fmt: skip


# -- the faults ------------------------------------------------------------------------------


def held_in_training(job: Job, number: int) -> None:
    """Wait until trial ``number`` sits in training with its children alive."""
    job.wait_for(f"trial {number} in training", job.mark(f"train-{number}"))


def stop_row(row: Row, work: Path, overrides: list[str], sig: int, *, nohup: bool = False) -> None:
    """A stop signal to the whole group while trial 1 trains (loader workers, the
    evaluator, or Ray's workers alive): exit 130, parent KILLED, trial 1 interrupted.
    ``every_process``: to each process of the job, loader workers included (Slurm's
    cgroup), not only to the process group."""
    # Under nohup the signal is ignored: trial 1 is held only briefly, and the search
    # then runs to its end.
    hold = {"sleep": "6"} if nohup else {}
    job = Job(work, overrides, phase="train", trials="1", **hold).start(sighup_ignored=nohup)
    held_in_training(job, 1)
    if row.runner == "local":
        row.check("loader workers were alive", bool(job.children("pt_data_worker")))
    if row.variant == "every_process":
        job.signal_all(sig)
    else:
        job.signal_group(sig)
    code = job.finish()
    if nohup:
        recs = settle(row, job, code)
        row.said = "SIGHUP ignored, as nohup asked; the search ran to its end"
        row.check("exit 0", code == 0)
        row.check("parent FINISHED", recs.parent == "FINISHED")
        row.check("trial 1 finished", recs.states[1] == "COMPLETE")
        resume(row, job, recs)
        return
    recs = settle(row, job, code)
    name = signal.Signals(sig).name
    row.said = job.said("Stopped by", name)
    row.check("exit 130", code == 130)
    row.check("one line names the signal", bool(row.said))
    row.check("parent KILLED", recs.parent == "KILLED")
    row.check("trial 1 interrupted", recs.attrs[1].get("interrupted") is True)
    row.check("no run left RUNNING", recs.running_runs == 0)
    resume(row, job, recs)


def preempt_row(row: Row, work: Path, overrides: list[str]) -> None:
    """SIGUSR1 to the group while trial 1 trains. ``fits``: the trial ends within
    ``search.grace_s`` and finishes; ``too_long``: it does not, and is interrupted.
    Either way no trial starts after the notice, and the search stops with 130."""
    fits = row.variant == "fits"
    grace = "60" if fits else "2"
    job = Job(work, [*overrides, f"search.grace_s={grace}"], phase="train", trials="1",
              sleep="5" if fits else "120")  # fmt: skip
    job.start()
    held_in_training(job, 1)
    job.signal_group(signal.SIGUSR1)
    code = job.finish()
    recs = settle(row, job, code)
    row.said = job.said("Stopped by SIGUSR1")
    row.check("exit 130", code == 130)
    row.check("the notice is said at once", bool(job.said("pre-emption notice")))
    row.check("one line says how it ended", bool(row.said))
    row.check("parent KILLED", recs.parent == "KILLED")
    if fits:
        row.check("trial 1 finished", recs.states[1] == "COMPLETE")
    else:
        row.check("trial 1 interrupted", recs.attrs[1].get("interrupted") is True)
    row.check("no trial started after the notice", 2 not in recs.states)
    row.check("no run left RUNNING", recs.running_runs == 0)
    resume(row, job, recs)


def worker_killed_row(row: Row, work: Path, overrides: list[str]) -> None:
    """SIGKILL (the OOM killer's signal) to a loader worker while trial 1 trains, or to
    the evaluator process while it scores trial 1: that trial fails with a line naming
    the process and the signal, and the search goes on with fresh ones."""
    if row.variant == "loader":
        job = Job(work, overrides, phase="train", trials="1", sleep="30").start()
        held_in_training(job, 1)
        victims = job.children("pt_data_worker")
        needles: tuple[str, ...] = ("DataLoader worker", "killed by")
    else:
        job = Job(work, overrides, phase="evaluate", trials="1", sleep="30").start()
        job.wait_for("trial 1's evaluation", job.mark("evaluate-1"))
        newest = max(job.marks.glob("evaluator-*.pid"), key=lambda p: p.stat().st_mtime)
        victims = [int(newest.read_text())]
        needles = ("evaluator process", "killed by SIGKILL")
    row.check("a process to kill", bool(victims))
    os.kill(victims[0], signal.SIGKILL)
    code = job.finish()
    recs = settle(row, job, code)
    row.said = job.said("trial 1 failed", *needles)
    row.check("exit 0: the search went on", code == 0)
    row.check("trial 1 failed, naming the process and signal", recs.states[1] == "FAIL"
              and all(n in recs.why(1) for n in needles))  # fmt: skip
    row.check("later trials finished", recs.states.get(2) == "COMPLETE")
    row.check("parent FINISHED", recs.parent == "FINISHED")
    resume(row, job, recs)


def diverged_row(row: Row, work: Path, overrides: list[str]) -> None:
    """Trial 1's loss turns NaN at its 4th step: it fails as diverged, at that step."""
    job = Job(work, overrides, phase="diverge", trials="1", step="3")
    code = job.run()
    recs = settle(row, job, code)
    row.said = job.said("trial 1 failed: diverged")
    row.check("exit 0: the search went on", code == 0)
    row.check("trial 1 failed as diverged at the first bad step", recs.states[1] == "FAIL"
              and recs.why(1).startswith("diverged: loss became nan at step 3 "))  # fmt: skip
    row.check("later trials finished", recs.states.get(2) == "COMPLETE")
    resume(row, job, recs)


def hung_row(row: Row, work: Path, overrides: list[str]) -> None:
    """Trial 1's loader never delivers its second batch: search.trial_timeout_s (4 s)
    stops it (recorded stopped), and the search goes on."""
    job = Job(work, [*overrides, "search.trial_timeout_s=4"], phase="hang", trials="1")
    code = job.run()
    recs = settle(row, job, code)
    row.said = recs.why(1)
    row.check("exit 0: the search went on", code == 0)
    row.check(
        "trial 1 stopped by its time limit",
        recs.states[1] == "PRUNED"
        and recs.why(1).startswith("TrialTimeout: trial exceeded search.trial_timeout_s"),
    )
    row.check("its run KILLED, tagged stopped", recs.run_status.get(1) == "KILLED")
    row.check("later trials finished", recs.states.get(2) == "COMPLETE")
    resume(row, job, recs)


def cut_journal_row(row: Row, work: Path, overrides: list[str]) -> None:
    """A crash (SIGKILL) while trial 1 trains, and a last journal line cut in half, as a
    crash in the middle of a write leaves it: the resume drops the cut record, says so,
    and goes on. ``middle``: damage deeper in, which no crash leaves, is refused with
    one line (exit 2)."""
    job = Job(work, overrides, phase="train", trials="1").start()
    held_in_training(job, 1)
    job.kill()
    data = job.journal.read_bytes()
    lines = data.splitlines(keepends=True)
    if row.variant == "middle":
        lines[2] = b'{"op_code": 4, "worker_id": "x", "trial_id": 0, "key"\n'
        job.journal.write_bytes(b"".join(lines))
    else:
        job.journal.write_bytes(data[: len(data) - len(lines[-1]) // 2])
    again = job.again()
    code = again.run()
    row.exit_code = code
    row.finished_before = 1
    if row.variant == "middle":
        row.said = again.said("error:", "journal")
        row.check("exit 2: refused", code == 2)
        row.check("one line names the journal", bool(row.said))
        row.check("no traceback", "Traceback" not in again.err)
        row.resumed = False
        return
    recs = records(job)
    row.parent_state = recs.parent
    row.said = again.said("dropped its last record")
    row.check("the cut record is dropped, and said", bool(row.said))
    row.check("no traceback", "Traceback" not in again.err)
    row.check("resume exits 0", code == 0)
    row.check("trial 0 kept", recs.states[0] == "COMPLETE")
    row.check("nothing RUNNING after resume", recs.running_runs == 0
              and "RUNNING" not in recs.states.values())  # fmt: skip
    row.resumed = code == 0
    row.finished_after = recs.counted


# -- a full disk ------------------------------------------------------------------------------


def disk_full_row(row: Row, work: Path, overrides: list[str]) -> None:
    """The disk under the artifacts, the journal or the MLflow store fills while trial 1
    runs: one line naming the path, exit 75, no corrupt journal; after the space is
    freed the same command resumes."""
    target = row.variant
    with small_disk(work / "disk") as disk:
        if disk is None:
            if target != "artifact":
                row.checks["skipped: mounting a tmpfs needs root"] = False
                return
            # No mount: the artifact path is /dev/full instead (the kernel's ENOSPC).
            job = Job(work, overrides, phase="enospc", trials="1")
            row.variant = "artifact (/dev/full)"
        else:  # trial 1 is held in training while the disk fills
            hold = {"phase": "train", "trials": "1", "sleep": "3"}
            places = {
                "artifact": {"out": disk, "journal": work / "faults.journal", "db": work / "m.db"},
                "journal": {"journal": disk / "faults.journal"},
                "mlflow": {"db": disk / "mlflow.db"},
            }[target]
            job = Job(work, overrides, **places, **hold)  # type: ignore[arg-type]
        job.start()
        job.wait_for("trial 1 to start", job.mark("started-1"))
        ballast = fill(disk) if disk is not None else None
        code = job.finish()
        row.said = job.said("no space left on device writing")
        if ballast is not None:
            ballast.unlink()  # the user frees space
        else:
            (job.out_dir / "outputs" / "faults" / "trial_00001.dsz").unlink()
        recs = settle(row, job, code)
        row.check("exit 75", code == 75)
        row.check("one line names the path", bool(row.said) and str(job.work) in row.said)
        row.check("journal loads (not corrupt)", bool(recs.states))
        row.check("trial 0 kept", recs.states.get(0) == "COMPLETE")
        resume(row, job, recs)


# -- Ray ----------------------------------------------------------------------------------------


def node_lost_row(row: Row, work: Path, overrides: list[str]) -> None:
    """A worker node of a real 3-node cluster (a head with no CPU, two 1-CPU workers) is
    SIGKILLed while it trains a streamed trial: the trial is retried on the other node
    (runner.max_failures=1) or failed, and the search completes."""
    sys.path.insert(0, str(REPO / "tests" / "e2e"))
    import cluster_fixtures

    with cluster_fixtures.start_ray_cluster(workers=2, cpus_per_node=1, head_cpus=0) as cluster:
        job = Job(work, [*overrides, "runner.address=auto", "runner.max_concurrent=2",
                         "search.n_trials=4"])  # fmt: skip
        job.env.update(cluster.env)
        job.start()
        running = job.wait_for("trials running on both worker nodes", lambda: on_nodes(job, 2))
        cluster_fixtures.kill_worker_node(cluster, 1)
        code = job.finish()
    recs = settle(row, job, code)
    lost = sorted(running)
    retried_or_failed = [
        n for n in lost
        if (recs.states[n] == "COMPLETE" and recs.run_tags[n].get("ray.attempts") == "2")
        or "RayWorkerFailed" in recs.why(n)
    ]  # fmt: skip
    row.said = job.said("its Ray worker or node was lost") or "; ".join(
        f"trial {n}: {recs.why(n)}" for n in retried_or_failed
    )
    row.check("exit 0: the search completed", code == 0)
    row.check("every trial counted once", recs.counted == 4)
    row.check("the lost trial retried or failed", bool(retried_or_failed))
    row.check("parent FINISHED", recs.parent == "FINISHED")
    row.check("no run left RUNNING", recs.running_runs == 0)
    row.resumed = True  # nothing to resume: the search completed
    row.finished_after = recs.counted


# -- the table ------------------------------------------------------------------------------------

SCENARIOS: dict[str, tuple[Callable[[Row, Path, list[str]], None], tuple[str, ...]]] = {
    "sigterm_group": (lambda r, w, o: stop_row(r, w, o, signal.SIGTERM), ("", "every_process")),
    "sigint_group": (lambda r, w, o: stop_row(r, w, o, signal.SIGINT), ("",)),
    "sighup_group": (
        lambda r, w, o: stop_row(r, w, o, signal.SIGHUP, nohup=r.variant == "nohup"),
        ("", "nohup"),
    ),
    "preempt_sigusr1": (preempt_row, ("fits", "too_long")),
    "worker_killed": (worker_killed_row, ("loader", "evaluator")),
    "disk_full": (disk_full_row, ("artifact", "journal", "mlflow")),
    "diverged": (diverged_row, ("",)),
    "hung_trial": (hung_row, ("",)),
    "cut_journal": (cut_journal_row, ("", "middle")),
    "ray_node_lost": (node_lost_row, ("",)),
}
"""Each fault's scenario and its variants."""

STREAMED = {"sigterm_group", "sigint_group", "sighup_group", "preempt_sigusr1",
            "worker_killed", "ray_node_lost"}  # fmt: skip
"""Faults run on a streamed image folder: its loader workers are alive when they hit."""

RUNNERS = {"ray_node_lost": ("ray",), "cut_journal": ("local",)}
"""Faults on one runner only (the journal is the driver's, whichever runner trains);
every other runs on both."""


def run_row(fault: str, runner: str, variant: str, work: Path, images: Path | None) -> Row:
    """One row: ``fault`` on ``runner`` in the folder ``work`` (``images``: a small
    image folder for the streamed faults, made by :func:`image_folder`)."""
    row = Row(fault, runner, variant)
    overrides = list(FAST) + (list(RAY) if runner == "ray" else [])
    if fault in STREAMED:
        assert images is not None
        overrides += [
            "dataset=imagefolder", f"dataset.root={images}", "dataset.image_size=16",
            "dataset.n_test=60", "dataset.n_val=60", "dataset.num_workers=2",
            "train.batch_size=32",
        ]  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        SCENARIOS[fault][0](row, work, overrides)
    except Exception as e:  # a scenario that could not run is a row that is not clean
        row.checks[f"ran: {type(e).__name__}: {' '.join(str(e).split())[:300]}"] = False
    row.seconds = round(time.monotonic() - start, 1)
    row.clean = bool(row.checks) and all(row.checks.values())
    return row


def run_rows(
    wanted: list[tuple[str, str, str]], workdir: Path, images: Path | None, *, jobs: int = 1,
    said: Callable[[Row], None] | None = None,
) -> list[Row]:  # fmt: skip
    """:func:`run_row` for each ``(fault, runner, variant)``, ``jobs`` at once (each row
    is its own search, in its own session and folder), in ``wanted``'s order."""
    from concurrent.futures import ThreadPoolExecutor

    def one(want: tuple[str, str, str]) -> Row:
        row = run_row(*want, workdir / "-".join(x for x in want if x), images)
        if said is not None:
            said(row)
        return row

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, wanted))


def image_folder(path: Path) -> Path:
    """A small seeded image folder (scripts/make_imagefolder.py), made once."""
    if not (path / "0").exists():
        subprocess.run(
            [sys.executable, str(SCRIPTS / "make_imagefolder.py"), "--out", str(path),
             "--n", "400", "--size", "16", "--classes", "4", "--no-progress", "--workers", "1"],
            check=True, capture_output=True,
        )  # fmt: skip
    return path


def rows_wanted(faults: list[str], runners: list[str]) -> list[tuple[str, str, str]]:
    return [
        (f, r, v) for f in faults for r in runners if r in RUNNERS.get(f, ("local", "ray"))
        for v in SCENARIOS[f][1]
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--faults", default=",".join(FAULTS), help="comma-separated (default: all)")
    p.add_argument("--runner", choices=("local", "ray", "all"), default="all")
    p.add_argument("--workdir", type=abs_path, default=REPO / ".bench" / "faults")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--jobs", type=int, default=1, help="rows at once (each is its own job; "
                   "1 for a record: the rows' seconds are then undisturbed)")  # fmt: skip
    args = p.parse_args(argv)
    bench = Bench(__file__, argv)
    faults = [f for f in args.faults.split(",") if f]
    bad = [f for f in faults if f not in SCENARIOS]
    if bad:
        p.error(f"unknown fault(s) {', '.join(bad)}; choose from {', '.join(FAULTS)}")
    runners = ["local", "ray"] if args.runner == "all" else [args.runner]
    shutil.rmtree(args.workdir, ignore_errors=True)
    images = image_folder(args.workdir / "images")
    rows = run_rows(rows_wanted(faults, runners), args.workdir, images, jobs=args.jobs,
                    said=lambda row: print(line(row), flush=True))  # fmt: skip
    write_record(args.out, rows, FAULTS, bench)
    print(f"\n{sum(r.clean for r in rows)} of {len(rows)} rows clean; wrote {args.out}")
    return 0 if all(r.clean for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
