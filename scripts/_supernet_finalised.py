"""What each schedule's supernet gives once candidates are finalised: a section of
``scripts/bench_supernet.py`` (``from _supernet_finalised import finalised``)."""

from __future__ import annotations

import statistics
import sys
from typing import Any

import numpy as np

__all__ = ["finalised"]


def finalised(ctx: Any, strategies: dict[str, Any], n: int) -> dict[str, Any]:
    """What each schedule's supernet gives once a candidate is finalised (fine-tuned,
    exported, scored from its artifact): the figure a search reports. The first ``n``
    feasible candidates of a seeded uniform draw, the same for every schedule."""
    from nas.hw import RandomSuggest
    from nas.pipeline import propose

    suggest = RandomSuggest(np.random.default_rng(0))
    rows: list[dict[str, Any]] = []
    number = 0
    while len(rows) < n:
        p = propose(suggest, ctx, number=number)
        number += 1
        if not p.feasible:
            continue
        row: dict[str, Any] = {"number": p.number, "compression": p.compression}
        for name, strategy in strategies.items():
            row[name] = _finalise_one(ctx, strategy, p)
        rows.append(row)
        said = " ".join(f"{k} {row[k].get('val_accuracy', 'failed')}" for k in strategies)
        print(f"finalised {len(rows)}: {said}", file=sys.stderr)
    means: dict[str, float | None] = {}
    for name in strategies:
        vals = [r[name]["val_accuracy"] for r in rows if "val_accuracy" in r[name]]
        means[name] = statistics.mean(vals) if vals else None  # None: every one failed
    return {"candidates": rows, "val_accuracy_mean": means}


def _finalise_one(ctx: Any, strategy: Any, p: Any) -> dict[str, Any]:
    """One candidate estimated and finalised; one that overruns search.trial_timeout_s
    (or fails to train) is a failed row, as a search records it, not the end of the bench."""
    from nas.pipeline import TrainFailed, TrialStopped

    estimate = strategy.score(p, ctx).metrics["val_accuracy"]
    p.phase = "final"
    try:
        final = strategy.finalize(p, ctx)
    except (TrialStopped, TrainFailed) as e:
        return {"estimated_val_accuracy": estimate, "failed": f"{type(e).__name__}: {e}"}
    finally:
        p.phase = "score"
    return {
        "estimated_val_accuracy": estimate,
        "val_accuracy": final.metrics["val_accuracy"],
        "test_accuracy": final.test_accuracy,
        "size_bytes": final.metrics["size_bytes"],
    }
