"""Benchmark the adaptive package (issue 25): one file of nested operating points, from the
default supernet search (``+hw=mobile strategy=supernet``, seed 0).

    python scripts/bench_adaptive.py                      # ~20 min: search, export, measure
    python scripts/bench_adaptive.py --workdir DIR        # resumes: a finished search is reused
    python scripts/bench_adaptive.py --quick --workdir DIR --out FILE   # ~2 min smoke run

Steps, each in a fresh process where the figure demands it:
1. the search, in ``--workdir`` (skipped when its record says it finished);
2. ``nas.export --adaptive`` twice: the shared copy keeping the largest point's compressed
   weights (the default), and keeping the union's fp32 weights (what that costs in
   bytes, and buys in accuracy);
3. every point's val accuracy, loaded from the package in a fresh process, against the
   inherited estimate the search recorded for that candidate;
4. the time of one switch, cycling through the points in a fresh process.

Prints a table; writes ``docs/bench/adaptive.json``: ``package_bytes_ratio`` (target at most
1.3), ``sum_separate_bytes``, ``hv_ratio`` (at least 0.9), ``switch_ms_median`` (under 50 ms),
``points_accuracy_match`` and ``points``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _bench import Bench, abs_path

ROOT = Path(__file__).resolve().parents[1]
SEARCH = ["+hw=mobile", "strategy=supernet"]
# --quick: a supernet trained for a few steps on 300 images (a check that the benchmark
# runs and writes its record, about 2 minutes; its figures say nothing of the package).
QUICK = [
    *SEARCH, "search_space.width_mults=[0.25,0.5]", "search_space.depth_max=2",
    "search_space.expansions=[2,4]", "dataset.n_train=300", "sampler=random",
    "strategy.epochs=1", "strategy.warmup_epochs=0", "strategy.bn_calib_images=64",
    "strategy.finalists=2", "strategy.max_finalists=2", "strategy.finetune_epochs=1",
    "search.n_trials=25", "train.threads=1", "search.min_accuracy=0",
]  # fmt: skip

# Run in a fresh process: load the package, score each point on the search's val split.
_SCORE = """
import json, sys, torch
from nas.config import DatasetConfig
from nas.pipeline import accuracy, load_splits
from search_spaces import AdaptiveModel
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
splits = load_splits(DatasetConfig(**args["dataset"]), seed=args["seed"])
model = AdaptiveModel.load(args["package"])
out = {}
for p in model.points:
    model.switch(p)
    out[p.name] = {"val_accuracy": accuracy(model, splits.val),
                   "test_accuracy": accuracy(model, splits.test)}
print(json.dumps(out))
"""

# Run in a fresh process: the time of one switch (a derivation: no point is cached).
_SWITCH = """
import json, sys, time, torch
from search_spaces import AdaptiveModel
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
model = AdaptiveModel.load(args["package"], cache=args["cache"])
times = []
for r in range(args["rounds"]):
    order = model.points if r % 2 == 0 else model.points[::-1]
    for p in order:
        if p.name == model.current.name:
            continue
        start = time.perf_counter()
        model.switch(p)
        times.append((time.perf_counter() - start) * 1e3)
times.sort()
print(json.dumps({"median": times[len(times) // 2], "max": times[-1], "n": len(times)}))
"""


def _run_json(code: str, args: dict[str, Any]) -> Any:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args["threads"])}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        check=True, capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _search(workdir: Path, overrides: list[str]) -> dict[str, Any]:
    """The search's parent run: its record, a finished search found in ``workdir`` (a run
    cut short resumes with the same command), or a search run now."""
    done = workdir / "search_done.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    record = _finished(workdir, overrides)
    if record is None:
        cmd = [sys.executable, "-m", "nas.search", *overrides]
        print(f"running {shlex.join(cmd)} in {workdir} (about 15 minutes)", file=sys.stderr)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(cmd, cwd=workdir, check=True, env=env)
        record = _finished(workdir, overrides)
        assert record is not None, "the search finished without a parent run"
        record["seconds"] = time.monotonic() - start
    done.write_text(json.dumps(record, indent=2))
    return record


def _finished(workdir: Path, overrides: list[str]) -> dict[str, Any] | None:
    """The latest finished search of ``workdir``'s MLflow database, if any."""
    if not (workdir / "mlflow.db").exists():
        return None
    from mlflow.tracking import MlflowClient

    from nas.study import keys

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("downsize")
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id],
        f"tags.`{keys.TAG_ROLE}` = '{keys.ROLE_SEARCH}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )  # fmt: skip
    if not runs:
        return None
    run = runs[0]
    m = run.data.metrics
    return {
        "parent_run_id": run.info.run_id,
        "command": shlex.join(["python", "-m", "nas.search", *overrides]),
        "commit": (run.data.tags.get("git.commit") or "unknown")[:7],  # the search's own
        "seconds": ((run.info.end_time or 0) - run.info.start_time) / 1e3,
        "n_scored": m.get("n_scored"),
        "n_finalised": m.get("n_finalised"),
        "hypervolume": m.get("hypervolume"),
    }


def _export(workdir: Path, run_id: str, keep: str) -> dict[str, Any]:
    from nas.export import export_adaptive

    out = workdir / ("adaptive" if keep == "point" else f"adaptive_{keep}")
    return export_adaptive(
        run_id, out, tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}", keep=keep, threads=1
    )


def _fresh_scores(r: dict[str, Any], package: Path, threads: int) -> dict[str, Any]:
    """Each point's accuracy from the package in a fresh process, against the estimate."""
    args = {"package": str(package), "threads": threads, "dataset": r["dataset"],
            "seed": r["seed"]}  # fmt: skip
    scores = _run_json(_SCORE, args)
    n_val = int(r["val_images"])
    for p in r["points"]:
        got = scores[p["name"]]
        p["val_accuracy_fresh"] = got["val_accuracy"]
        p["test_accuracy_fresh"] = got["test_accuracy"]
        p["diff_val_images_fresh"] = round(
            abs(got["val_accuracy"] - p["info"]["val_accuracy_estimate"]) * n_val
        )
    return scores


def _row(name: str, value: Any, target: str) -> str:
    return f"{name:<26} {value!s:<24} {target}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=abs_path, default=ROOT / "outputs" / "bench_adaptive")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "adaptive.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=20, help="switching rounds through the points")
    p.add_argument("--quick", action="store_true", help="a tiny search: a check that it runs")
    args = p.parse_args(argv)
    overrides = QUICK if args.quick else SEARCH
    bench = Bench(__file__, argv, overrides=overrides)
    workdir = args.workdir.resolve()
    search = _search(workdir, overrides)
    r = _export(workdir, search["parent_run_id"], "point")
    fp32 = _export(workdir, search["parent_run_id"], "fp32")
    _fresh_scores(r, workdir / "adaptive" / "adaptive.dsza", args.threads)
    _fresh_scores(fp32, workdir / "adaptive_fp32" / "adaptive.dsza", args.threads)
    switch = {
        cache: _run_json(
            _SWITCH,
            {
                "package": str(workdir / "adaptive" / "adaptive.dsza"),
                "threads": args.threads,
                "cache": cache,
                "rounds": args.rounds,
            },
        )  # fmt: skip
        for cache in (0, len(r["points"]))
    }
    record = _record(search, r, fp32, switch)
    record = bench.write(record, args.out)
    _print(record)
    print(f"wrote {args.out}")
    return 0


def _record(
    search: dict[str, Any], r: dict[str, Any], fp32: dict[str, Any], switch: dict[int, Any]
) -> dict[str, Any]:
    """The record's figures: the default package ``r``, the ``keep=fp32`` alternative,
    and the switch times without a cache (0) and caching every point."""
    diffs = [p["diff_val_images_fresh"] for p in r["points"]]
    return {
        "search": search,
        "package_bytes": r["package_bytes"],
        "largest_point_bytes": r["largest_point_bytes"],
        "package_bytes_ratio": r["package_bytes_ratio"],
        "sum_separate_bytes": r["sum_separate_bytes"],
        "nested": r["nested"],
        "hypervolume_points": r.get("hypervolume_points"),
        "hypervolume_front": r.get("hypervolume_front"),
        "hv_ratio": r.get("hv_ratio"),
        "switch_ms_median": switch[0]["median"],
        "switch_ms_max": switch[0]["max"],
        "switch_ms_median_cached": switch[len(r["points"])]["median"],
        "points_accuracy_match": max(diffs) <= 1,
        "max_diff_val_images": max(diffs),
        "val_images": r["val_images"],
        "points": r["points"],
        "keep_fp32": {
            "package_bytes": fp32["package_bytes"],
            "package_bytes_ratio": fp32["package_bytes_ratio"],
            "hv_ratio": fp32.get("hv_ratio"),
            "max_diff_val_images": max(p["diff_val_images_fresh"] for p in fp32["points"]),
        },
    }


def _print(record: dict[str, Any]) -> None:
    diffs = [p["diff_val_images_fresh"] for p in record["points"]]
    print(_row("figure", "value", "target"))
    print(_row("package_bytes_ratio", f"{record['package_bytes_ratio']:.3f}", "<= 1.3"))
    print(_row("sum_separate_bytes", f"{record['sum_separate_bytes']:,}", "reported"))
    hv = record["hv_ratio"]
    print(_row("hv_ratio", "n/a" if hv is None else f"{hv:.3f}", ">= 0.9"))
    print(_row("switch_ms_median", f"{record['switch_ms_median']:.1f}", "< 50"))
    print(_row("points_accuracy_match", f"{record['points_accuracy_match']} "
               f"(max {max(diffs)} images)", "true"))  # fmt: skip
    kf = record["keep_fp32"]
    print(_row("keep=fp32 ratio / diff", f"{kf['package_bytes_ratio']:.2f} / "
               f"{kf['max_diff_val_images']} images", "the alternative"))  # fmt: skip
    for pt in record["points"]:
        est, got = pt["info"]["val_accuracy_estimate"], pt["val_accuracy_fresh"]
        print(f"  {pt['name']}: trial {pt['info']['trial']}, {pt['size_bytes']:,} B alone, "
              f"val {got:.4f} (estimate {est:.4f}), {pt['compression']}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
