"""Does an inherited start pay? Finalising recipes against training from scratch (issue 24).

A section of ``scripts/bench_fidelity.py`` (``recipes``). On the trained seed-0
supernet, ``n`` candidates of a seeded uniform draw over the part of the space a front
is made of (more than 2 bits, at most 0.7 sparse), each finalised by every recipe and
trained once from scratch with a scratch trial's recipe (``train.*``, the candidate's
compression, exported and scored from its artifact exactly as ``strategy=scratch``
does). Per candidate and recipe: val and test accuracy of the artifact, its bytes, and
the seconds it took (one thread). If finalising from inherited weights costs what a
scratch trial costs and gains nothing over it, the supernet's head start is not what a
search buys with its training; its ranking of thousands is.

Each row is kept in the work folder as it lands, so a rerun resumes.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RECIPES", "recipes"]

# A finalising recipe: the strategy.* values it sets (None: the configured default).
RECIPES: dict[str, dict[str, Any] | None] = {
    "default": None,
    "finetune_lr 0.02": {"finetune_lr": 0.02},
    "finetune_patience 1": {"finetune_patience": 1},
    "finetune_epochs 20": {"finetune_epochs": 20},
}
SCRATCH = "scratch (a scratch trial)"
DRAW_SEED = 1


def _candidates(ctx: Any, n: int) -> list[Any]:
    from nas.hw import RandomSuggest
    from nas.pipeline import propose

    suggest = RandomSuggest(np.random.default_rng(DRAW_SEED))
    out: list[Any] = []
    number = 0
    while len(out) < n:
        p = propose(suggest, ctx, number=number)
        number += 1
        c = p.compression
        if p.feasible and c.get("bits", 32) > 2 and c.get("sparsity", 0.0) <= 0.7:
            out.append(p)
    return out


def _row(p: Any, result: Any, seconds: float) -> dict[str, Any]:
    m = result.metrics
    return {
        "val_accuracy": m["val_accuracy"],
        "test_accuracy": result.test_accuracy,
        "size_bytes": m["size_bytes"],
        "seconds": seconds,
        "epochs": m.get("finetune_epochs"),
    }


def _measure(ctx: Any, strategy: Any, p: Any, recipe: str) -> dict[str, Any]:
    from nas.pipeline import TrainFailed, TrialStopped, train_proposal

    default = {k: strategy.cfg[k] for k in ("finetune_lr", "finetune_patience", "finetune_epochs")}
    start = time.monotonic()
    try:
        if recipe == SCRATCH:
            result = train_proposal(p, ctx)
        else:
            for k, v in {**default, **(RECIPES[recipe] or {})}.items():
                strategy.cfg[k] = v
            p.phase = "final"
            result = strategy.finalize(p, ctx)
    except (TrialStopped, TrainFailed) as e:
        return {"failed": f"{type(e).__name__}: {e}", "seconds": time.monotonic() - start}
    finally:
        for k, v in default.items():
            strategy.cfg[k] = v
        p.phase = "score"
    return _row(p, result, time.monotonic() - start)


def recipes(ctx: Any, strategy: Any, n: int, work: Path) -> dict[str, Any]:
    """Every recipe on ``n`` candidates; a summary per recipe (means over the candidates
    every recipe finished)."""
    # Keyed by the defaults and the scratch recipe: rows of other ones are not reused.
    keyed = [strategy.cfg[k] for k in ("finetune_lr", "finetune_patience", "finetune_epochs",
                                       "bn_calib_images")] + [ctx.train_cfg.epochs]  # fmt: skip
    tag = hashlib.sha256(json.dumps(keyed).encode()).hexdigest()[:8]
    cache_file = work / f"recipes_{tag}.json"
    cache: dict[str, Any] = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    names = [*RECIPES, SCRATCH]
    rows = []
    for p in _candidates(ctx, n):
        key = str(p.number)
        row = cache.setdefault(key, {"number": p.number, "arch": p.arch,
                                     "compression": p.compression, "recipes": {}})  # fmt: skip
        if "estimate" not in row:
            row["estimate"] = strategy.score(p, ctx).metrics["val_accuracy"]
        for name in names:
            if name not in row["recipes"]:
                row["recipes"][name] = _measure(ctx, strategy, p, name)
                cache_file.write_text(json.dumps(cache))
            r = row["recipes"][name]
            print(f"candidate {p.number} {name}: test {r.get('test_accuracy', 'failed')}, "
                  f"{r['seconds']:.0f} s", file=sys.stderr)  # fmt: skip
        rows.append(row)
    done = [r for r in rows if all("test_accuracy" in r["recipes"][k] for k in names)]
    summary: dict[str, dict[str, float]] = {}
    for name in names if done else []:
        got = [r["recipes"][name] for r in done]
        summary[name] = {
            "test_accuracy_mean": statistics.mean(g["test_accuracy"] for g in got),
            "val_accuracy_mean": statistics.mean(g["val_accuracy"] for g in got),
            "seconds": sum(g["seconds"] for g in got),
        }
    return {
        "candidates": rows,
        "summary": summary,
        "compared_on": len(done),
        "scratch": SCRATCH,
        "draw": f"uniform, seed {DRAW_SEED}, bits > 2 and sparsity <= 0.7",
        "defaults": {
            k: strategy.cfg[k] for k in ("finetune_lr", "finetune_patience", "finetune_epochs")
        },  # fmt: skip
    }
