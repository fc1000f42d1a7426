"""Latency models."""

from __future__ import annotations

import statistics
from typing import Any

from ._format import (
    _pct,
    _span,
    _table,
)
from ._records import Bench
from ._targets import TARGETS


def section(b: Bench) -> list[str]:
    d = b.load("latency.json")
    quick = b.load("latency_quick.json")
    fb = d["fbnet_predictor"]
    cal, cal10 = d["calibration"], d["calibration_10"]
    n_draws = len(d["settings"]["seeds"])
    few = int("calibration_10".rsplit("_", 1)[1])  # the key names its network count
    t_rho = TARGETS["calibration_rho"]
    good = [k for k, v in cal.items() if v["spearman"] >= t_rho]
    worst = min(cal, key=lambda k: cal[k]["spearman"])
    host, h = d["host"], d["host"]["detail"]
    t_host = TARGETS["host_within_10pct"]
    beats = host["within_10pct"] > host["noise_within_10pct"]
    held_px = [s[-1] for s in host["held_out_inputs"]]
    bits = [s["bits"] for s in host["samples"]]
    settings = d["settings"]
    by_size: dict[int, list[dict[str, Any]]] = {}
    for n in d["int8_speedup"]["networks"]:
        by_size.setdefault(n["input"][-1], []).append(n)
    int8_spans = ", ".join(
        f"{_span([n['speedup'] for n in nets], '{:.2f}x'.format)} at {px} px"
        for px, nets in sorted(by_size.items())
    )
    shares = _span([n["int8_mac_share"] for n in d["int8_speedup"]["networks"]], _pct)
    subsets = [
        ("detail", f"held out, at least {host['min_ms']:g} ms (headline)"),
        ("all", "held out, all"),
        ("fp32_kernels", "held out, fp32 kernels"),
        ("int8_kernels", "held out, int8 kernels"),
        ("channel_pruned", "held out, channel-pruned"),
        ("fit_in_sample", "the fitting networks (in sample)"),
    ]
    host_rows = [
        [
            label,
            str(host[k]["n"]),
            _pct(host[k]["within_10pct"]),
            f"{host[k]['spearman']:.2f}",
            _pct(host[k]["median_abs_error"]),
            _pct(host[k]["noise_within_10pct"]),
            f"{host[k]['noise_spearman']:.2f}",
        ]
        for k, label in subsets
        if k in host
    ]
    return [
        "## Latency models",
        "",
        "    .venv/bin/python scripts/bench_latency.py --out docs/bench/latency.json [--quick]",
        "",
        "### FBNet-space predictors",
        "",
        "The shipped per-operator-kind predictors (`mobile` uses `pixel3`), each fitted on"
        " HW-NAS-Bench's measurements of one device, scored on FBNet networks they were not"
        " fitted on (`scripts/fit_latency_models.py` refits them):",
        "",
        *_table(
            ["device", "Spearman's rho", "within ±10%"],
            [[k, f"{v['spearman']:.4f}", _pct(v["within_10pct"], 1)] for k, v in fb.items()],
        ),
        "",
        "### Calibrating a new device",
        "",
        f"`nas.calibrate_hw`, with each of the {len(cal)} FBNet devices held out in turn and"
        f" calibrated from {few} of its networks (`calibration_{few}`) or from the larger default"
        f" set (`calibration`), mean over {n_draws} seeded draws of the calibration networks;"
        " the baseline ranks by the Pixel 3's table (the Raspberry Pi 4's for the Pixel 3):",
        "",
        *_table(
            [
                "device",
                f"rho ({few} networks)",
                "rho (default set)",
                "within ±10% (default set)",
                "baseline rho",
            ],
            [
                [
                    k,
                    f"{cal10[k]['spearman']:.3f}",
                    f"{v['spearman']:.3f}",
                    _pct(v["within_10pct"]),
                    f"{v['baseline_spearman']:.3f}",
                ]
                for k, v in cal.items()
            ],
        ),
        "",
        f"With {few} networks the mean rho is {_mean(cal10, 'spearman'):.3f}; with the default"
        f" set {len(good)} of {len(cal)} devices reach rho >= {t_rho} (mean"
        f" {_mean(cal, 'spearman'):.3f}; lowest {worst} {cal[worst]['spearman']:.3f}). The"
        f" `--quick` run ({len(quick['settings']['seeds'])} draws,"
        f" {b.link('latency_quick.json')}) gives a mean rho of"
        f" {_mean(quick['calibration_10'], 'spearman'):.3f} with {few} networks and"
        f" {_mean(quick['calibration'], 'spearman'):.3f} with the default set. Calibrate with"
        " networks of the space you will search: a profile calibrated on FBNet networks"
        " only transfers poorly to mbconv.",
        "",
        "### int8 on this host",
        "",
        f"ONNX Runtime int8 against fp32 for random mbconv networks, with {shares} of the MACs"
        f" in int8 kernels: {int8_spans} (median {d['int8_speedup']['median_speedup']:.2f}x)."
        " int8 rarely pays on this machine; see [why](#why-int8-mobilenetv3-is-slower).",
        "",
        "### Host predictor accuracy",
        "",
        f"`python -m nas.profile_hw`'s fp32 and int8 models, fitted on {host['n_fit']} deployed"
        f" networks and scored on {host['all']['n']} held-out mbconv networks"
        f" ({_span(held_px, str)} px, bits {min(bits)}-{max(bits)}, sparsity, channel"
        " pruning). The noise ceiling comes first: the same networks measured twice, in two"
        f" passes minutes apart, each time the median of {host['timing']['repeats']} runs x"
        f" {host['timing']['rounds']} rounds after warm-up. {settings['cpu_count']} CPUs, load"
        f" average {settings['load_average_at_end'][0]:.2f} at the end:",
        "",
        *_table(
            [
                "networks",
                "n",
                "within ±10%",
                "Spearman's rho",
                "median error",
                "noise ceiling: within ±10%",
                "noise ceiling: rho",
            ],
            host_rows,
        ),
        "",
        f"On the {host['n']} networks of at least {host['min_ms']:g} ms the predictor is within"
        f" ±10% for {_pct(host['within_10pct'])} (rho {host['spearman']:.2f}), against a noise"
        f" ceiling of {_pct(host['noise_within_10pct'])} (rho {h['noise_spearman']:.2f}). The"
        f" {_pct(t_host)} target"
        f" {'is met' if host['within_10pct'] >= t_host else 'cannot be reached here'}: the"
        " machine does not reproduce its own measurements to ±10%"
        f" ({_pct(quick['host']['noise_within_10pct'])} in the shorter `--quick` run,"
        " whose two passes are closer in time), as its speed drifts over minutes. The"
        f" predictor {'beats' if beats else 'does not beat'}"
        " the noise ceiling; on a machine with stable timing, rerun `python"
        " scripts/bench_latency.py --only host` before trusting host predictions. `+hw=host`"
        " itself measures every candidate, so its constraint does not depend on the predictor.",
    ]


def _mean(by_device: dict[str, dict[str, float]], key: str) -> float:
    return statistics.mean(v[key] for v in by_device.values())
