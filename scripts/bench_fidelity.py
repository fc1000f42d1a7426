"""How honest the supernet's estimates are, and where its children are weak (issue 23).

Four measurements, each on a supernet trained with the default ``strategy=supernet``
recipe (seed 0, cached in ``--workdir``, so a rerun reuses it):

1. **Uniform fidelity** (``uniform``), mnist5k, no ``+hw`` budget: ``--candidates``
   candidates drawn uniformly over the whole space and compression (every width,
   depth, kernel, expansion, bit-width and sparsity the ``joint`` group allows), none
   left out. For each, its raw estimate (inherited-weight val accuracy) and its
   *finalised* test accuracy (fine-tuned from the inherited weights, exported and
   scored from the artifact in a fresh process, as a search's finalist is). Kendall's
   tau between them, with a bootstrap 95% interval (2,000 resamples); and the same for
   the search's predictor of finalised accuracy, fitted on the other candidates
   (leave one out). Cached per finalising recipe, so a new recipe finalises anew.
2. **Inherited accuracy by width** (``width``), mnist5k: for each ``width_mult`` of the
   space, the largest child at that width (deepest, widest kernel and expansion):
   its inherited val accuracy (BatchNorm re-estimated, as scoring does), against the
   same architecture trained alone for the supernet's number of steps (its epochs at
   the same batch size, the scratch recipe's optimiser and learning rate), seeds 0
   and 1.
3. **The colour task** (``folder``): the same for the largest network on a folder of
   ``scripts/make_imagefolder.py --n 6000 --size 32 --seed 0`` (coloured digits on
   noisy backgrounds), searched with ``dataset.image_size=32 dataset.n_val=1000
   dataset.n_test=1000 dataset.augment=false``: the gap in points, standalone minus
   inherited (mean of the two seeds).
4. **Levers** (``levers``, issue 24), mnist5k: the largest child's inherited val
   accuracy by width when BatchNorm is re-estimated on 500, 1,000, 2,000 or all
   training images, and on a supernet trained with ``strategy.lr=0.02`` (the default
   is the space's 0.05).
5. **Recipes** (``recipes``, issue 24), mnist5k: does the inherited start pay? Eight
   candidates of the front's part of the space, each finalised by the default recipe
   and three variants, and trained once as a scratch trial: test accuracy and seconds
   (``scripts/_fidelity_recipes.py``), on one training thread whatever ``--threads``
   says: a search's thread per run under ``bench_search.py --jobs 2``.

    python scripts/bench_fidelity.py                 # ~1 h on 2 cores
    python scripts/bench_fidelity.py --quick         # ~5 min: a check that it runs

Merges its keys into docs/bench/supernet.json (``kendall_tau``, ``kendall_tau_ci``,
``fidelity_set``, ``fidelity_set_size``, ``fidelity_uniform``, ``inherited_by_width``,
``largest_child_gap_folder``, ``standalone_val_folder``, ``kendall_tau_predicted``,
``inherited_by_width_levers``), each section with the commit,
date and command it was measured at, and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _bench import Bench, abs_path, write_json
from _fidelity_recipes import recipes

SCRIPTS = Path(__file__).resolve().parent
# Issue 24's candidate levers for the inherited-by-width curve, each measured on the
# seed-0 supernet: BatchNorm re-estimation on more images, and a lower supernet lr.
CALIB_SIZES = (500, 1000, 2000, None)  # None: every training image
LEVER_LRS = (0.02,)
FOLDER = ["dataset.image_size=32", "dataset.n_val=1000", "dataset.n_test=1000",
          "dataset.augment=false"]  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/bench/supernet.json"))
    p.add_argument("--quick", action="store_true", help="tiny budgets: a check that it runs")
    p.add_argument("--candidates", type=int, default=None, help="uniform set (default 30)")
    p.add_argument("--workdir", type=abs_path, default=Path("/tmp/bench_fidelity"))
    p.add_argument("--threads", type=int, default=2, help="train.threads")
    p.add_argument("--seeds", default="0,1", help="standalone trainings' seeds")
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="of uniform,width,folder,levers,recipes; empty: plot and print the record only",
    )
    p.add_argument("--plot", type=Path, default=None,
                   help="the by-width curve (default: <out>_by_width.png)")  # fmt: skip
    return p


def main() -> int:
    p = _parser()
    args = p.parse_args()
    sections = [s for s in args.sections.split(",") if s]
    if unknown := sorted(set(sections) - set(SECTIONS)):
        p.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    q = args.quick
    seeds = [int(s) for s in args.seeds.split(",") if s]
    extra = [f"train.threads={args.threads}"]
    if q:
        extra += ["strategy.epochs=2", "strategy.warmup_epochs=1", "strategy.finetune_epochs=1",
                  "dataset.n_train=600"]  # fmt: skip
    args.workdir.mkdir(parents=True, exist_ok=True)

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    report: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    # Merged into the record section by section: each carries the provenance it was measured with.
    measured = {**Bench(__file__, overrides=extra).provenance(), "quick": q}
    for name in SECTIONS:
        if name in sections:
            t0 = time.monotonic()
            report.update(_SECTIONS[name](args, extra, seeds, measured, t0))
            _save(args.out, report)
    _print(report)
    if report.get("inherited_by_width"):
        plot = args.plot or args.out.with_name(args.out.stem + "_by_width.png")
        _plot(report, plot)
        print(f"wrote {plot}", file=sys.stderr)
    return 0


Section = Callable[
    [argparse.Namespace, list[str], list[int], dict[str, Any], float], dict[str, Any]
]


def _uniform_section(
    args: argparse.Namespace, extra: list[str], seeds: list[int], measured: dict[str, Any],
    t0: float,
) -> dict[str, Any]:  # fmt: skip
    ctx, strategy = _supernet(args.workdir / "mnist5k", extra)
    found = _uniform(ctx, strategy, args.candidates or (5 if args.quick else 30))
    ctx.evaluator.close()
    return dict(
        fidelity_set="uniform", fidelity_set_size=len(found["candidates"]),
        kendall_tau=found["kendall_tau"], kendall_tau_ci=found["kendall_tau_ci"],
        kendall_tau_predicted=found["kendall_tau_predicted"],
        kendall_tau_predicted_ci=found["kendall_tau_predicted_ci"],
        fidelity_uniform={**found, "measured": _took(measured, t0)},
    )  # fmt: skip


def _width_section(
    args: argparse.Namespace, extra: list[str], seeds: list[int], measured: dict[str, Any],
    t0: float,
) -> dict[str, Any]:  # fmt: skip
    ctx, strategy = _supernet(args.workdir / "mnist5k", extra, evaluator=False)
    rows = _by_width(ctx, strategy, seeds, widths=None)
    return {"inherited_by_width": rows, "inherited_by_width_measured": _took(measured, t0)}


def _levers_section(
    args: argparse.Namespace, extra: list[str], seeds: list[int], measured: dict[str, Any],
    t0: float,
) -> dict[str, Any]:  # fmt: skip
    levers = _levers(args.workdir, extra, args.quick)
    return {"inherited_by_width_levers": {**levers, "measured": _took(measured, t0)}}


def _recipes_section(
    args: argparse.Namespace, extra: list[str], seeds: list[int], measured: dict[str, Any],
    t0: float,
) -> dict[str, Any]:  # fmt: skip
    one = [*extra, "train.threads=1"]  # a search's thread per run under --jobs 2
    ctx, strategy = _supernet(args.workdir / "mnist5k", one)
    found = recipes(ctx, strategy, 2 if args.quick else 8, args.workdir / "mnist5k")
    ctx.evaluator.close()
    return {"finalise_recipes": {**found, "measured": {**_took(measured, t0), "overrides": one}}}


def _folder_section(
    args: argparse.Namespace, extra: list[str], seeds: list[int], measured: dict[str, Any],
    t0: float,
) -> dict[str, Any]:  # fmt: skip
    root = _folder(args.workdir, quick=args.quick)
    folder = ["dataset=imagefolder", f"dataset.root={root}", *FOLDER]
    ctx, strategy = _supernet(args.workdir / "folder", [*folder, *extra], evaluator=False)
    (row,) = _by_width(ctx, strategy, seeds, widths=[max(ctx.space.cfg.width_mults)])
    return {
        "largest_child_gap_folder": 100 * (row["standalone_val"] - row["inherited_val"]),
        "standalone_val_folder": row["standalone_val"],
        "folder": {**row, "overrides": folder, "measured": _took(measured, t0)},
    }


# Run in this order (the record is saved after each), whatever order --sections gives.
_SECTIONS: dict[str, Section] = {
    "uniform": _uniform_section, "width": _width_section, "levers": _levers_section,
    "recipes": _recipes_section, "folder": _folder_section,
}  # fmt: skip
SECTIONS = tuple(_SECTIONS)


def _plot(r: dict[str, Any], path: Path) -> None:
    """Inherited against standalone val accuracy by width (the colour task's largest
    network as two more points, at its width)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r["inherited_by_width"]
    widths = [row["width_mult"] for row in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(widths, [row["standalone_val"] for row in rows], "o-", label="trained alone (mnist5k)")
    ax.plot(widths, [row["inherited_val"] for row in rows], "s--", label="inherited (mnist5k)")
    if "folder" in r:
        f = r["folder"]
        ax.plot(
            [f["width_mult"]],
            [f["standalone_val"]],
            "o",
            color="C2",
            label="trained alone (colour folder)",
        )
        ax.plot([f["width_mult"]], [f["inherited_val"]], "s", color="C3",
                label="inherited (colour folder)")  # fmt: skip
    ax.set_xlabel("width_mult (largest child at that width)")
    ax.set_ylabel("val accuracy")
    ax.set_title(f"Largest child by width, {rows[0]['epochs']} epochs of the supernet's steps")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _took(measured: dict[str, Any], t0: float) -> dict[str, Any]:
    return {**measured, "seconds": round(time.monotonic() - t0, 1)}


def _save(out: Path, report: dict[str, Any]) -> None:
    write_json(out, report)
    print(f"wrote {out}", file=sys.stderr)


def _supernet(work: Path, overrides: list[str], *, evaluator: bool = True) -> tuple[Any, Any]:
    """The context of a search of ``overrides`` (no +hw) and its trained supernet strategy."""
    from nas import compose
    from nas.runners import make_context

    cfg = compose(["strategy=supernet", "search.seed=0", *overrides])
    ctx = make_context(cfg, out_dir=work, study_name="bench", evaluator=evaluator)
    assert ctx.strategy is not None
    ctx.strategy.prepare(ctx)
    return ctx, ctx.strategy


def _uniform(ctx: Any, strategy: Any, n: int) -> dict[str, Any]:
    """``n`` candidates of a seeded uniform draw (all feasible: no budgets), estimated
    and finalised; the finalised figures are cached in the work folder per candidate."""
    from bench_supernet import _tau_ci

    from nas.hw import RandomSuggest
    from nas.pipeline import propose

    # Keyed by the finalists' recipe: a finalised figure of another recipe is not reused.
    c = strategy.cfg
    recipe = [c.finetune_epochs, c.get("finetune_patience"), c.finetune_lr, c.bn_calib_images]
    tag = hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:8]
    cache_file = ctx.artifact_dir.parent.parent / f"uniform_{tag}.json"
    cache: dict[str, Any] = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    suggest = RandomSuggest(np.random.default_rng(0))
    rows: list[dict[str, Any]] = []
    for number in range(n):
        p = propose(suggest, ctx, number=number)
        assert p.feasible, p.constraints  # no +hw: every candidate is
        row = cache.get(str(number))
        if row is None:
            estimate = strategy.score(p, ctx).metrics["val_accuracy"]
            p.phase = "final"
            final = strategy.finalize(p, ctx)
            row = {
                "number": number, "arch": p.arch, "compression": p.compression,
                "estimate": estimate, "final_val": final.metrics["val_accuracy"],
                "final_test": final.test_accuracy, "size_bytes": final.metrics["size_bytes"],
            }  # fmt: skip
            cache[str(number)] = row
            cache_file.write_text(json.dumps(cache))
        rows.append(row)
        print(f"candidate {number + 1}/{n}: estimate {row['estimate']:.3f}, finalised test "
              f"{row['final_test']:.3f}", file=sys.stderr)  # fmt: skip
    truth = [r["final_test"] for r in rows]
    tau, ci = _tau_ci([r["estimate"] for r in rows], truth)
    # The ceiling noise sets: how well the finalised network's own val accuracy ranks
    # its test accuracy (the same weights; 500 val images against the test images).
    tau_v, ci_v = _tau_ci([r["final_val"] for r in rows], truth)
    predicted = _loo_predicted(rows)
    tau_p, ci_p = _tau_ci(predicted, truth)
    for r, p in zip(rows, predicted, strict=True):
        r["predicted"] = p
    return {"kendall_tau": tau, "kendall_tau_ci": ci, "candidates": rows,
            "kendall_tau_predicted": tau_p, "kendall_tau_predicted_ci": ci_p,
            "kendall_tau_final_val": tau_v, "kendall_tau_final_val_ci": ci_v,
            "estimate": "inherited val accuracy (no predictor)",
            "predicted": "the search's predictor of finalised val accuracy, fitted on the "
                         "other candidates (leave one out)",
            "finalise": {"finetune_epochs": recipe[0], "finetune_patience": recipe[1],
                         "finetune_lr": recipe[2]},
            "truth": "finalised test accuracy"}  # fmt: skip


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A candidate's architecture and compression as scalar parameters, as the search's
    Optuna trials hold them (lists element-wise)."""
    out: dict[str, Any] = {}
    for k, v in {**row["arch"], **row["compression"]}.items():
        if isinstance(v, list):
            out.update({f"{k}_{i}": x for i, x in enumerate(v)})
        else:
            out[k] = v
    return out


def _loo_predicted(rows: list[dict[str, Any]]) -> list[float]:
    """Each candidate's finalised val accuracy as the search's predictor
    (nas.pipeline._supernet_predict) predicts it from all the others; features from the
    encoding, the estimate and the artifact's size (a search has the estimated size)."""
    from nas.pipeline import CandidateEncoder, FinalPredictor

    params = [_flat(r) for r in rows]
    inh = np.array([r["estimate"] for r in rows])
    size = np.array([r["size_bytes"] for r in rows], dtype=float)
    final = np.array([r["final_val"] for r in rows])
    x = CandidateEncoder(params).raw(params, inh, size)
    out = []
    for i in range(len(rows)):
        rest = np.arange(len(rows)) != i
        fitted = FinalPredictor(x).fit(x[rest], final[rest] - inh[rest])
        gain, _ = fitted.predict(x[i : i + 1])
        out.append(float(inh[i] + gain[0]))
    return out


def _by_width(
    ctx: Any, strategy: Any, seeds: list[int], widths: list[float] | None
) -> list[dict[str, Any]]:
    """Per width: the largest child's inherited val accuracy against the same
    architecture trained alone for the supernet's steps (one row per width)."""
    from nas.pipeline import Recipe, accuracy, recalibrate_bn, train_compressed

    supernet = strategy.load(ctx)
    recipe = strategy.recipe(ctx)
    calib = ctx.splits.train.head(int(strategy.cfg.bn_calib_images))
    alone = Recipe.from_config(
        ctx.train_cfg, None, default_lr=ctx.space.default_lr, epochs=recipe.epochs
    )
    rows = []
    for width in widths or sorted(ctx.space.cfg.width_mults):
        arch = {**supernet.largest, "width_mult": float(width)}
        child = supernet.extract(arch)
        recalibrate_bn(child, calib)
        inherited = accuracy(child, ctx.splits.val)
        standalone = []
        for seed in seeds:
            t0 = time.monotonic()
            trained = train_compressed(
                ctx.space.build(arch, ctx.splits.spec), ctx.splits, alone, compression=[],
                seed=seed,
            )  # fmt: skip
            standalone.append(accuracy(trained.model, ctx.splits.val))
            took = time.monotonic() - t0
            print(f"width {width}: inherited {inherited:.4f}, standalone seed {seed} "
                  f"{standalone[-1]:.4f} ({took:.0f} s)", file=sys.stderr)  # fmt: skip
        rows.append({
            "width_mult": float(width), "inherited_val": inherited,
            "standalone_val": statistics.mean(standalone), "standalone_vals": standalone,
            "epochs": recipe.epochs, "params": sum(p.numel() for p in child.parameters()),
        })  # fmt: skip
    return rows


def _levers(work: Path, extra: list[str], quick: bool) -> dict[str, Any]:
    """The largest child's inherited val accuracy by width, under each lever: BatchNorm
    re-estimated on more images (the default supernet), and each lower supernet lr (a
    supernet of its own, cached in ``work``)."""
    from nas.pipeline import accuracy, recalibrate_bn

    def by_width(ctx: Any, strategy: Any, calib: int | None) -> list[float]:
        supernet = strategy.load(ctx)
        images = ctx.splits.train.head(calib or len(ctx.splits.train))
        row = []
        for width in sorted(ctx.space.cfg.width_mults):
            child = supernet.extract({**supernet.largest, "width_mult": float(width)})
            recalibrate_bn(child, images)
            row.append(accuracy(child, ctx.splits.val))
        return row

    ctx, strategy = _supernet(work / "mnist5k", extra, evaluator=False)
    out: dict[str, Any] = {
        "widths": sorted(float(w) for w in ctx.space.cfg.width_mults),
        "default_lr": float(strategy.recipe(ctx).lr),
        "bn_calib_images": {
            str(n or len(ctx.splits.train)): by_width(ctx, strategy, n)
            for n in (CALIB_SIZES[:2] if quick else CALIB_SIZES)
        },
        "lr": {},
    }
    for lr in LEVER_LRS:
        ctx, strategy = _supernet(work / f"mnist5k-lr{lr:g}", [*extra, f"strategy.lr={lr}"],
                                  evaluator=False)  # fmt: skip
        out["lr"][f"{lr:g}"] = by_width(ctx, strategy, None if quick else 500)
        print(f"lr {lr:g}: {out['lr'][f'{lr:g}']}", file=sys.stderr)
    return out


def _folder(work: Path, *, quick: bool) -> Path:
    n = 2500 if quick else 6000
    out = work / f"colour{n}"
    subprocess.run(
        [sys.executable, str(SCRIPTS / "make_imagefolder.py"), "--out", str(out), "--n", str(n),
         "--size", "32", "--seed", "0", "--no-progress"],
        check=True,
    )  # fmt: skip
    return out


def _print(r: dict[str, Any]) -> None:
    if "kendall_tau" in r and r.get("fidelity_set") == "uniform":
        lo, hi = r["kendall_tau_ci"]
        print(f"uniform fidelity: tau {r['kendall_tau']:.2f} [{lo:.2f}, {hi:.2f}] on "
              f"{r['fidelity_set_size']} candidates (estimate vs finalised test)")  # fmt: skip
    if "kendall_tau_predicted" in r:
        lo, hi = r["kendall_tau_predicted_ci"]
        print(f"predicted (leave one out): tau {r['kendall_tau_predicted']:.2f} [{lo:.2f}, "
              f"{hi:.2f}]")  # fmt: skip
    if "inherited_by_width_levers" in r:
        lev = r["inherited_by_width_levers"]
        print(f"\nlargest child inherited val by width {lev['widths']}:")
        for n, row in lev["bn_calib_images"].items():
            print(f"  BatchNorm on {n:>5} images: " + " ".join(f"{v:.3f}" for v in row))
        for lr, row in lev["lr"].items():
            print(f"  supernet lr {lr:>9}: " + " ".join(f"{v:.3f}" for v in row))
    for name, v in r.get("finalise_recipes", {}).get("summary", {}).items():
        print(f"recipe {name:<26} test {v['test_accuracy_mean']:.4f}, {v['seconds']:.0f} s")
    if r.get("inherited_by_width"):
        print(f"\n{'width_mult':>10} {'inherited':>10} {'standalone':>10} {'gap (pts)':>10}")
        for row in r["inherited_by_width"]:
            gap = 100 * (row["standalone_val"] - row["inherited_val"])
            print(f"{row['width_mult']:>10} {row['inherited_val']:>10.4f} "
                  f"{row['standalone_val']:>10.4f} {gap:>10.1f}")  # fmt: skip
    if "largest_child_gap_folder" in r:
        print(f"\ncolour folder, largest network: standalone {r['standalone_val_folder']:.4f}, "
              f"gap {r['largest_child_gap_folder']:.1f} points")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
