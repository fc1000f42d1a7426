"""## Training on a GPU against 2 CPU cores (gpu.json, gpu_cpu_side.json, cpu_default_run.json)."""

from __future__ import annotations

from typing import Any

from ._format import _int, _met, _pct, _sig, _span, _table
from ._records import Bench
from ._targets import TARGETS

NOT_MEASURED = "not measured (no GPU lent)"
_PRECISIONS = ("fp32", "bf16", "fp16")


def section(b: Bench) -> list[str]:
    """The GPU's training throughput and trials per minute over the CPU's; null: not run."""
    g = b.load("gpu.json")
    side = b.load("gpu_cpu_side.json")
    run = b.load("cpu_default_run.json")
    return [
        "## Training on a GPU against 2 CPU cores",
        "",
        "    .venv/bin/python scripts/bench_gpu.py --device cpu --threads 2 --out"
        " docs/bench/gpu_cpu_side.json",
        "    bash scripts/gpu_check.sh    # on a GPU machine: its gpu_side.json and gpu_run/",
        f"    .venv/bin/{g['command']}",
        "",
        f"Samples per second of one training step (batch {side['batch_size']}, synthetic"
        f" {'x'.join(map(str, side['input']))} inputs; median of {side['repeats']} repeats of"
        f" {side['steps']} steps, range in brackets) of the largest and a median `mbconv`"
        " candidate and of one supernet sandwich step, on"
        f" {side['cpus']} CPU cores ({side['threads']} threads, fp32) and on a GPU at each"
        f" precision, as the GPU's speed-up over the CPU; and the default search's trials"
        f" per minute (`{run['command']}`: {run['n_trials']} trials in"
        f" {run['wall_seconds']:.1f} s on the CPU, {run['machine']}). The record's headline,"
        " `train_samples_per_s_ratio` (the median candidate, GPU bf16 as"
        " `train.precision=auto` picks it, over CPU fp32), is"
        f" {_ratio(g['train_samples_per_s_ratio'], NOT_MEASURED)}; `trials_per_minute_ratio`"
        f" is {_ratio(g['trials_per_minute_ratio'], NOT_MEASURED)}.",
        "",
        *_table(
            [
                "workload",
                "2 CPU cores, fp32",
                *(f"GPU {p}, over CPU" for p in _PRECISIONS),
                "target",
            ],  # fmt: skip
            [*_throughput_rows(g, side), _trials_row(g)],
        ),
        "",
        *_breakdown(g),
        *(["", g["note"][0].upper() + g["note"][1:] + "."] if g.get("note") else []),
    ]


def _throughput_rows(g: dict[str, Any], side: dict[str, Any]) -> list[list[str]]:
    t = TARGETS["gpu_train_speedup"]
    rows = []
    for w, by_precision in g["train_samples_per_s_ratio_by_workload"].items():
        r = side["results"][w]["fp32"]
        cpu = f"{_int(r['samples_per_s'])} [{_span(r['repeats_samples_per_s'], _int)}] samples/s"
        ratios = [by_precision.get(p) for p in _PRECISIONS]
        judged = w in ("largest", "supernet")  # docs/cluster.md#gpus sets no median target
        measured = [x for x in ratios if x is not None]
        if not judged:
            target = "-"
        elif not measured:
            target = f"at least {t:g}x: {NOT_MEASURED}"
        else:
            target = f"at least {t:g}x: {_met(max(measured) >= t)}"
        name = f"{w} ({_int(side['params'][w])} params)"
        rows.append([name, cpu, *(_ratio(x) for x in ratios), target])
    return rows


def _trials_row(g: dict[str, Any]) -> list[str]:
    t = TARGETS["gpu_trials_per_minute_speedup"]
    tpm, ratio = g["trials_per_minute"], g["trials_per_minute_ratio"]
    gpu = _ratio(ratio) if ratio is None else f"{_ratio(ratio)} ({tpm['gpu']:.1f} trials/min)"
    verdict = NOT_MEASURED if ratio is None else _met(ratio >= t)
    return ["default search, trials per minute", f"{tpm['cpu']:.1f}", gpu, "", "",
            f"at least {t:g}x: {verdict}"]  # fmt: skip


def _breakdown(g: dict[str, Any]) -> list[str]:
    """Where a trial's time goes on each side: what a faster training step can speed up."""
    out = []
    sides = g["trial_breakdown"]
    for name, side in (("the CPU", sides["cpu"]), ("a GPU", sides["gpu"])):
        if side is None:
            out.append(f"A trial's time on {name}: {NOT_MEASURED}.")
            continue
        f, mean = side["fractions"], side["mean_seconds"]
        out.append(
            f"A trial's time on {name} (mean {_sig(mean['trial'])} s over"
            f" {side['trained_trials']} trained trials): training {_pct(f['training'])},"
            f" feasibility {_pct(f['feasibility'])}, export and evaluation"
            f" {_pct(f['export_evaluate'])}, the driver's tracking {_pct(f['driver'], 1)}."
        )
    return [" ".join(out)]


def _ratio(x: float | None, missing: str = "not measured") -> str:
    return missing if x is None else f"**{x:.1f}x**"
