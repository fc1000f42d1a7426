"""The report of ``scripts/bench_search.py``: its feasibility study, table and plot.

Imported as ``from _search_report import ...`` (``scripts/`` is first on ``sys.path``).
"""

from __future__ import annotations

import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _search_runs import LENET5_BYTES, REF_ACCURACY, compose


class Blind:
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
                p = propose(trial if visible else Blind(trial), ctx, number=trial.number)
                size = p.metrics["size_bytes_estimate"]
                acc = synthetic_accuracy(p.metrics["params"], p.compression, rng)
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


def synthetic_accuracy(params: float, comp: dict[str, Any], rng: random.Random) -> float:
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
