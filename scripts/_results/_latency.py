"""## Latency models: the FBNet predictors, calibration, int8 and the host predictor
(latency.json, latency_quick.json); the host prose is templates/latency_host.md."""

from __future__ import annotations

import statistics
from typing import Any

from ._format import (
    _pct,
    _span,
    _table,
    _template,
)
from ._records import Bench
from ._targets import TARGETS


def section(b: Bench) -> list[str]:
    d = b.load("latency.json")
    quick = b.load("latency_quick.json")
    return [
        "## Latency models",
        "",
        "    .venv/bin/python scripts/bench_latency.py --out docs/bench/latency.json [--quick]",
        "",
        *_fbnet(d["fbnet_predictor"]),
        "",
        *_calibration(b, d, quick),
        "",
        *_int8(d["int8_speedup"]),
        "",
        *_host(d, quick),
    ]


def _fbnet(fb: dict[str, Any]) -> list[str]:
    return [
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
    ]


def _calibration(b: Bench, d: dict[str, Any], quick: dict[str, Any]) -> list[str]:
    cal, cal10 = d["calibration"], d["calibration_10"]
    n_draws = len(d["settings"]["seeds"])
    few = int("calibration_10".rsplit("_", 1)[1])  # the key names its network count
    t_rho = TARGETS["calibration_rho"]
    good = [k for k, v in cal.items() if v["spearman"] >= t_rho]
    worst = min(cal, key=lambda k: cal[k]["spearman"])
    return [
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
    ]


def _int8(int8: dict[str, Any]) -> list[str]:
    by_size: dict[int, list[dict[str, Any]]] = {}
    for n in int8["networks"]:
        by_size.setdefault(n["input"][-1], []).append(n)
    spans = ", ".join(
        f"{_span([n['speedup'] for n in nets], '{:.2f}x'.format)} at {px} px"
        for px, nets in sorted(by_size.items())
    )
    shares = _span([n["int8_mac_share"] for n in int8["networks"]], _pct)
    return [
        "### int8 on this host",
        "",
        f"ONNX Runtime int8 against fp32 for random mbconv networks, with {shares} of the MACs"
        f" in int8 kernels: {spans} (median {int8['median_speedup']:.2f}x)."
        " int8 rarely pays on this machine; see [why](#why-int8-mobilenetv3-is-slower).",
    ]


# The host predictor's scores on each subset of networks, the headline first.
_SUBSETS = [
    ("detail", "held out, at least {min_ms:g} ms (headline)"),
    ("all", "held out, all"),
    ("fp32_kernels", "held out, fp32 kernels"),
    ("int8_kernels", "held out, int8 kernels"),
    ("channel_pruned", "held out, channel-pruned"),
    ("fit_in_sample", "the fitting networks (in sample)"),
]


def _host(d: dict[str, Any], quick: dict[str, Any]) -> list[str]:
    host, settings = d["host"], d["settings"]
    t_host = TARGETS["host_within_10pct"]
    bits = [s["bits"] for s in host["samples"]]
    rows = [
        [
            label.format(min_ms=host["min_ms"]),
            str(host[k]["n"]),
            _pct(host[k]["within_10pct"]),
            f"{host[k]['spearman']:.2f}",
            _pct(host[k]["median_abs_error"]),
            _pct(host[k]["noise_within_10pct"]),
            f"{host[k]['noise_spearman']:.2f}",
        ]
        for k, label in _SUBSETS
        if k in host
    ]
    header = ["networks", "n", "within ±10%", "Spearman's rho", "median error",
              "noise ceiling: within ±10%", "noise ceiling: rho"]  # fmt: skip
    return _template(
        "latency_host",
        n_fit=host["n_fit"],
        n_held=host["all"]["n"],
        px=_span([s[-1] for s in host["held_out_inputs"]], str),
        bits=f"{min(bits)}-{max(bits)}",
        repeats=host["timing"]["repeats"],
        rounds=host["timing"]["rounds"],
        cpus=settings["cpu_count"],
        load=f"{settings['load_average_at_end'][0]:.2f}",
        table="\n".join(_table(header, rows)),
        n=host["n"],
        min_ms=f"{host['min_ms']:g}",
        within=_pct(host["within_10pct"]),
        rho=f"{host['spearman']:.2f}",
        noise=_pct(host["noise_within_10pct"]),
        noise_rho=f"{host['detail']['noise_spearman']:.2f}",
        verdict=_host_verdict(host, quick, t_host),
        beats="beats" if host["within_10pct"] > host["noise_within_10pct"] else "does not beat",
    )


def _host_verdict(host: dict[str, Any], quick: dict[str, Any], target: float) -> str:
    """Whether the host target is met and, if not, whose error it is: the machine's
    (it does not reproduce its own timings to ±10%) or the predictor's."""
    if host["within_10pct"] >= target:
        return f"The {_pct(target)} target is met."
    if host["noise_within_10pct"] < target:
        return (
            f"The {_pct(target)} target cannot be reached here: the machine does not "
            f"reproduce its own measurements to ±10% "
            f"({_pct(quick['host']['noise_within_10pct'])} in the shorter `--quick` run, "
            "whose two passes are closer in time), as its speed drifts over minutes."
        )
    kinds = [(k, host[k]) for k in ("fp32_kernels", "int8_kernels") if k in host]
    worst = min(kinds, key=lambda kv: kv[1]["within_10pct"]) if kinds else None
    where = (
        f" Its worst networks are those with {worst[0].replace('_', ' ')} "
        f"({_pct(worst[1]['within_10pct'])} within ±10%)."
        if worst
        else ""
    )
    return (
        f"The {_pct(target)} target is missed, and not for the machine's noise: this run "
        f"reproduced its own measurements ({_pct(host['noise_within_10pct'])} within ±10%), "
        f"so the error is the predictor's.{where}"
    )


def _mean(by_device: dict[str, dict[str, float]], key: str) -> float:
    return statistics.mean(v[key] for v in by_device.values())
