"""## Runner overhead and parallel speed-up: local and Ray runners (runner.json)."""

from __future__ import annotations

from typing import Any

from ._format import (
    _met,
    _pct,
    _span,
    _table,
)
from ._records import Bench
from ._targets import TARGETS


def section(b: Bench) -> list[str]:
    d = b.load("runner.json")
    setups = d["setups"]

    def label(name: str) -> str:
        if name.startswith("ray_") and "x" in name:
            slots, threads = name[len("ray_") :].split("x")
            return f"ray, {slots} x {threads} thread{'s' if threads != '1' else ''}"
        return name

    rows = [
        [
            label(k),
            _pct(v["overhead_fraction"], 1),
            f"{v['trials_per_minute']:.2f}",
            f"{v['mean_trial_seconds']:.1f}",
            f"{v['startup_s']:.0f} s",
        ]
        for k, v in setups.items()
    ]
    ray = [v["overhead_fraction"] for k, v in setups.items() if k.startswith("ray")]
    t_local, t_ray = TARGETS["local_overhead"], TARGETS["ray_overhead"]
    t_par, t_lim = TARGETS["parallel_speedup"], TARGETS["parallel_speedup_limit"]
    alone, beside = setups["ray_1x1"]["mean_trial_seconds"], setups["ray_2x1"]["mean_trial_seconds"]
    slower = (
        "so trials are not slower side by side here"
        if beside <= alone
        else f"{_pct(beside / alone - 1)} slower side by side"
    )
    machine = d["machine"]
    return [
        "## Runner overhead and parallel speed-up",
        "",
        "    .venv/bin/python scripts/bench_runner.py --out docs/bench/runner.json [--quick]",
        "",
        f"The default search's trials ({d['n_trials']} per setup, the same seeded candidates in"
        " every setup) under `runner=local` and under `runner=ray` with one and two concurrent"
        " single-threaded trials and one trial with two threads. Each trial's wall time in the"
        " driver (ask to told, from MLflow) is set against its own train, export and"
        " evaluation time (`trial_seconds`, measured where it ran), over the steady state:"
        " from the end of each slot's first trial (worker start-up is paid once) to the last"
        f" trial that ended while every slot was busy. {machine['cpus']} CPUs, load average"
        f" {machine['loadavg_before'][0]:.2f} before and {machine['loadavg_after'][0]:.2f}"
        " after:",
        "",
        *_table(
            [
                "setup",
                "overhead per trial",
                "trials/min (steady)",
                "mean trial_seconds",
                "start-up",
            ],
            rows,
        ),
        "",
        f"- Overhead: {_pct(d['overhead_fraction'], 1)} locally and"
        f" {_span(ray, lambda x: _pct(x, 1))} on Ray (targets {_pct(t_local)} and"
        f" {_pct(t_ray)}, {_met(d['overhead_fraction'] <= t_local and max(ray) <= t_ray)}).",
        f"- `parallel_speedup` (two concurrent single-threaded trials against one):"
        f" **{d['parallel_speedup']:.2f}x** (target {t_par}x, limit {t_lim:g}x,"
        f" {_met(d['parallel_speedup'] >= t_par)}); `parallel_speedup_vs_2threads`:"
        f" {d['parallel_speedup_vs_2threads']:.2f}x (two single-threaded trials side by side"
        f" against one trial on both cores: {_two_threads(d['setups'])}).",
        f"- The mean trial took {alone:.1f} s alone and {beside:.1f} s beside another, on the"
        f" same candidates, {slower}. This VM's speed drifts between setups minutes apart,"
        " which is the uncertainty of these ratios.",
    ]


def _two_threads(setups: dict[str, Any]) -> str:
    """What a second intra-op thread buys one trial, from the 1 x 2 and 1 x 1 setups."""
    one, two = setups["ray_1x1"], setups["ray_1x2"]
    gain = two["trials_per_minute"] / one["trials_per_minute"] - 1
    if gain >= 0.7:  # near 2x: the second thread is about as good as a second trial
        return f"torch's intra-op threading uses the second core well, {gain:+.0%} trials/min"
    return (
        f"a second intra-op thread makes one trial only {gain:+.0%} trials/min"
        f" ({two['mean_trial_seconds']:.1f} s a trial against {one['mean_trial_seconds']:.1f} s),"
        " so a second trial uses the core better"
    )
