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

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from _bench import Bench, add_unit_args, run_units, write_json  # noqa: E402
from _search_report import feasibility_study, markdown, plot_fronts  # noqa: E402
from _search_runs import (  # noqa: E402
    DEFAULT_STRATEGIES,
    HALF,
    LENET5_BYTES,
    OVERRIDES,
    REF_ACCURACY,
    STRATEGIES,
    finalists,
    lenet5_accuracy,
    run_commit,
    run_strategy,
    run_two_stage,
    same_as,
    study_rows,
    summarize,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="default docs/bench/search.json")
    p.add_argument("--budget-s", type=float, default=None, help="per strategy and seed")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument(
        "--quick", action="store_true", help="1 seed, 40 s budgets, 2 epochs, 12 proposals"
    )
    p.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES))
    p.add_argument("--hw", default=None, help="hw profile for the strategies (default: none)")
    p.add_argument(
        "--proposals", type=int, default=None, help="per feasibility setting (0: skip it)"
    )
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE",
        help="config overrides for every strategy (e.g. a smaller space for a smoke run)",
    )  # fmt: skip
    p.add_argument(
        "--supernet-set", nargs="*", default=[], metavar="KEY=VALUE",
        help="config overrides for the supernet strategies only (their strategy.* keys)",
    )  # fmt: skip
    add_unit_args(p, workdir_help="keep the runs here; rerunning with the same --workdir "
                  "resumes, skipping finished (strategy, seed) runs")  # fmt: skip
    return p


def main() -> int:
    p = _parser()
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
    extra += args.set
    if args.quick:  # a check that everything runs, not a measurement
        extra.append("train.epochs=2")
    bench = Bench(__file__, overrides=extra)

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    report: dict[str, Any] = {
        "budget_s": budget,
        "seeds": seeds,
        "hw": args.hw,
        "overrides": extra,
        "reference": {"accuracy": REF_ACCURACY, "size_bytes": LENET5_BYTES},
        "strategies": {},
        "machine": f"{os.cpu_count()} CPUs, load average {bench.load_start[0]:.1f} at start",
        "jobs": args.jobs,
    }
    lenet = _lenet5(work, seeds)
    report["lenet5_val_accuracy"] = {str(s): a["val"] for s, a in lenet.items()}
    report["lenet5_test_accuracy"] = {str(s): a["test"] for s, a in lenet.items()}
    same = same_as(strategies, extra)
    if args.jobs > 1:  # one core per run, so runs side by side get the same compute
        extra.append("train.threads=1")
    # Seed-major: with --jobs 2, the runs side by side are the strategies of one seed,
    # so whatever else loads the machine meanwhile loads both alike.
    units = [(n, seed) for seed in seeds for n in strategies if n not in same]
    own = {n: list(args.supernet_set) for n in strategies if n.startswith("supernet")}
    unit = functools.partial(run_unit, work=work, budget=budget, extra=extra, lenet=lenet, own=own)
    results = run_units(
        unit,
        units,
        lambda u: _unit_dir(work, *u) / "summary.json",
        jobs=args.jobs,
        threads=1 if args.jobs > 1 else None,
    )
    for (name, seed), run in results.items():
        _upgrade(run, name, _unit_dir(work, name, seed))
        _say(name, seed, run)
    fronts = _strategies(report, strategies, seeds, same, results, budget)
    _runs_provenance(report, results)
    if n_proposals > 0:
        report["feasibility"] = feasibility_study(n_proposals, seed=0)
    report["wall_s"] = bench.seconds()
    table = markdown(report)
    bench.write(report, args.out, markdown=table, indent=2, default=float)
    plot_fronts(plot, fronts, budget)
    print(table)
    print(f"wrote {args.out}, {args.out.with_suffix('.md')}, {plot}; runs in {work}")
    return 0


def _lenet5(work: Path, seeds: list[int]) -> dict[int, dict[str, float]]:
    """The fp32 LeNet-5 reference's val and test accuracy per seed, kept in ``work``."""
    return {
        seed: _cached(
            work / "lenet5" / f"seed{seed}_val_test.json", lambda s=seed: lenet5_accuracy(s)
        )
        for seed in seeds
    }


def _say(name: str, seed: int, run: dict[str, Any]) -> None:
    print(
        f"{name:<12} seed {seed}: hv {run['hypervolume']:.4f}, {run['trained']} trained, "
        f"{run['pruned']} pruned, {run['infeasible']} infeasible, {run['wall_s']:.0f} s",
        file=sys.stderr,
    )


def _strategies(
    report: dict[str, Any],
    strategies: list[str],
    seeds: list[int],
    same: dict[str, str],
    results: dict[tuple[Any, ...], dict[str, Any]],
    budget: float,
) -> dict[str, list[dict[str, Any]]]:
    """Each strategy's figures over its seeds into ``report``; its seed-0 front."""
    fronts: dict[str, list[dict[str, Any]]] = {}
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
    return fronts


def _runs_provenance(report: dict[str, Any], results: dict[Any, dict[str, Any]]) -> None:
    """The runs' own commit and load: a resumed benchmark's runs may predate this one."""
    commits = {r.get("commit") for r in results.values()}
    if commits and None not in commits:
        report["commit"] = ",".join(sorted(str(c) for c in commits))
    loads = [r["load_average"] for r in results.values() if "load_average" in r]
    if loads:
        report["machine"] = (
            f"{os.cpu_count()} CPUs, load average {min(loads):.1f}-{max(loads):.1f} at the "
            "end of the runs"
        )


def _unit_dir(work: Path, name: str, seed: int) -> Path:
    return work / name / f"seed{seed}"


def _upgrade(run: dict[str, Any], name: str, out: Path) -> None:
    """An older summary (kept in a workdir) given the keys this version reports."""
    if "finalists" not in run and name.startswith("supernet"):
        run["finalists"] = finalists(study_rows(out, "bench"))
    if "commit" not in run:  # the commit its search ran at
        run["commit"] = run_commit(out)


def _mean_ratio(runs: list[dict[str, Any]]) -> float | None:
    """Mean over seeds of the LeNet-5 size ratio (a seed with no match counts 0)."""
    ratios = [r["lenet5_match"]["ratio"] if r["lenet5_match"] else 0.0 for r in runs]
    return statistics.mean(ratios) if ratios else None


def run_unit(
    name: str,
    seed: int,
    *,
    work: Path,
    budget: float,
    extra: list[str],
    lenet: dict[int, dict[str, float]],
    own: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """One strategy and seed, from scratch; its summary (the harness keeps it for resume).
    ``own``: per strategy, overrides for it alone (after ``extra``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out = _unit_dir(work, name, seed)
    if out.exists():  # an interrupted run: its budget is spent, start it again
        shutil.rmtree(out)
    b = budget / 2 if name in HALF else budget
    if name == "two_stage":
        rows = run_two_stage(out, seed, b, extra)
    else:
        rows = run_strategy(out, seed, b, [*OVERRIDES[name], *extra, *(own or {}).get(name, [])])
    run = summarize(rows, lenet[seed])
    run["finalists"] = finalists(rows)
    return run


def _cached(path: Path, compute: Any) -> Any:
    """``compute()``, stored as JSON at ``path`` so a resumed benchmark skips it."""
    import json

    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    write_json(path, value)
    return value


if __name__ == "__main__":
    sys.exit(main())
