"""How far inherited weights can be trusted, and what a supernet search costs (issue 14).

Four measurements on mnist5k, +hw=mobile, seed 0, the default ``strategy=supernet``
config unless an option says otherwise:

1. **Ranking fidelity.** Candidates are drawn as the search draws them (architecture
   and compression, uniformly, feasible under the budgets) and each is trained
   standalone once with a ``joint`` (scratch) trial's budget and seed, exported and
   scored from its artifact. Those below 0.5 standalone val accuracy are left out
   (they rank noise), until ``--candidates`` are kept. Kendall's tau between each
   supernet's inherited-weight val accuracy and the standalone one, with a
   bootstrap 95% interval (2,000 resamples of the candidates).
2. **Schedules.** The same for each ``--schedules`` supernet (sandwich, progressive),
   trained with the same budget: the schedule with the higher tau is the default.
3. **Scoring time**: the median seconds of one inherited-weight evaluation (extract,
   compress, re-estimate BatchNorm, val accuracy) over ``--score-n`` candidates.
4. **Sampler time per proposal** at thousands of trials: each sampler (behind the
   search's constraint-model wrapper) proposes candidates of the real space with a
   synthetic objective, so the figure is the sampler's own cost (``ask`` and the
   ``suggest`` calls), at 100, 500, 1,000 and 2,000 trials (``gp`` at fewer).
5. **Reuse**: a second search on another profile (+hw=raspi4) with the cached
   supernet: its supernet time and its time to score 1,000 candidates.
6. **Sampler quality** (``sampler_quality``): whole searches, one per sampler and
   ``--quality-seeds`` seed, each scoring ``--quality-n`` proposals over the same
   cached supernet (``--supernets DIR`` copies ones trained elsewhere, e.g. by
   ``bench_search.py``, so none retrains): the hypervolume of the estimated front
   (inherited val accuracy against estimated size) as the study grows, and the
   wall time. With the time per proposal (4.), this chooses the strategy's sampler.

    python scripts/bench_supernet.py                  # ~25 min on 2 cores
    python scripts/bench_supernet.py --quick          # ~4 min: a check that it runs

Writes docs/bench/supernet.json (keys ``kendall_tau``, ``kendall_tau_ci`` for the
default schedule) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _bench import Bench, add_unit_args, write_json
from _supernet_finalised import finalised
from _supernet_searches import reuse, sampler_quality

MIN_STANDALONE = 0.5
SECTIONS = ("fidelity", "score", "samplers", "finalised", "reuse", "sampler_quality")
# Sections that need the seed-0 supernets of every --schedules trained (or cached).
_NEED_SUPERNETS = {"fidelity", "score", "samplers", "finalised"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/bench/supernet.json"))
    p.add_argument("--quick", action="store_true", help="tiny budgets: a check that it runs")
    p.add_argument("--candidates", type=int, default=None, help="kept for the tau (default 30)")
    p.add_argument("--schedules", default="sandwich,progressive")
    p.add_argument("--samplers", default="tpe,nsga2,random,gp")
    p.add_argument("--score-n", type=int, default=None, help="candidates timed (default 200)")
    p.add_argument("--reuse-n", type=int, default=None, help="default 1000; 0 skips it")
    p.add_argument("--finalise-n", type=int, default=None, help="default 6")
    p.add_argument("--threads", type=int, default=None, help="train.threads (default: config)")
    p.add_argument("--quality-n", type=int, default=None, help="proposals per run (default 500)")
    p.add_argument("--quality-seeds", default="0,1")
    p.add_argument("--quality-samplers", default="tpe,nsga2,random")
    add_unit_args(p, workdir_help="keep (and reuse) the supernets and searches here")
    p.add_argument(
        "--supernets",
        type=Path,
        action="append",
        default=[],
        help="a folder of cached supernets (*.safetensors) to reuse for sampler_quality; "
        "may repeat",
    )
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"which to measure, of {','.join(SECTIONS)}; with --workdir, cached supernets "
        "are reused and the others' figures kept from --out",
    )
    return p


def main() -> int:
    p = _parser()
    args = p.parse_args()
    sections = [s for s in args.sections.split(",") if s]
    if unknown := sorted(set(sections) - set(SECTIONS)):
        p.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    q = args.quick
    reuse_n = args.reuse_n if args.reuse_n is not None else (40 if q else 1000)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_supernet_"))
    extra = ["strategy.epochs=2", "strategy.warmup_epochs=1", "train.epochs=1"] if q else []
    if args.threads:
        extra.append(f"train.threads={args.threads}")

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    start = time.monotonic()
    report: dict[str, Any] = {"quick": q, "overrides": extra, "min_standalone": MIN_STANDALONE}
    bench = Bench(__file__, overrides=extra)
    report.update({k: v for k, v in bench.provenance().items() if k != "overrides"})
    # Some sections only, into an existing record: the record's own commit, date and
    # overrides stay those of the figures it already holds; the new sections carry theirs.
    previous = (
        json.loads(args.out.read_text())
        if set(sections) != set(SECTIONS) and args.out.exists()
        else None
    )
    measured = dict(report)
    _trained_sections(report, args, sections, work, extra)
    if reuse_n > 0 and "reuse" in sections:
        report["reuse"] = reuse(work, extra, reuse_n)
    if "sampler_quality" in sections:
        report["sampler_quality"] = sampler_quality(
            work,
            extra,
            samplers=[s for s in args.quality_samplers.split(",") if s],
            seeds=[int(x) for x in args.quality_seeds.split(",") if x],
            n=args.quality_n or (30 if q else 500),
            supernets=args.supernets,
            jobs=args.jobs,
        )
    report["wall_seconds"] = time.monotonic() - start
    if previous is None:
        bench.write(report, args.out)
    else:  # the record's provenance is its earlier figures'; the new sections carry theirs
        write_json(args.out, _merge(previous, report, measured, sections))
    _print(report)
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


def _trained_sections(
    report: dict[str, Any], args: Any, sections: list[str], work: Path, extra: list[str]
) -> None:
    """The sections that need the trained supernets, into ``report``."""
    q = args.quick
    n_keep = args.candidates or (6 if q else 30)
    score_n = args.score_n or (20 if q else 200)
    schedules = [s for s in args.schedules.split(",") if s]
    samplers = [s for s in args.samplers.split(",") if s]
    ctx, strategies = None, dict[str, Any]()
    if _NEED_SUPERNETS & set(sections):
        ctx, strategies, train_s = _supernets(work, schedules, extra)
        report["supernet_train_seconds"] = train_s
    if "fidelity" in sections:
        fidelity = _fidelity(ctx, strategies, n_keep, max_draws=3 * n_keep)
        report["fidelity"] = fidelity
        taus = {s: fidelity["schedules"][s]["kendall_tau"] for s in schedules}
        report["default_schedule"] = schedules[0]
        report["best_schedule"] = max(schedules, key=lambda s: taus[s])
        report["kendall_tau"] = taus[schedules[0]]
        report["kendall_tau_ci"] = fidelity["schedules"][schedules[0]]["kendall_tau_ci"]
    if "score" in sections:
        report["score_seconds"] = _score_times(ctx, strategies[schedules[0]], score_n)
    if "samplers" in sections:
        report["sampler_seconds_per_proposal"] = {
            s: _sampler_cost(ctx, s, _at(s, q)) for s in samplers
        }
    if "finalised" in sections:
        report["finalised"] = finalised(ctx, strategies, args.finalise_n or (2 if q else 6))
    if ctx is not None and ctx.evaluator is not None:
        ctx.evaluator.close()


def _merge(
    previous: dict[str, Any], report: dict[str, Any], measured: dict[str, Any], sections: list[str]
) -> dict[str, Any]:
    """``previous`` with the figures of ``report``'s sections, each section carrying the
    commit, date, overrides and seconds it was measured with (``measured``)."""
    measured = {**measured, "sections": sections, "wall_seconds": report["wall_seconds"]}
    merged = {**previous, **{k: v for k, v in report.items() if k not in measured}}
    for section in sections:
        if isinstance(merged.get(section), dict):
            merged[section]["measured"] = measured
    return merged


def _at(sampler: str, quick: bool) -> list[int]:
    """Study sizes at which a sampler's time per proposal is reported (gp's grows fast)."""
    if quick:  # gp at 500 trials would take hours (seconds per proposal, growing)
        return [10, 20] if sampler == "gp" else [100, 500]
    # gp: 4.9 s per proposal at 100 trials on this machine; 25 and 50 show the growth.
    return [25, 50] if sampler == "gp" else [100, 500, 1000, 2000]


def _compose(overrides: list[str]) -> Any:
    from nas import compose

    return compose(["+hw=mobile", "strategy=supernet", "search.seed=0", *overrides])


def _supernets(work: Path, schedules: list[str], extra: list[str]) -> tuple[Any, Any, Any]:
    """The bench's trial context, and one trained supernet strategy per schedule."""
    from nas.pipeline import SupernetStrategy
    from nas.runners import make_context

    cfg = _compose(extra)
    ctx = make_context(cfg, out_dir=work, study_name="bench", evaluator=True)
    strategies, seconds = {}, {}
    for schedule in schedules:
        node = cfg.strategy.copy()
        node.schedule = schedule
        strategy = SupernetStrategy(node)
        t0 = time.monotonic()
        strategy.prepare(ctx)
        # A supernet cached in --workdir by an earlier run: the seconds it recorded.
        recorded = strategy.train_seconds(ctx)
        seconds[schedule] = recorded if recorded is not None else time.monotonic() - t0
        strategies[schedule] = strategy
    return ctx, strategies, seconds


def _fidelity(
    ctx: Any, strategies: dict[str, Any], n_keep: int, *, max_draws: int
) -> dict[str, Any]:
    from nas.hw import RandomSuggest
    from nas.pipeline import propose, train_proposal

    suggest = RandomSuggest(np.random.default_rng(0))
    cache_file = ctx.artifact_dir.parent.parent / "standalone.json"
    cache: dict[str, Any] = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    rows: list[dict[str, Any]] = []
    drawn = 0
    number = 0
    while len([r for r in rows if r["kept"]]) < n_keep and drawn < max_draws:
        p = propose(suggest, ctx, number=number)
        number += 1
        if not p.feasible:
            continue
        drawn += 1
        row = cache.get(str(p.number))
        if row is None:  # trained once per --workdir: seeded, so a rerun gets the same
            standalone = train_proposal(p, ctx)
            row = {
                "number": p.number,
                "arch": p.arch,
                "compression": p.compression,
                "standalone_val_accuracy": standalone.metrics["val_accuracy"],
                "standalone_seconds": standalone.metrics["trial_seconds"],
                "size_bytes": standalone.metrics["size_bytes"],
                "kept": standalone.metrics["val_accuracy"] >= MIN_STANDALONE,
            }
            cache[str(p.number)] = row
            cache_file.write_text(json.dumps(cache))
        row = dict(row)
        for name, strategy in strategies.items():
            row[f"inherited_{name}"] = strategy.score(p, ctx).metrics["val_accuracy"]
        rows.append(row)
        print(f"candidate {drawn}: standalone {row['standalone_val_accuracy']:.3f} "
              + " ".join(f"{n} {row[f'inherited_{n}']:.3f}" for n in strategies),
              file=sys.stderr)  # fmt: skip
    kept = [r for r in rows if r["kept"]]
    out: dict[str, Any] = {"drawn": drawn, "kept": len(kept), "candidates": rows, "schedules": {}}
    y = [r["standalone_val_accuracy"] for r in kept]
    for name in strategies:
        x = [r[f"inherited_{name}"] for r in kept]
        tau, ci = _tau_ci(x, y)
        out["schedules"][name] = {
            "kendall_tau": tau,
            "kendall_tau_ci": ci,
            "inherited_mean": statistics.mean(x) if x else math.nan,
            "standalone_mean": statistics.mean(y) if y else math.nan,
        }
    return out


def _tau_ci(x: list[float], y: list[float], n_boot: int = 2000) -> tuple[float, list[float]]:
    from scipy.stats import kendalltau

    if len(x) < 3:
        return math.nan, [math.nan, math.nan]
    tau = float(kendalltau(x, y).statistic)
    rng = np.random.default_rng(0)
    xa, ya = np.asarray(x), np.asarray(y)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        t = kendalltau(xa[i], ya[i]).statistic
        if t is not None and math.isfinite(t):
            boots.append(t)
    return tau, [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]


def _score_times(ctx: Any, strategy: Any, n: int) -> dict[str, float]:
    from nas.hw import RandomSuggest
    from nas.pipeline import propose

    suggest = RandomSuggest(np.random.default_rng(1))
    times, propose_times, number = [], [], 10_000
    while len(times) < n:
        t0 = time.monotonic()
        p = propose(suggest, ctx, number=number)
        propose_times.append(time.monotonic() - t0)
        number += 1
        if p.feasible:
            times.append(strategy.score(p, ctx).metrics["score_seconds"])
    return {
        "n": n,
        "median": statistics.median(times),
        "p90": float(np.percentile(times, 90)),
        "max": max(times),
        "propose_median": statistics.median(propose_times),
    }


class _Timed:
    """An Optuna trial whose suggest calls are timed (the sampler's share of a proposal)."""

    def __init__(self, trial: Any) -> None:
        self.trial, self.seconds = trial, 0.0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.trial, name)
        if not name.startswith("suggest_"):
            return attr

        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*a, **k)
            finally:
                self.seconds += time.perf_counter() - t0

        return timed


def _sampler_cost(ctx: Any, name: str, checkpoints: list[int]) -> dict[str, Any]:
    """Seconds per proposal of sampler ``name`` as the study grows (synthetic objective)."""
    import optuna

    from nas.pipeline import sample_compression
    from nas.study import DIRECTIONS, make_sampler

    cfg = _compose([f"sampler={name}"]) if name != "gp" else _compose_gp()
    study = optuna.create_study(directions=list(DIRECTIONS), sampler=make_sampler(cfg.sampler, 0))
    rng = np.random.default_rng(0)
    per: list[float] = []
    out: dict[str, Any] = {}
    for n in range(1, max(checkpoints) + 1):
        t0 = time.perf_counter()
        trial = study.ask()
        ask = time.perf_counter() - t0
        timed = _Timed(trial)
        arch = ctx.space.sample(timed)
        comp = sample_compression(timed, ctx.compress_cfg, ctx.bits)
        per.append(ask + timed.seconds)
        # A synthetic objective and constraints: the sampler's cost does not depend on them.
        for key in ("size_bytes", "latency_ms", "peak_memory_bytes"):
            trial.set_constraint(key, float(rng.normal(-0.2, 0.5)))
        size = float(arch["width_mult"]) * sum(arch["depths"]) * comp["bits"]
        study.tell(trial, [float(rng.uniform(0.5, 1.0)), size])
        if n in checkpoints:
            window = per[-min(50, len(per)) :]
            out[str(n)] = statistics.mean(window)
            print(f"sampler {name}: {n} trials, {out[str(n)] * 1000:.1f} ms per proposal",
                  file=sys.stderr)  # fmt: skip
    return out


def _compose_gp() -> Any:
    # sampler=gp is refused with strategy=supernet (this measurement is why): compose
    # the scratch config for its sampler node.
    from nas import compose

    return compose(["sampler=gp", "+hw=mobile"])


def _print(r: dict[str, Any]) -> None:
    if "sampler_quality" in r:
        q = r["sampler_quality"]
        print(f"\nSampler quality: estimated-front hypervolume by trials (mean of seeds "
              f"{q['seeds']}), seconds per search")  # fmt: skip
        for name, v in q["samplers"].items():
            hv = "  ".join(f"{k}: {x:.4f}" for k, x in v["hypervolume_mean_at"].items())
            print(f"  {name:<8} {hv}  ({v['seconds_mean']:.0f} s, {v['n_scored_mean']:.0f} scored)")
    if "fidelity" not in r:
        return
    f = r["fidelity"]
    print(f"\nRanking fidelity: {f['kept']} kept of {f['drawn']} drawn (standalone val >= "
          f"{MIN_STANDALONE})")  # fmt: skip
    head = ("schedule", "train_s", "tau", "95% CI", "inh. mean", "alone mean")
    print(f"{head[0]:<12} " + " ".join(f"{h:>10}" for h in head[1:]))
    for name, s in f["schedules"].items():
        lo, hi = s["kendall_tau_ci"]
        cells = (f"{r['supernet_train_seconds'][name]:.0f}", f"{s['kendall_tau']:.3f}",
                 f"[{lo:.2f}, {hi:.2f}]", f"{s['inherited_mean']:.3f}",
                 f"{s['standalone_mean']:.3f}")  # fmt: skip
        print(f"{name:<12} " + " ".join(f"{c:>10}" for c in cells))
    st = r["score_seconds"]
    print(f"\nScoring by inheritance: median {st['median']:.3f} s, p90 {st['p90']:.3f} s "
          f"(n={st['n']}); proposal median {st['propose_median']:.3f} s")  # fmt: skip
    print("\nSampler seconds per proposal, by trials so far:")
    for name, c in r["sampler_seconds_per_proposal"].items():
        print(f"  {name:<8}" + "  ".join(f"{k}: {v * 1000:.1f} ms" for k, v in c.items()))
    if "finalised" in r:
        means = r["finalised"]["val_accuracy_mean"]
        print("\nFinalised val accuracy, mean over the same candidates: "
              + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))  # fmt: skip
    if "reuse" in r:
        u = r["reuse"]
        print(f"\nReuse (+hw={u['hw']}): retrained={u['retrained']}; {u['candidates']} "
              f"candidates in {u['seconds_to_score']:.0f} s; "
              f"search {u['wall_seconds']:.0f} s")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
