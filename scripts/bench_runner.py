"""Throughput and per-trial overhead of the runners, on the default search's trials.

    python scripts/bench_runner.py [--out FILE.json] [--quick] [--trials N] [--only SETUP ...]

Runs the default search (mnist5k, the mbconv space, the default training budget, no
hardware profile, so every trial trains) as a subprocess of ``python -m nas.search``
in four setups, each in a fresh output directory, with the same seeded sampler (the
first trials are TPE's random start-up trials, so every setup trains the same
candidates):

- ``local``: runner=local, one trial at a time with train.threads=2 (the default);
- ``ray_1x1``: runner=ray, 1 trial at a time, 1 thread (runner.cpus_per_trial=1);
- ``ray_2x1``: runner=ray, 2 concurrent trials of 1 thread each;
- ``ray_1x2``: runner=ray, 1 trial at a time with 2 threads.

Every figure comes from what the search recorded in MLflow: each child run's start and
end (the driver's clock: ask to told) and the trial's own time, its ``trial_seconds``
metric (feasibility + train + compress + export + evaluation, measured where the trial
ran). Start-up (imports, data, Ray and its workers) is a one-off cost, so the steady
state is measured over a window from the end of each slot's first trial to the end
of the last trial that finished while all slots were busy (for one slot: the last
trial's end):

- ``trials_per_minute``: trials finished in the window per minute of it;
- ``overhead_fraction``: 1 - (trials' own time inside the window) / (slots x window),
  i.e. the share of the trial slots' wall time not spent in trials (for one slot:
  (wall - own) / wall).

JSON keys: ``overhead_fraction`` (local), ``ray_overhead_fraction`` (ray_1x1),
``ray_overhead_fraction_2x1``, ``parallel_speedup`` (ray_2x1 over ray_1x1 trials per
minute), ``parallel_speedup_vs_2threads`` (ray_2x1 over ray_1x2), and ``setups``
with each setup's figures. Targets (issue 5): overhead <= 5% locally and <= 10% on
Ray; parallel_speedup >= 1.7 on 2 cores. The figures need a quiet machine: other
load inflates both overhead and trial times.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import Bench, add_unit_args, run_units

REPO = Path(__file__).resolve().parents[1]

SETUPS: dict[str, tuple[int, list[str]]] = {
    # name: (slots, overrides)
    "local": (1, ["runner=local", "train.threads=2"]),
    "ray_1x1": (1, ["runner=ray", "runner.max_concurrent=1", "runner.cpus_per_trial=1"]),
    "ray_2x1": (2, ["runner=ray", "runner.max_concurrent=2", "runner.cpus_per_trial=1"]),
    "ray_1x2": (1, ["runner=ray", "runner.max_concurrent=1", "runner.cpus_per_trial=2"]),
}


def run_setup(name: str, overrides: list[str], n_trials: int, workdir: Path) -> dict[str, Any]:
    out = workdir / name
    if out.exists():  # an interrupted setup: its figures are void, run it again
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cmd = [
        sys.executable, "-m", "nas.search", f"search.n_trials={n_trials}",
        "search.timeout_s=null", "search.progress=false", f"search.output_dir={out}",
        f"search.study_name=bench-{name}", *overrides,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    start = time.monotonic()
    p = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if p.returncode != 0:
        raise SystemExit(f"{name}: nas.search exited {p.returncode}\n{p.stderr[-3000:]}")
    return {"total_wall_s": wall, **measure(out / "mlflow.db")}


def measure(db: Path) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = client.get_experiment_by_name("downsize")
    assert exp is not None
    runs = client.search_runs(
        [exp.experiment_id], filter_string="tags.`nas.role` = 'trial'", max_results=1000
    )
    trials = [
        (r.info.start_time / 1000, r.info.end_time / 1000, r.data.metrics["trial_seconds"])
        for r in runs
        if r.info.status == "FINISHED" and "trial_seconds" in r.data.metrics
    ]
    trials.sort(key=lambda t: t[1])
    if len(trials) < 2:
        raise SystemExit(f"{db}: fewer than 2 trained trials to measure")
    return {"trials": [{"start": s, "end": e, "trial_seconds": own} for s, e, own in trials]}


def figures(raw: dict[str, Any], slots: int) -> dict[str, float]:
    trials = raw["trials"]
    # Steady state: from the end of each slot's first trial (which pays the worker's
    # start-up) to, at most, the end of the last trial that finished while every slot
    # was busy. After that one, a slot has no trial left to start (n_trials is
    # reached), so counting the tail would charge the runner for an idle slot.
    # Whole rounds only (a multiple of `slots` trials), so the slots' phases do not
    # bias the count of trials ending inside the window.
    warm = min(slots, len(trials) - 1)
    rounds = max((len(trials) - slots - warm + 1) // slots, 1)
    last = min(warm - 1 + rounds * slots, len(trials) - 1)
    t0, t1 = trials[warm - 1]["end"], trials[last]["end"]
    window = t1 - t0
    own = 0.0
    for t in trials:
        # The trial's own time, as the interval that ended when it was told.
        a, b = t["end"] - t["trial_seconds"], t["end"]
        own += max(0.0, min(b, t1) - max(a, t0))
    finished = last - warm + 1  # those ending inside the window
    first_start = min(t["start"] for t in trials)
    return {
        "trained_trials": len(trials),
        "window_s": window,
        "trials_per_minute": 60.0 * finished / window,
        "overhead_fraction": 1.0 - own / (slots * window),
        "mean_trial_seconds": sum(t["trial_seconds"] for t in trials) / len(trials),
        "startup_s": trials[0]["end"] - first_start,
        "total_wall_s": raw["total_wall_s"],
        "trials_per_minute_end_to_end": 60.0 * len(trials) / raw["total_wall_s"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="write the JSON here (else stdout only)")
    ap.add_argument("--quick", action="store_true", help="fewer trials (a smoke run)")
    ap.add_argument("--trials", type=int, help="trials per setup (default 10, --quick 4)")
    ap.add_argument("--only", nargs="*", choices=list(SETUPS), help="a subset of the setups")
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra nas.search overrides for every setup (e.g. a smoke run on digits); "
        "the figures are then not those of the default search",
    )
    # --jobs stays 1 for figures: setups side by side would share the cores they measure.
    add_unit_args(ap, workdir_help="keep (and resume) the setups here (default: a temp dir)")
    args = ap.parse_args()
    bench = Bench(__file__, overrides=args.set)
    n = args.trials or (4 if args.quick else 10)
    setups = {k: v for k, v in SETUPS.items() if not args.only or k in args.only}
    result: dict[str, Any] = {
        "n_trials": n,
        "quick": bool(args.quick),
        "overrides": list(args.set),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_before": bench.load_start,
        },
    }
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        work = args.workdir or Path(tmp)
        unit = functools.partial(setup_unit, n_trials=n, extra=list(args.set), workdir=work)
        done = run_units(unit, [(k,) for k in setups], lambda u: work / f"{u[0]}.json",
                         jobs=args.jobs)  # fmt: skip
    result["setups"] = {name: fig for (name,), fig in done.items()}
    result["machine"]["loadavg_after"] = os.getloadavg()
    s = result["setups"]

    def ratio(a: str, b: str) -> float | None:
        if a in s and b in s:
            return s[a]["trials_per_minute"] / s[b]["trials_per_minute"]
        return None

    result.update(
        overhead_fraction=s.get("local", {}).get("overhead_fraction"),
        ray_overhead_fraction=s.get("ray_1x1", {}).get("overhead_fraction"),
        ray_overhead_fraction_2x1=s.get("ray_2x1", {}).get("overhead_fraction"),
        parallel_speedup=ratio("ray_2x1", "ray_1x1"),
        parallel_speedup_vs_2threads=ratio("ray_2x1", "ray_1x2"),
    )
    record = bench.write(result, args.out)
    print(json.dumps(record, indent=2))


def setup_unit(name: str, *, n_trials: int, extra: list[str], workdir: Path) -> dict[str, Any]:
    """One setup's search, from scratch; its figures (the harness keeps them, to resume)."""
    slots, overrides = SETUPS[name]
    print(f"{name}: {n_trials} trials ...", file=sys.stderr, flush=True)
    fig = figures(run_setup(name, [*overrides, *extra], n_trials, workdir), slots)
    print(f"  {json.dumps(fig)}", file=sys.stderr, flush=True)
    return fig


if __name__ == "__main__":
    main()
