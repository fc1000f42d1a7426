"""Search strategies at an equal wall-clock budget on mnist5k (issue 6).

Every strategy runs through ``nas.driver.run_search`` with config overrides, once
per seed, in its own output directory:

- ``joint``: the default config (default sampler and early stopping);
- ``joint_<sampler>``: Optuna's tpe, nsga2 and gp samplers, early stopping off;
- ``joint_moasha``: the default sampler with MO-ASHA early stopping, and
  ``joint_moasha_half`` the same with half the budget (does early stopping reach the
  hypervolume of ``joint_tpe`` with half the compute?);
- ``random``: random joint sampling, no constraint model, early stopping off;
- ``supernet`` (issue 14): ``strategy=supernet``, its supernet trained within the
  budget (a fresh output directory per run, so no cache), and ``supernet_nsga2`` the
  same with NSGA-II; their fronts are the finalised artifacts only (the
  inherited-weight estimates are counted as ``candidates_scored``);
- ``two_stage``: what users do today: an architecture-only search (fp32, no pruning)
  for half the budget, then a grid of sparsity x bits over its 3 most accurate
  architectures, trained with ``nas.pipeline.train_proposal`` until the budget ends.

Each strategy's score is the hypervolume of its test-set front: the front is
selected on val accuracy (test is never used to select) and each member is placed
at its test accuracy; the area is on (test accuracy, log10 size_bytes) above the
reference accuracy 0.90 and below the fp32 Caffe LeNet-5's 1,724,320 bytes.
``best_ratio_at_lenet5_accuracy`` is 1,724,320 / the size of the smallest ``joint``
front member whose val accuracy reaches the fp32 LeNet-5's, trained with the same loop
on the same split (per seed), as ``scripts/baseline_lenet.py`` trains it.

A proposal-only study measures the share of infeasible proposals under ``+hw=mobile``
with and without constraint-aware sampling (no training: see ``feasibility_study``).

    python scripts/bench_search.py --quick                     # ~6 min, 1 seed, 2 epochs
    python scripts/bench_search.py --out docs/bench/search.json  # 3 seeds, ~60 min on 2 cores
    python scripts/bench_search.py --strategies joint,random --seeds 1 --budget-s 60

Writes FILE.json, FILE.md (the table) and a PNG of the seed-0 fronts
(docs/bench/search_fronts.png by default).
"""

# Over 450 lines, knowingly: issue 27 ("one benchmark harness") splits the benchmark
# scripts onto a shared harness and the results page into per-section templates; done
# piecemeal here first, the two would be split twice.

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

LENET5_BYTES = 1_724_320  # fp32 Caffe LeNet-5: 431,080 params x 4 bytes
REF_ACCURACY = 0.90
STRATEGIES = (
    "joint",
    "two_stage",
    "random",
    "joint_tpe",
    "joint_nsga2",
    "joint_gp",
    "joint_moasha",
    "joint_moasha_half",
    "supernet",
    "supernet_nsga2",
)
HALF = ("joint_moasha_half",)
OVERRIDES: dict[str, list[str]] = {
    "joint": [],
    "joint_moasha": ["early_stop=moasha"],
    "joint_moasha_half": ["early_stop=moasha"],
    "random": ["sampler=random", "early_stop=none"],
    "joint_tpe": ["sampler=tpe", "early_stop=none"],
    "joint_nsga2": ["sampler=nsga2", "early_stop=none"],
    "joint_gp": ["sampler=gp", "early_stop=none"],
    # Supernet training, scoring and the finalists' fine-tuning all within the budget.
    "supernet": ["strategy=supernet"],
    "supernet_nsga2": ["strategy=supernet", "sampler=nsga2"],
}
STAGE1 = [
    "compress.bits=[32]",
    "compress.sparsity_min=0",
    "compress.sparsity_max=0",
    "compress.prune_scopes=[global]",
    "compress.finetune_epochs=0",
    "early_stop=none",
]
GRID_BITS = (8, 4, 2)
GRID_SPARSITY = (0.5, 0.75, 0.9)
TOP_ARCHS = 3


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="default docs/bench/search.json")
    p.add_argument("--budget-s", type=float, default=None, help="per strategy and seed")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument(
        "--quick", action="store_true", help="1 seed, 40 s budgets, 2 epochs, 12 proposals"
    )
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--hw", default=None, help="hw profile for the strategies (default: none)")
    p.add_argument(
        "--proposals", type=int, default=None, help="per feasibility setting (0: skip it)"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs side by side, each with train.threads=1 (default 1: one run at a time "
        "with the default train.threads)",
    )
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the runs here; rerunning with the same --workdir resumes, skipping "
        "finished (strategy, seed) runs",
    )
    args = p.parse_args()
    budget = args.budget_s or (40.0 if args.quick else 150.0)
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    n_proposals = args.proposals if args.proposals is not None else (12 if args.quick else 40)
    strategies = [s for s in args.strategies.split(",") if s]
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        p.error(f"unknown strategies {unknown}; choose from {STRATEGIES}")
    if args.out is None:
        args.out = Path("docs/bench/search_quick.json" if args.quick else "docs/bench/search.json")
    plot = args.plot or args.out.with_name(args.out.stem + "_fronts.png")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_search_"))
    extra = [f"+hw={args.hw}"] if args.hw else []
    if args.quick:  # a check that everything runs, not a measurement
        extra.append("train.epochs=2")

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    t_start = time.monotonic()
    report: dict[str, Any] = {
        "budget_s": budget,
        "seeds": seeds,
        "hw": args.hw,
        "overrides": extra,
        "reference": {"accuracy": REF_ACCURACY, "size_bytes": LENET5_BYTES},
        "strategies": {},
        "machine": f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start",
        "commit": _commit(),
        "jobs": args.jobs,
        "date": time.strftime("%Y-%m-%d"),
    }
    lenet = {
        seed: _cached(
            work / "lenet5" / f"seed{seed}_val_test.json", lambda s=seed: lenet5_accuracy(s)
        )
        for seed in seeds
    }
    report["lenet5_val_accuracy"] = {str(s): a["val"] for s, a in lenet.items()}
    report["lenet5_test_accuracy"] = {str(s): a["test"] for s, a in lenet.items()}
    fronts: dict[str, list[dict[str, Any]]] = {}
    same = _same_as(strategies, extra)
    if args.jobs > 1:  # one core per run, so runs side by side get the same compute
        extra.append("train.threads=1")
        report["overrides"] = extra
    # Seed-major: with --jobs 2, the runs side by side are the strategies of one seed,
    # so whatever else loads the machine meanwhile loads both alike.
    units = [(n, seed) for seed in seeds for n in strategies if n not in same]
    results = run_units(units, work, budget, extra, lenet, jobs=args.jobs)
    for name in strategies:
        if name in same:  # e.g. joint_tpe when tpe without early stopping is the default
            report["strategies"][name] = dict(report["strategies"][same[name]], same_as=same[name])
            fronts[name] = fronts[same[name]]
            continue
        runs = [results[name, seed] for seed in seeds]
        fronts[name] = runs[0]["front"]
        hvs = [r["hypervolume"] for r in runs]
        report["strategies"][name] = {
            "budget_s": budget / 2 if name in HALF else budget,
            "hypervolume_mean": statistics.mean(hvs),
            "hypervolume_std": statistics.stdev(hvs) if len(hvs) > 1 else 0.0,
            "hypervolumes": hvs,
            "trials": [r["trained"] for r in runs],
            "pruned": [r["pruned"] for r in runs],
            "infeasible": [r["infeasible"] for r in runs],
            "hypervolume_per_seed": hvs,
            "candidates_scored": [r.get("candidates_scored", r["trained"]) for r in runs],
            "best_ratio_at_lenet5_accuracy": _mean_ratio(runs),
            # The front's most accurate member (val: what the search selects on).
            "best_val_accuracy_per_seed": [
                max((m["val_accuracy"] for m in r["front"]), default=None) for r in runs
            ],
            "runs": runs,
        }
    if "joint" in report["strategies"]:
        per_seed = [r["lenet5_match"] for r in report["strategies"]["joint"]["runs"]]
        ratios = [m["ratio"] for m in per_seed if m is not None]
        report["best_ratio_at_lenet5_accuracy"] = statistics.mean(ratios) if ratios else None
        report["best_ratio_at_lenet5_accuracy_per_seed"] = per_seed
    commits = {r.get("commit") for r in results.values()}
    if None not in commits:  # the runs' own: a resumed benchmark's may predate this one
        report["commit"] = ",".join(sorted(str(c) for c in commits))
    loads = [r["load_average"] for r in results.values() if "load_average" in r]
    if loads:  # per run, so a resumed benchmark reports the runs' machine, not its own
        report["machine"] = (
            f"{os.cpu_count()} CPUs, load average {min(loads):.1f}-{max(loads):.1f} at the "
            "end of the runs"
        )
    if n_proposals > 0:
        report["feasibility"] = feasibility_study(n_proposals, seed=0)
    report["wall_s"] = round(time.monotonic() - t_start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float))
    table = markdown(report)
    args.out.with_suffix(".md").write_text(table)
    plot_fronts(plot, fronts, budget)
    print(table)
    print(f"wrote {args.out}, {args.out.with_suffix('.md')}, {plot}; runs in {work}")
    return 0


def _commit() -> str:
    from _common import git_commit

    return git_commit()


def _run_commit(out: Path) -> str | None:
    """The commit a finished search ran at: its MLflow parent run's ``git.commit`` tag."""
    from mlflow.tracking import MlflowClient

    from nas.study import keys

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, filter_string=f"tags.`{keys.TAG_ROLE}` = '{keys.ROLE_SEARCH}'")
    tag = runs[0].data.tags.get("git.commit") if runs else None
    if tag is None or tag == "unknown":
        return tag
    return tag[:7] + ("-dirty" if tag.endswith("-dirty") else "")  # as git_commit() writes it


def _mean_ratio(runs: list[dict[str, Any]]) -> float | None:
    """Mean over seeds of the LeNet-5 size ratio (a seed with no match counts 0)."""
    ratios = [r["lenet5_match"]["ratio"] if r["lenet5_match"] else 0.0 for r in runs]
    return statistics.mean(ratios) if ratios else None


def run_units(
    units: list[tuple[str, int]],
    work: Path,
    budget: float,
    extra: list[str],
    lenet: dict[int, float],
    *,
    jobs: int,
) -> dict[tuple[str, int], dict[str, Any]]:
    """Every (strategy, seed) run, ``jobs`` at a time, each in its own process."""
    results: dict[tuple[str, int], dict[str, Any]] = {}
    if jobs <= 1:
        for name, seed in units:
            results[name, seed] = run_unit(name, seed, work, budget, extra, lenet[seed])
        return results
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {
            u: pool.submit(run_unit, u[0], u[1], work, budget, extra, lenet[u[1]]) for u in units
        }
        for u, f in futures.items():
            results[u] = f.result()
    return results


def run_unit(
    name: str, seed: int, work: Path, budget: float, extra: list[str], lenet: dict[str, float]
) -> dict[str, Any]:
    """One strategy and seed; its summary, also stored so that --workdir resumes."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out = work / name / f"seed{seed}"
    b = budget / 2 if name in HALF else budget
    done = out / "summary.json"
    if done.exists():  # finished before a crash or Ctrl-C
        run: dict[str, Any] = json.loads(done.read_text())
        if "finalists" not in run and name.startswith("supernet"):  # an older summary
            run["finalists"] = finalists(study_rows(out, "bench"))
        if "commit" not in run:  # an older summary: the commit its search ran at
            run["commit"] = _run_commit(out)
    else:
        if out.exists():  # an interrupted run: its budget is spent, start it again
            shutil.rmtree(out)
        t0 = time.monotonic()
        if name == "two_stage":
            rows = run_two_stage(out, seed, b, extra)
        else:
            rows = run_strategy(out, seed, b, [*OVERRIDES[name], *extra])
        run = summarize(rows, lenet)
        run["finalists"] = finalists(rows)
        run["commit"] = _commit()  # a resumed benchmark's runs may predate its commit
        run["wall_s"] = round(time.monotonic() - t0, 1)
        run["load_average"] = round(os.getloadavg()[0], 2)
        done.write_text(json.dumps(run, indent=2, default=float))
    print(
        f"{name:<12} seed {seed}: hv {run['hypervolume']:.4f}, {run['trained']} trained, "
        f"{run['pruned']} pruned, {run['infeasible']} infeasible, {run['wall_s']:.0f} s",
        file=sys.stderr,
    )
    return run


def _cached(path: Path, compute: Any) -> Any:
    """``compute()``, stored as JSON at ``path`` so a resumed benchmark skips it."""
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return value


def _same_as(strategies: list[str], extra: list[str]) -> dict[str, str]:
    """Strategies whose composed config equals an earlier one's (run once, reported twice)."""
    from omegaconf import OmegaConf

    seen: dict[str, str] = {}
    same: dict[str, str] = {}
    for name in strategies:
        if name not in OVERRIDES:
            continue
        key = OmegaConf.to_yaml(compose([*OVERRIDES[name], *extra])) + str(name in HALF)
        if key in seen:
            same[name] = seen[key]
        else:
            seen[key] = name
    return same


def compose(overrides: list[str]) -> Any:
    from nas import compose as nas_compose

    return nas_compose(overrides)


def run_strategy(out: Path, seed: int, budget: float, overrides: list[str]) -> list[dict[str, Any]]:
    """One search through run_search; its trained, feasible trials as rows (a supernet
    search's inherited-weight estimates are rows with ``scored`` set)."""
    from nas.driver import run_search

    cfg = compose(
        [
            *overrides,
            f"search.seed={seed}",
            f"search.timeout_s={budget}",
            "search.n_trials=10000",
            "search.progress=false",
            "search.study_name=bench",
            f"search.output_dir={out}",
        ]
    )
    outcome = run_search(cfg)
    return study_rows(out, outcome.study_name)


def study_rows(out: Path, study_name: str) -> list[dict[str, Any]]:
    import optuna
    from optuna.trial import TrialState

    from nas.study import make_storage

    study = optuna.load_study(study_name=study_name, storage=make_storage(None, study_name, out))
    rows = []
    for t in study.trials:
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        if t.state == TrialState.COMPLETE:
            row["feasible"] = bool(t.user_attrs.get("feasible"))
            if row["feasible"] and "test_accuracy" not in t.user_attrs:
                row["scored"] = True  # an inherited-weight estimate, not an artifact
            elif row["feasible"]:
                row.update(
                    val_accuracy=float(t.values[0]),
                    size_bytes=float(t.values[1]),
                    test_accuracy=float(t.user_attrs["test_accuracy"]),
                    params={k: v for k, v in t.params.items()},
                )
            metrics = t.user_attrs.get("metrics") or {}
            if "finetune_epochs" in metrics:  # a supernet search's finalist
                row["finetune"] = [metrics["finetune_epochs"], metrics["finetune_best_epoch"]]
        rows.append(row)
    return rows


def finalists(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A supernet search's finalists: how long each trained (the epochs before its val
    accuracy stopped improving, and the epoch kept) and their widths."""
    done = [r for r in rows if "finetune" in r]
    if not done:
        return None
    widths = [r["params"].get("width_mult") for r in done if "params" in r]
    return {
        "n": len(done),
        "epochs": [r["finetune"][0] for r in done],
        "best_epochs": [r["finetune"][1] for r in done],
        "by_width": {str(w): widths.count(w) for w in sorted(set(widths))},
    }


def run_two_stage(out: Path, seed: int, budget: float, extra: list[str]) -> list[dict[str, Any]]:
    """Stage 1: fp32 architecture search (half the budget); stage 2: compress a grid."""
    from nas.pipeline import propose, train_proposal
    from nas.runners import make_context

    start = time.monotonic()
    rows = run_strategy(out, seed, budget / 2, [*STAGE1, *extra])
    trained = sorted(
        (r for r in rows if r.get("feasible")), key=lambda r: (-r["val_accuracy"], r["size_bytes"])
    )
    archs = [r["params"] for r in trained[:TOP_ARCHS]]
    cfg = compose(
        [
            *extra,
            "early_stop=none",
            "compress.prune_scopes=[global]",
            f"search.seed={seed}",
            f"search.output_dir={out}",
        ]
    )
    ctx = make_context(cfg, out_dir=out, study_name="stage2", evaluator=True)
    grid = [(b, s) for b in GRID_BITS for s in GRID_SPARSITY]
    durations: list[float] = []
    number = 10_000
    try:
        for bits, sparsity in grid:
            for arch in archs:
                typical = statistics.median(durations) if durations else 0.0
                if time.monotonic() + typical > start + budget:
                    return rows
                t0 = time.monotonic()
                fixed = dict(arch, bits=bits, sparsity=sparsity, prune_scope="global")
                proposal = propose(_Fixed(fixed), ctx, number=number)
                number += 1
                if not proposal.feasible:
                    rows.append({"number": number, "state": "COMPLETE", "feasible": False})
                    continue
                result = train_proposal(proposal, ctx)
                durations.append(time.monotonic() - t0)
                rows.append(
                    {
                        "number": number,
                        "state": "COMPLETE",
                        "feasible": True,
                        "val_accuracy": result.metrics["val_accuracy"],
                        "size_bytes": result.metrics["size_bytes"],
                        "test_accuracy": result.test_accuracy,
                        "params": fixed,
                    }
                )
    finally:
        if ctx.evaluator is not None:
            ctx.evaluator.close()
    return rows


class _Fixed:
    """A Suggest that returns fixed values (stage-2 grid points)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.values[name]

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return int(self.values[name])

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return float(self.values[name])


def summarize(rows: list[dict[str, Any]], lenet: dict[str, float]) -> dict[str, Any]:
    """Hypervolume of the val-selected front at test accuracy, and the LeNet-5 match: the
    smallest front member (selected on val) at LeNet-5's val accuracy or above, whose
    test accuracy is within 1 point of LeNet-5's."""
    from nas.study import Point, hypervolume, pareto_front

    points = [
        Point(r["number"], r["val_accuracy"], r["size_bytes"], {"test": r["test_accuracy"]})
        for r in rows
        if r.get("feasible") and not r.get("scored")
    ]
    front = pareto_front(points)  # selected on val
    at_test = [Point(p.number, p.extra["test"], p.size_bytes) for p in front]
    hv = hypervolume(at_test, ref_accuracy=REF_ACCURACY, ref_size_bytes=LENET5_BYTES)
    lenet_val, lenet_test = lenet["val"], lenet["test"]
    match = next(
        (p for p in front if p.accuracy >= lenet_val and p.extra["test"] >= lenet_test - 0.01),
        None,
    )
    return {
        "hypervolume": hv,
        "candidates_scored": sum(1 for r in rows if r.get("scored")) or len(points),
        "front_candidates_seen": len(points),
        "trained": len(points),
        "pruned": sum(1 for r in rows if r["state"] == "PRUNED"),
        "infeasible": sum(1 for r in rows if r.get("feasible") is False),
        "failed": sum(1 for r in rows if r["state"] == "FAIL"),
        "front": [
            {
                "trial": p.number,
                "val_accuracy": p.accuracy,
                "test_accuracy": p.extra["test"],
                "size_bytes": p.size_bytes,
            }
            for p in front
        ],
        "lenet5_match": None
        if match is None
        else {
            "trial": match.number,
            "size_bytes": match.size_bytes,
            "val_accuracy": match.accuracy,
            "test_accuracy": match.extra["test"],
            "lenet5_val_accuracy": lenet_val,
            "lenet5_test_accuracy": lenet_test,
            "ratio": LENET5_BYTES / match.size_bytes,
        },
    }


def lenet5_accuracy(seed: int) -> dict[str, float]:
    """Val and test accuracy of the fp32 LeNet-5, trained like scripts/baseline_lenet.py,
    on the split of ``seed``."""
    import torch
    from _common import train_uncompressed

    from nas.pipeline import Recipe, accuracy, load_splits
    from search_spaces import LENET5, get_search_space

    cfg = compose(["search_space=tiny", f"search.seed={seed}"])
    torch.set_num_threads(int(cfg.train.threads))
    splits = load_splits(cfg.dataset, seed=seed)
    space = get_search_space("tiny")
    recipe = Recipe.from_config(cfg.train, cfg.compress, default_lr=space.default_lr)
    model = train_uncompressed(space, LENET5, splits, recipe, seed=seed)
    return {
        "val": accuracy(model, splits.x_val, splits.y_val),
        "test": accuracy(model, splits.x_test, splits.y_test),
    }


class _Blind:
    """Passes suggestions through but hides set_constraint: a constraint-blind sampler."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.trial.suggest_categorical(name, choices)

    def suggest_int(self, name: str, low: int, high: int, **kw: Any) -> int:
        return int(self.trial.suggest_int(name, low, high, **kw))

    def suggest_float(self, name: str, low: float, high: float, **kw: Any) -> float:
        return float(self.trial.suggest_float(name, low, high, **kw))


FEASIBILITY_SETTINGS = {
    # name: (sampler overrides, constraints visible to the sampler)
    "random": (["sampler=random", "sampler.feasibility_candidates=0"], False),
    "tpe_blind": (["sampler=tpe", "sampler.feasibility_candidates=0"], False),
    "tpe_optuna_constraints": (["sampler=tpe", "sampler.feasibility_candidates=0"], True),
    "tpe_constraint_model": (["sampler=tpe", "sampler.feasibility_candidates=16"], True),
}


def feasibility_study(n: int, *, seed: int) -> dict[str, Any]:
    """Share of infeasible proposals under +hw=mobile, proposals only (no training).

    Each setting proposes ``n`` candidates with ``nas.pipeline.propose`` (the search's
    own feasibility check). Infeasible ones are told as the search tells them (val
    accuracy 0, estimated size); feasible ones get a synthetic accuracy instead of
    training: 0.99 - 0.1 * exp(-params / 30,000), minus 0.04 at 2 bits and 0.015 at
    3 bits, minus (sparsity - 0.6)^2 above sparsity 0.6, plus N(0, 0.003) noise. So
    the samplers' pull toward accurate models is only roughly that of a real search;
    the infeasible region (budgets on predicted latency, size and peak memory) is real.
    """
    import optuna

    from nas.pipeline import propose
    from nas.runners import make_context
    from nas.study import make_sampler

    results: dict[str, Any] = {
        "proposals": n,
        "hw": "mobile",
        "method": " ".join((feasibility_study.__doc__ or "").split()),
    }
    for name, (overrides, visible) in FEASIBILITY_SETTINGS.items():
        cfg = compose(["+hw=mobile", "early_stop=none", f"search.seed={seed}", *overrides])
        with tempfile.TemporaryDirectory() as d:
            ctx = make_context(cfg, out_dir=Path(d), study_name="feasibility", evaluator=False)
            study = optuna.create_study(
                directions=["maximize", "minimize"], sampler=make_sampler(cfg.sampler, seed)
            )
            rng = random.Random(seed)
            flags = []
            t0 = time.monotonic()
            for _ in range(n):
                trial = study.ask()
                p = propose(trial if visible else _Blind(trial), ctx, number=trial.number)
                size = p.metrics["size_bytes_estimate"]
                acc = _synthetic_accuracy(p.metrics["params"], p.compression, rng)
                study.tell(trial, [acc if p.feasible else 0.0, size])
                flags.append(not p.feasible)
        startup = int(cfg.sampler.n_startup_trials)
        results[name] = {
            "infeasible_share": sum(flags) / n,
            "infeasible_share_after_startup": sum(flags[startup:]) / max(n - startup, 1),
            "infeasible": sum(flags),
            "seconds_per_proposal": (time.monotonic() - t0) / n,
        }
        print(f"feasibility {name}: {sum(flags)}/{n} infeasible", file=sys.stderr)
    return results


def _synthetic_accuracy(params: float, comp: dict[str, Any], rng: random.Random) -> float:
    acc = 0.99 - 0.1 * math.exp(-params / 30_000)
    acc -= {2: 0.04, 3: 0.015}.get(int(comp["bits"]), 0.0)
    acc -= max(0.0, float(comp.get("sparsity", 0.0)) - 0.6) ** 2
    return acc + rng.gauss(0.0, 0.003)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Budget {report['budget_s']:.0f} s per strategy and seed (*_half: half), seeds "
        f"{report['seeds']}, {report['machine']}. Hypervolume of the val-selected front at "
        f"test accuracy, on (test accuracy, log10 size), reference ({REF_ACCURACY}, "
        f"{LENET5_BYTES:,} B).",
        "",
        "| strategy | hypervolume (mean ± std) | trained per seed | pruned | infeasible |",
        "|---|---|---|---|---|",
    ]
    for name, s in report["strategies"].items():
        lines.append(
            f"| {name} | {s['hypervolume_mean']:.3f} ± {s['hypervolume_std']:.3f} | "
            f"{', '.join(map(str, s['trials']))} | {', '.join(map(str, s['pruned']))} | "
            f"{', '.join(map(str, s['infeasible']))} |"
        )
    ratio = report.get("best_ratio_at_lenet5_accuracy")
    if "best_ratio_at_lenet5_accuracy_per_seed" in report:
        lines.append("")
        for seed, m in zip(
            report["seeds"], report["best_ratio_at_lenet5_accuracy_per_seed"], strict=True
        ):
            lenet = report["lenet5_val_accuracy"][str(seed)]
            if m is None:
                lines.append(f"- seed {seed}: no joint front model reaches LeNet-5 val {lenet:.3f}")
            else:
                lines.append(
                    f"- seed {seed}: {m['ratio']:.0f}x smaller than the fp32 LeNet-5 "
                    f"({m['size_bytes']:,.0f} B, val {m['val_accuracy']:.3f} >= LeNet-5's "
                    f"{lenet:.3f}, test {m['test_accuracy']:.3f})"
                )
        if ratio is not None:
            lines.append(f"- best_ratio_at_lenet5_accuracy (mean over seeds): {ratio:.0f}x")
    f = report.get("feasibility")
    if f:
        lines += [
            "",
            f"Infeasible proposals under +hw=mobile ({f['proposals']} proposals each, "
            "proposals only, synthetic accuracies; see JSON `feasibility.method`):",
            "",
            "| sampler | infeasible | after the 10 start-up trials |",
            "|---|---|---|",
        ]
        for name in FEASIBILITY_SETTINGS:
            r = f[name]
            lines.append(
                f"| {name} | {r['infeasible_share']:.0%} | "
                f"{r['infeasible_share_after_startup']:.0%} |"
            )
    return "\n".join(lines) + "\n"


def plot_fronts(path: Path, fronts: dict[str, list[dict[str, Any]]], budget: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    # Strategies that found the very same front (e.g. samplers still in their random
    # start-up phase, on the same seed) share one line, labelled with all their names.
    groups: dict[tuple[tuple[float, float], ...], list[str]] = {}
    for name, front in fronts.items():
        pts = tuple(sorted((r["size_bytes"], r["test_accuracy"]) for r in front))
        groups.setdefault(pts, []).append(name)
    markers = "osD^vP*X"
    for i, (pts, names) in enumerate(groups.items()):
        if not pts:
            continue
        ax.step(
            [x for x, _ in pts],
            [y for _, y in pts],
            where="post",
            marker=markers[i % len(markers)],
            ms=4,
            label=" = ".join(names),
        )
    ax.axvline(LENET5_BYTES, c="grey", ls=":", lw=1)
    ax.axhline(REF_ACCURACY, c="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_ylim(bottom=REF_ACCURACY - 0.05)
    ax.set_xlabel("size_bytes (artifact, log scale)")
    ax.set_ylabel("test accuracy (front selected on val)")
    ax.set_title(f"Fronts at an equal budget ({budget:.0f} s), seed 0, mnist5k")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
