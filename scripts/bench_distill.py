"""Does distillation help? The same student, with and without a teacher, equal epochs.

The teacher is what ``nas.search`` uses: the search space's largest model trained
with the search's recipe and budget (``nas.pipeline.LargestTeacher``, cached on disk).
Each student is trained twice per seed, as a search trial trains an uncompressed
candidate (``nas.pipeline.train_compressed``), with identical data order and
initialization: once with cross-entropy, once with ``alpha * KL * T^2 + (1 - alpha) * CE``
(``nas.pipeline.distiller``).

T and alpha are chosen on **val**, as the search would choose them: a grid of
(T, alpha) is trained on selection seeds (their own initialization and data order,
not among the reported seeds), and the pair with the best mean val accuracy is then
trained on every reported seed. ``--temperature``/``--alpha`` fix them instead. Test
accuracy is never used to choose. Prints a table, writes JSON::

    python scripts/bench_distill.py [--space mbconv] [--student JSON] [--seeds 0 1 2]
                                    [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _bench import Bench
from _common import train_uncompressed

from nas import compose
from nas.pipeline import (
    LargestTeacher,
    Recipe,
    accuracy,
    distiller,
    load_splits,
    make_teacher,
    space_from_cfg,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--space", default="mbconv")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(14)))
    p.add_argument("--temperature", type=float, default=None, help="fix T (skip the grid)")
    p.add_argument("--alpha", type=float, default=None, help="fix alpha (skip the grid)")
    # the search's ranges (conf/compress/all.yaml: T 2-8, alpha 0.3-0.9)
    p.add_argument("--grid-t", type=float, nargs="+", default=[2.0, 4.0, 8.0])
    p.add_argument("--grid-alpha", type=float, nargs="+", default=[0.5, 0.7, 0.9])
    p.add_argument("--select-seeds", type=int, nargs="+", default=[100, 101])
    p.add_argument(
        "--student", default=None,
        help='the student architecture as JSON (e.g. \'{"width_mult": 0.5, ...}\'); '
        "default: the space's smallest",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=None, help="student epochs; default: train.epochs")
    p.add_argument(
        "--teacher-epochs", type=int, default=None,
        help="the teacher's own budget (compress.teacher_epochs); default: as a search, "
        "3x the student's",
    )  # fmt: skip
    p.add_argument("--cache", type=Path, default=Path("outputs/teachers"))
    p.add_argument("--out", type=Path, default=None)
    return p


def main() -> int:
    p = _parser()
    args = p.parse_args()
    bench = Bench(__file__)
    if (args.temperature is None) != (args.alpha is None):
        p.error("--temperature and --alpha go together (or neither: choose them on val)")

    # The teacher is built as a distilling search builds it (compress=all).
    overrides = [f"dataset={args.dataset}", f"search_space={args.space}", "compress=all"]
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    if args.teacher_epochs:
        overrides.append(f"compress.teacher_epochs={args.teacher_epochs}")
    cfg = compose(overrides)
    torch.set_num_threads(int(cfg.train.threads))
    splits = load_splits(cfg.dataset, seed=int(cfg.search.seed))
    space, space_cfg = space_from_cfg(cfg.search_space)
    student_arch = space.extremes()[0] if args.student is None else _arch(p, args.student)
    try:
        space.build(student_arch, splits.spec)
    except (KeyError, TypeError, ValueError) as e:
        p.error(f"--student {args.student}: {e}")
    source = make_teacher(cfg, space=space, space_cfg=space_cfg, splits=splits,
                          cache_dir=args.cache.resolve())  # fmt: skip
    assert isinstance(source, LargestTeacher)  # compress=all: teacher=largest
    teacher = source.get()
    teacher_test = accuracy(teacher, splits.x_test, splits.y_test)
    recipe = Recipe.from_config(cfg.train, cfg.compress, default_lr=space.default_lr)
    epochs = recipe.epochs

    def run(seed: int, temperature: float | None, alpha: float) -> tuple[float, float]:
        """(val, test) accuracy of the student trained with this seed (T None: plain)."""
        loss_fn = (
            None if temperature is None
            else distiller(teacher, temperature=temperature, alpha=alpha)
        )  # fmt: skip
        model = train_uncompressed(space, student_arch, splits, recipe, seed=seed,
                                   loss_fn=loss_fn)  # fmt: skip
        return (accuracy(model, splits.x_val, splits.y_val),
                accuracy(model, splits.x_test, splits.y_test))  # fmt: skip

    start = time.monotonic()
    temperature, alpha, grid = _choose(run, args)
    vals, results = _paired(run, args.seeds, temperature, alpha)
    gains = [d - p for p, d in zip(results["plain"], results["distilled"], strict=True)]
    out: dict[str, Any] = {
        "dataset": args.dataset, "space": args.space, "epochs": epochs, "seeds": args.seeds,
        "temperature": temperature, "alpha": alpha,
        "selection": {"seeds": args.select_seeds, "metric": "val_accuracy",
                      "grid": grid} if grid else "fixed by --temperature/--alpha",
        "val": {"plain": _summary(vals["plain"]), "distilled": _summary(vals["distilled"])},
        "teacher": {"arch": source.arch, "test_accuracy": teacher_test, "epochs": source.epochs,
                    "params": sum(p.numel() for p in teacher.parameters())},
        "student": {"arch": student_arch,
                    "params": sum(p.numel() for p in space.build(student_arch,
                                                                 splits.spec).parameters())},
        "plain": _summary(results["plain"]), "distilled": _summary(results["distilled"]),
        "gain_per_seed": gains, "wins": sum(g > 0 for g in gains),
        "gain_mean": statistics.mean(gains),
        "gain_std": statistics.stdev(gains) if len(gains) > 1 else 0.0,
        "paired_t_p_one_sided": _paired_t_p(gains),
        "seconds": time.monotonic() - start,
    }  # fmt: skip
    _print_report(out)
    bench.write(out, args.out)
    return 0


def _paired(
    run: Callable[[int, float | None, float], tuple[float, float]],
    seeds: list[int],
    temperature: float,
    alpha: float,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(val, test) accuracies per mode, plain and distilled, trained with the same seeds."""
    vals: dict[str, list[float]] = {"plain": [], "distilled": []}
    tests: dict[str, list[float]] = {"plain": [], "distilled": []}
    for seed in seeds:
        for mode in ("plain", "distilled"):
            val, test = run(seed, temperature if mode == "distilled" else None, alpha)
            tests[mode].append(test)
            vals[mode].append(val)
            print(f"seed {seed} {mode:<9} val {val:.4f} test {test:.4f}", file=sys.stderr)
    return vals, tests


def _choose(
    run: Callable[[int, float | None, float], tuple[float, float]], args: argparse.Namespace
) -> tuple[float, float, list[dict[str, float]]]:
    """(T, alpha, the grid's mean val accuracies): fixed by the flags, or chosen on val."""
    if args.temperature is not None and args.alpha is not None:
        return args.temperature, args.alpha, []
    # One val set of ~500 images moves by a point between seeds, so the choice
    # averages over several selection seeds.
    grid: list[dict[str, float]] = []
    plain_val = statistics.mean(run(s, None, 0.0)[0] for s in args.select_seeds)
    for gt in args.grid_t:
        for ga in args.grid_alpha:
            val = statistics.mean(run(s, gt, ga)[0] for s in args.select_seeds)
            grid.append({"temperature": gt, "alpha": ga, "val_accuracy": val})
            print(f"select seeds {args.select_seeds}: T={gt:g} alpha={ga:g} mean val "
                  f"{val:.4f} (plain {plain_val:.4f})", file=sys.stderr)  # fmt: skip
    best = max(grid, key=lambda g: g["val_accuracy"])
    grid.insert(0, {"temperature": 0.0, "alpha": 0.0, "val_accuracy": plain_val})
    return best["temperature"], best["alpha"], grid


def _print_report(out: dict[str, Any]) -> None:
    print(f"teacher ({out['teacher']['params']:,} params): "
          f"test {out['teacher']['test_accuracy']:.4f}; "
          f"T={out['temperature']:g}, alpha={out['alpha']:g}")  # fmt: skip
    print(f"{'student':<10} {'test_mean':>9} {'std':>7}   per seed")
    for mode in ("plain", "distilled"):
        s = out[mode]
        print(f"{mode:<10} {s['mean']:>9.4f} {s['std']:>7.4f}   "
              + " ".join(f"{a:.4f}" for a in s["values"]))  # fmt: skip
    p_value = out["paired_t_p_one_sided"]
    shown_p = f" (paired t, one-sided p = {p_value:.3f})" if p_value is not None else ""
    print(f"distilled beats plain on {out['wins']} of {len(out['gain_per_seed'])} seeds; "
          f"mean gain {out['gain_mean'] * 100:+.2f} +- {out['gain_std'] * 100:.2f} points"
          + shown_p)  # fmt: skip


def _arch(p: argparse.ArgumentParser, text: str) -> dict[str, Any]:
    try:
        arch = json.loads(text)
    except json.JSONDecodeError as e:
        p.error(f"--student {text!r} is not JSON: {e}")
    if not isinstance(arch, dict):
        p.error(f"--student {text!r} must be a JSON object (an architecture of the space)")
    return arch


def _paired_t_p(gains: list[float]) -> float | None:
    """One-sided p-value of a paired t-test that distillation's mean gain is > 0."""
    if len(gains) < 2 or statistics.stdev(gains) == 0:
        return None
    from scipy import stats

    return float(stats.ttest_1samp(gains, 0.0, alternative="greater").pvalue)


def _summary(xs: list[float]) -> dict[str, Any]:
    return {"mean": statistics.mean(xs), "std": statistics.pstdev(xs), "values": xs}


if __name__ == "__main__":
    sys.exit(main())
