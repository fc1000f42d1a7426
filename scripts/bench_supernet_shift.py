"""Does shifting the supernet's training images pay, and for how many epochs (issue 24)?

One supernet per variant (``strategy.shift`` and ``strategy.epochs``), mnist5k, seed 0,
one training thread each (a search's thread under ``bench_search.py --jobs 2``), no
``+hw``. For each: the largest child of every width, inherited (BatchNorm re-estimated
as scoring does), val and test accuracy; ``--candidates`` candidates of a seeded uniform
draw over the whole space and compression, inherited; and the first ``--finalists`` of
them finalised as a search finalises (fine-tuned from the inherited weights, exported,
scored from the artifact in a fresh process). The same draw for every variant, so the
finalised test accuracies pair up.

    python scripts/bench_supernet_shift.py --jobs 2 --workdir /tmp/shift   # ~40 min
    python scripts/bench_supernet_shift.py --quick                         # ~3 min

Writes docs/bench/supernet_shift.json and prints a table. Each variant is a unit of
work kept in ``--workdir`` (a rerun resumes), with the commit it ran at.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _bench import REPO, Bench, add_unit_args, git_dirty, run_units

OUT = REPO / "docs" / "bench" / "supernet_shift.json"
# name: (strategy.shift, strategy.epochs). "before" is the recipe before the shift.
VARIANTS: dict[str, tuple[float, int]] = {
    "before": (0.0, 20),
    "shift2_20": (0.07, 20),
    "shift3_20": (0.1, 20),
    "shift2_30": (0.07, 30),
}
BASELINE = "before"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default=",".join(VARIANTS), help="of " + ",".join(VARIANTS))
    p.add_argument("--candidates", type=int, default=40, help="uniform candidates, inherited")
    p.add_argument("--finalists", type=int, default=6, help="of them, finalised")
    p.add_argument("--quick", action="store_true", help="2 epochs, 4 candidates, 1 finalist")
    p.add_argument("--out", type=Path, default=OUT)
    add_unit_args(p)
    return p


def main() -> int:
    p = _parser()
    args = p.parse_args()
    names = [v for v in args.variants.split(",") if v]
    if unknown := sorted(set(names) - set(VARIANTS)):
        p.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    bench = Bench(__file__, overrides=["train.threads=1", "search.seed=0"])
    work = args.workdir or Path(f"/tmp/bench_supernet_shift{'_quick' if args.quick else ''}")
    n, k = (4, 1) if args.quick else (args.candidates, args.finalists)
    units = [(name, *VARIANTS[name], str(work), n, k, args.quick) for name in names]
    found = run_units(measure, units, lambda u: work / f"{u[0]}.json", jobs=args.jobs, threads=1)
    variants = {u[0]: r for u, r in found.items()}
    # A resumed run's variants keep the commits they ran at: the record names theirs.
    commits = sorted({str(v["commit"]) for v in variants.values()})
    record = {"commit": ", ".join(commits), "dirty": any(v.get("dirty") for v in variants.values()),
              "variants": variants, "summary": _summary(variants), "quick": args.quick,
              "wall_s": bench.seconds()}  # fmt: skip
    bench.write(record, args.out)
    _print(record["summary"])
    return 0


def measure(
    name: str, shift: float, epochs: int, work: str, n: int, k: int, quick: bool
) -> dict[str, Any]:
    """One variant's supernet, trained (or loaded from ``work``'s cache), and its figures."""
    import numpy as np

    from nas import compose
    from nas.hw import RandomSuggest
    from nas.pipeline import accuracy, inherit, propose, recalibrate_bn
    from nas.runners import make_context

    overrides = [
        "strategy=supernet", "search.seed=0", "train.threads=1", f"strategy.shift={shift}",
        *([f"strategy.epochs={epochs}"] if not quick else
          ["strategy.epochs=2", "strategy.warmup_epochs=1", "strategy.finetune_epochs=2"]),
    ]  # fmt: skip
    ctx = make_context(compose(overrides), out_dir=Path(work) / name, study_name="bench")
    strategy = ctx.strategy
    assert strategy is not None and ctx.evaluator is not None
    t0 = time.monotonic()
    strategy.prepare(ctx)
    train_s = time.monotonic() - t0
    supernet = strategy.load(ctx)
    calib = ctx.splits.train.head(int(strategy.cfg.bn_calib_images))
    widths = []
    for w in sorted(ctx.space.cfg.width_mults):
        child = supernet.extract({**supernet.largest, "width_mult": float(w)})
        recalibrate_bn(child, calib)
        widths.append({"width_mult": float(w), "val": accuracy(child, ctx.splits.val),
                       "test": accuracy(child, ctx.splits.test)})  # fmt: skip
    suggest = RandomSuggest(np.random.default_rng(0))
    proposals = [propose(suggest, ctx, number=i) for i in range(n)]
    inherited = []
    for p in proposals:
        model = inherit(supernet, p, ctx, calib_images=int(strategy.cfg.bn_calib_images))
        inherited.append({"val": accuracy(model, ctx.splits.val),
                          "test": accuracy(model, ctx.splits.test)})  # fmt: skip
    finalised = []
    for p in proposals[:k]:
        p.phase = "final"
        t1 = time.monotonic()
        r = strategy.finalize(p, ctx)
        finalised.append({
            "number": p.number, "size_bytes": r.metrics["size_bytes"],
            "val": r.metrics["val_accuracy"], "test": r.test_accuracy,
            "epochs": r.metrics["finetune_epochs"], "seconds": round(time.monotonic() - t1, 1),
        })  # fmt: skip
        print(f"{name}: finalist {len(finalised)}/{k}: test {r.test_accuracy:.3f}",
              file=sys.stderr)  # fmt: skip
    ctx.evaluator.close()
    return {"shift": shift, "epochs": epochs, "dirty": git_dirty(),
            "train_seconds": round(train_s, 1), "largest_by_width": widths,
            "uniform_inherited": inherited, "finalised": finalised}  # fmt: skip


def _summary(variants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: mean test accuracy of the largest children, the uniform candidates
    (inherited) and the finalists, and the finalists' paired gain over ``BASELINE``."""
    base = variants.get(BASELINE)
    out = {}
    for name, v in variants.items():
        tests = [f["test"] for f in v["finalised"]]
        row = {
            "largest_test_mean": statistics.mean(w["test"] for w in v["largest_by_width"]),
            "inherited_test_mean": statistics.mean(c["test"] for c in v["uniform_inherited"]),
            "finalised_test_mean": statistics.mean(tests) if tests else None,
            "finalised_seconds": None
            if any(f.get("seconds") is None for f in v["finalised"])
            else sum(f["seconds"] for f in v["finalised"]),
        }
        if base is not None and name != BASELINE and tests:
            pairs = list(zip(tests, (f["test"] for f in base["finalised"]), strict=False))
            row["finalised_gain_points"] = 100 * statistics.mean(a - b for a, b in pairs)
            row["finalised_higher"] = f"{sum(a > b for a, b in pairs)} of {len(pairs)}"
        out[name] = row
    return out


def _print(summary: dict[str, dict[str, Any]]) -> None:
    print(f"{'variant':<11} {'largest':>8} {'inherited':>9} {'finalised':>9} {'gain':>6}  higher")
    for name, r in summary.items():
        fin = r["finalised_test_mean"]
        gain = r.get("finalised_gain_points")
        fin_s = "-" if fin is None else f"{fin:.4f}"
        gain_s = "" if gain is None else f"{gain:+.2f}"
        print(f"{name:<11} {r['largest_test_mean']:>8.4f} {r['inherited_test_mean']:>9.4f} "
              f"{fin_s:>9} {gain_s:>6}  {r.get('finalised_higher', '')}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
