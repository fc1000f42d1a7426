"""The GPU check's record (``python scripts/bench_gpu.py combine``): GPU over 2 CPU
cores, null wherever a side was not measured, and where a search's trial time goes,
read from the ``mlflow.db`` it wrote. Split from ``bench_gpu.py``, whose timing needs
torch; this needs only the standard library."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ("largest", "median", "supernet")
PRECISIONS = ("fp32", "bf16", "fp16")
HEADLINE_WORKLOAD, HEADLINE_PRECISION = "median", "bf16"
NO_GPU_NOTE = (
    "no GPU was measured: the GPU side is null until scripts/gpu_check.sh runs on a GPU "
    "machine (its gpu_side.json and gpu_run/ feed `bench_gpu.py combine`)"
)


# -- a search's trial time, from its mlflow.db ------------------------------------------


def _read_runs(db: Path) -> tuple[list[Any], dict[str, dict[str, float]]]:
    """The finished runs ``(id, start ms, end ms, nas.role)`` and their latest metrics."""
    con = sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT r.run_uuid, r.start_time, r.end_time, t.value FROM runs r "
            "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'nas.role' "
            "WHERE r.status = 'FINISHED'"
        ).fetchall()
        metrics: dict[str, dict[str, float]] = {}
        for run, key, value in con.execute("SELECT run_uuid, key, value FROM latest_metrics"):
            metrics.setdefault(run, {})[key] = float(value)
    finally:
        con.close()
    return rows, metrics


def trial_breakdown(db: Path) -> dict[str, Any]:
    """Where a search's time went, from the ``mlflow.db`` it wrote (read with sqlite3).

    Per trained trial (child runs tagged ``nas.role=trial`` with ``trial_seconds``), mean
    seconds of: ``feasibility`` (the feasibility check), ``training`` (``train_seconds``:
    train + compress + fine-tune), ``export_evaluate`` (the rest of ``trial_seconds``:
    writing the artifact, scoring it in the evaluator, measuring latency) and
    ``driver`` (the run's ask-to-told time less ``trial_seconds``: sampling, MLflow
    tracking, the journal); ``export_evaluate`` is split into ``export``, ``evaluate``
    and ``latency_and_rest`` where the runs record ``export_seconds`` and
    ``evaluate_seconds``. ``search_wall_s`` is the parent run's start to end, and
    ``outside_trials_s`` that less every trial run's duration (start-up, the front, plots).
    """
    rows, metrics = _read_runs(db)
    parents = [r for r in rows if r[3] == "search"]
    trials = [r for r in rows if r[3] == "trial"]
    trained = [r for r in trials if "trial_seconds" in metrics.get(r[0], {})]
    if not trained:
        raise ValueError(f"{db}: no finished trial run with a trial_seconds metric")

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    m = [metrics[r[0]] for r in trained]
    feas = [x.get("feasibility_seconds", 0.0) for x in m]
    train = [x.get("train_seconds", 0.0) for x in m]
    total = [x["trial_seconds"] for x in m]
    ask_told = [(r[2] - r[1]) / 1000.0 for r in trained]
    out: dict[str, Any] = {
        "source": str(db),
        "trained_trials": len(trained),
        "trial_runs": len(trials),
        "mean_seconds": {
            "feasibility": mean(feas),
            "training": mean(train),
            "export_evaluate": mean(
                [t - a - b for t, a, b in zip(total, feas, train, strict=True)]
            ),
            "driver": mean([w - t for w, t in zip(ask_told, total, strict=True)]),
            "trial": mean(total),
            "ask_to_told": mean(ask_told),
        },
    }
    parts = ["feasibility", "training", "export_evaluate", "driver"]
    if all("export_seconds" in x and "evaluate_seconds" in x for x in m):
        # Recorded apart since issue 16: the artifact's writing, its scoring in the
        # evaluator, and what is left (a measured latency, the trial's own bookkeeping).
        ms = out["mean_seconds"]
        ms["export"] = mean([x["export_seconds"] for x in m])
        ms["evaluate"] = mean([x["evaluate_seconds"] for x in m])
        ms["latency_and_rest"] = ms["export_evaluate"] - ms["export"] - ms["evaluate"]
        parts += ["export", "evaluate", "latency_and_rest"]
    out["fractions"] = {
        k: out["mean_seconds"][k] / out["mean_seconds"]["ask_to_told"] for k in parts
    }
    if parents:
        p = max(parents, key=lambda r: r[1])
        pm = metrics.get(p[0], {})
        if p[2]:
            wall = (p[2] - p[1]) / 1000.0
            out["search_wall_s"] = wall
            out["outside_trials_s"] = wall - sum((r[2] - r[1]) / 1000.0 for r in trials)
        if "n_trials" in pm:
            out["n_trials"] = int(pm["n_trials"])
    return out


# -- the record -------------------------------------------------------------------------


def ratio(gpu: float | None, cpu: float | None) -> float | None:
    """``gpu / cpu``, or None when either side is missing (never a made-up figure)."""
    if gpu is None or cpu is None or cpu <= 0:
        return None
    return gpu / cpu


def _rate(side: dict[str, Any] | None, workload: str, precision: str) -> float | None:
    if side is None:
        return None
    return side.get("results", {}).get(workload, {}).get(precision, {}).get("samples_per_s")


def combine(
    cpu: dict[str, Any] | None,
    gpu: dict[str, Any] | None,
    *,
    default_run: dict[str, Any] | None,
    gpu_job: dict[str, Any] | None = None,
    cpu_breakdown: dict[str, Any] | None = None,
    gpu_breakdown: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The docs/bench/gpu.json record: GPU over CPU, null where a side is missing.

    ``gpu_job``: ``{"n_trials": N, "wall_seconds": S, "command": ...}`` of the default
    search run with ``train.device=cuda``; the CPU's comes from ``default_run``
    (docs/bench/default_run.json).
    """
    cpu_tpm = gpu_tpm = None
    if default_run and default_run.get("wall_seconds"):
        cpu_tpm = 60.0 * default_run["n_trials"] / default_run["wall_seconds"]
    if gpu_job and gpu_job.get("wall_seconds") and gpu_job.get("n_trials"):
        gpu_tpm = 60.0 * gpu_job["n_trials"] / gpu_job["wall_seconds"]
    by_workload: dict[str, dict[str, float | None]] = {}
    for w in WORKLOADS:
        base = _rate(cpu, w, "fp32")
        by_workload[w] = {p: ratio(_rate(gpu, w, p), base) for p in PRECISIONS}
    notes = []
    if cpu is None:
        notes.append(
            "the CPU side is not measured yet: run `bench_gpu.py --device cpu --threads 2 "
            "--out docs/bench/gpu_cpu_side.json` on a quiet machine"
        )
    if gpu is None:
        notes.append(NO_GPU_NOTE)
    if gpu_job is None:
        notes.append("the default search was not run on a GPU: trials_per_minute_ratio is null")
    return {
        "train_samples_per_s_ratio": by_workload[HEADLINE_WORKLOAD][HEADLINE_PRECISION],
        "trials_per_minute_ratio": ratio(gpu_tpm, cpu_tpm),
        "headline": (
            f"{HEADLINE_WORKLOAD} workload, GPU {HEADLINE_PRECISION} (train.precision=auto "
            "on a GPU with bf16) over CPU fp32; trials per minute of the default search"
        ),
        "train_samples_per_s_ratio_by_workload": by_workload,
        "trials_per_minute": {"cpu": cpu_tpm, "gpu": gpu_tpm},
        "cpu_search": (
            None
            if default_run is None
            else {
                k: default_run.get(k)
                for k in ("command", "commit", "machine", "wall_seconds", "n_trials")
            }
        ),  # fmt: skip
        "gpu_search": gpu_job,
        "trial_breakdown": {"cpu": cpu_breakdown, "gpu": gpu_breakdown},
        "cpu": _summary(cpu),
        "gpu": _summary(gpu),
        "gpu_fastest_precision": None if gpu is None else gpu.get("fastest_precision"),
        "note": "; ".join(notes) or None,
    }


def _summary(side: dict[str, Any] | None) -> dict[str, Any] | None:
    if side is None:
        return None
    keep = ("device", "device_name", "torch", "threads", "commit", "date", "quick", "batch_size")
    out = {k: side.get(k) for k in keep}
    out["samples_per_s"] = {
        w: {p: r["samples_per_s"] for p, r in rs.items()} for w, rs in side["results"].items()
    }
    return out


# -- command line -----------------------------------------------------------------------


def _load(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text())


def breakdown_of(run_dir: Path | None) -> dict[str, Any] | None:
    if run_dir is None:
        return None
    db = run_dir / "mlflow.db" if run_dir.is_dir() else run_dir
    if not db.is_file():
        return None
    try:
        return trial_breakdown(db)
    except ValueError as e:  # no trained trial: the side's breakdown stays null
        print(f"bench_gpu.py: {e}", file=sys.stderr)
        return None


def main_combine(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench_gpu.py combine", description=combine.__doc__)
    ap.add_argument("--cpu", type=Path, default=REPO / "docs" / "bench" / "gpu_cpu_side.json")
    ap.add_argument("--gpu", type=Path, help="bench_gpu.py --device cuda's JSON (if any)")
    ap.add_argument("--default-run", type=Path, default=REPO / "docs/bench/cpu_default_run.json")
    ap.add_argument("--gpu-job", type=Path, help="JSON {n_trials, wall_seconds, command}")
    ap.add_argument("--cpu-run", type=Path, help="a CPU search's directory (its mlflow.db)")
    ap.add_argument("--gpu-run", type=Path, help="the GPU search's directory (its mlflow.db)")
    ap.add_argument("--cpu-breakdown", type=Path, help="a saved CPU trial breakdown (JSON)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    cpu_bd = breakdown_of(args.cpu_run) or _load(args.cpu_breakdown)
    if cpu_bd is None:
        cpu_side = _load(args.cpu)
        cpu_bd = (cpu_side or {}).get("trial_breakdown")
    record = combine(
        _load(args.cpu),
        _load(args.gpu),
        default_run=_load(args.default_run),
        gpu_job=_load(args.gpu_job),
        cpu_breakdown=cpu_bd,
        gpu_breakdown=breakdown_of(args.gpu_run),
    )
    # Through the harness, so the record carries its commit, date and command like
    # every other (a side that did not run stays null; its figures are never filled).
    from _bench import Bench

    record = Bench(Path(__file__).with_name("bench_gpu.py"), ["combine", *argv]).write(
        record, args.out
    )
    print(json.dumps(record, indent=2))
