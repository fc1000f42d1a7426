"""Whole searches of ``scripts/bench_supernet.py`` over a cached supernet: its reuse by
another profile's search, and the samplers' quality as the study grows.

Imported as ``from _supernet_searches import ...`` (``scripts/`` is first on ``sys.path``).
"""

from __future__ import annotations

import functools
import math
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _bench import run_units

__all__ = ["quality_run", "reuse", "sampler_quality"]


def reuse(work: Path, extra: list[str], n: int) -> dict[str, Any]:
    """A second search, another +hw profile, the cached supernet: the time to score ``n``."""
    from optuna.trial import TrialState

    from nas import compose
    from nas.driver import run_search

    cfg = compose(
        ["+hw=raspi4", "strategy=supernet", "search.seed=0", *extra,
         f"search.n_trials={n}", "search.timeout_s=null", "search.progress=false",
         "strategy.finalists=1", "strategy.finetune_epochs=1", f"search.output_dir={work}"]
    )  # fmt: skip
    before = sorted((work / "outputs" / "supernets").glob("*.safetensors"))
    t0 = time.monotonic()
    outcome = run_search(cfg)
    wall = time.monotonic() - t0
    after = sorted((work / "outputs" / "supernets").glob("*.safetensors"))
    import optuna

    from nas.study import keys, make_storage

    study = optuna.load_study(
        study_name=outcome.study_name, storage=make_storage(None, outcome.study_name, work)
    )
    scored = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get(keys.PHASE) != "final"
    ]  # fmt: skip
    first = min(t.datetime_start for t in scored if t.datetime_start)
    last = max(t.datetime_complete for t in scored if t.datetime_complete)
    return {
        "hw": "raspi4",
        "retrained": after != before,
        "candidates": len(scored),
        "feasible_scored": int(outcome.population.get("n_scored", 0)),
        "seconds_to_score": (last - first).total_seconds(),
        "wall_seconds": wall,
    }


def sampler_quality(
    work: Path,
    extra: list[str],
    *,
    samplers: list[str],
    seeds: list[int],
    n: int,
    supernets: list[Path],
    jobs: int,
) -> dict[str, Any]:
    """One search per (sampler, seed) over a cached supernet: the estimated front's
    hypervolume as the study grows, and the wall time (so quality per second). Each run
    is a unit of the harness: kept in ``work``, so a rerun resumes."""
    units = [(sampler, seed) for seed in seeds for sampler in samplers]
    for sampler, seed in units:
        cache = _quality_dir(work, sampler, seed) / "outputs" / "supernets"
        cache.mkdir(parents=True, exist_ok=True)
        for folder in supernets:  # reuse supernets trained elsewhere (same key: same seed)
            for f in folder.glob("*.safetensors"):
                if not (cache / f.name).exists():
                    shutil.copy2(f, cache / f.name)
    threads = ["train.threads=1"] if jobs > 1 else []
    checkpoints = sorted({c for c in (100, 250, n // 2, n) if c <= n})
    run = functools.partial(
        quality_run, work=work, n=n, extra=[*extra, *threads], checkpoints=checkpoints
    )
    results = run_units(
        run,
        units,
        lambda u: _quality_dir(work, *u) / "quality.json",
        jobs=jobs,
        threads=1 if jobs > 1 else None,
    )
    by: dict[str, Any] = {}
    for (sampler, seed), r in results.items():
        by.setdefault(sampler, {"runs": []})["runs"].append({"seed": seed, **r})
    for v in by.values():
        for c in checkpoints:
            hvs = [r["hypervolume_at"][str(c)] for r in v["runs"]]
            v.setdefault("hypervolume_mean_at", {})[str(c)] = statistics.mean(hvs)
        v["seconds_mean"] = statistics.mean(r["seconds"] for r in v["runs"])
        v["n_scored_mean"] = statistics.mean(r["n_scored"] for r in v["runs"])
    return {"n": n, "seeds": seeds, "checkpoints": checkpoints, "jobs": jobs, "samplers": by}


def _quality_dir(work: Path, sampler: str, seed: int) -> Path:
    return work / "quality" / f"{sampler}_seed{seed}"


def quality_run(
    sampler: str, seed: int, *, work: Path, n: int, extra: list[str], checkpoints: list[int]
) -> dict[str, Any]:
    """A whole supernet search with one sampler: estimated-front hypervolume by trials."""
    import optuna
    from optuna.trial import TrialState

    from nas import compose
    from nas.driver import run_search
    from nas.study import Point, hypervolume, keys, make_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out = str(_quality_dir(work, sampler, seed))
    cfg = compose(
        ["+hw=mobile", "strategy=supernet", f"sampler={sampler}", f"search.seed={seed}",
         *extra, f"search.n_trials={n}", "search.timeout_s=null", "search.progress=false",
         "strategy.finalists=1", "strategy.max_finalists=1", "strategy.finetune_epochs=1",
         f"search.output_dir={out}"]
    )  # fmt: skip
    cached = sorted((Path(out) / "outputs" / "supernets").glob("*.safetensors"))
    t0 = time.monotonic()
    outcome = run_search(cfg)
    wall = time.monotonic() - t0
    retrained = sorted((Path(out) / "outputs" / "supernets").glob("*.safetensors")) != cached
    study = optuna.load_study(
        study_name=outcome.study_name, storage=make_storage(None, outcome.study_name, Path(out))
    )
    trials = [
        t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(keys.PHASE) != "final"
    ]
    trials.sort(key=lambda t: t.number)
    ref_acc = float(cfg.dataset.hv_ref_accuracy)
    ref_size = float(cfg.dataset.hv_ref_size_bytes)
    points: list[Point] = []
    hv_at: dict[str, float] = {}
    for i, t in enumerate(trials, start=1):
        m = t.user_attrs.get(keys.METRICS) or {}
        if t.state == TrialState.COMPLETE and t.user_attrs.get(keys.FEASIBLE):
            points.append(
                Point(t.number, float(m["val_accuracy"]), float(m["size_bytes_estimate"]))
            )
        if i in checkpoints:
            hv_at[str(i)] = hypervolume(points, ref_accuracy=ref_acc, ref_size_bytes=ref_size)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    print(f"sampler {sampler} seed {seed}: {len(points)} scored of {len(trials)}, hv "
          f"{hv_at}, {wall:.0f} s", file=sys.stderr)  # fmt: skip
    return {
        "hypervolume_at": hv_at,
        "n_trials": len(trials),
        "n_scored": len(points),
        "seconds": wall,
        "seconds_scoring": (max(ends) - min(starts)).total_seconds() if starts else math.nan,
        "retrained": retrained,
    }
