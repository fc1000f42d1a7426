"""Benchmark int8 ONNX deployment against fp32: latency, speedup, int8 MAC share.

timm ``mobilenetv3_small_050`` and ``resnet18`` (random init, 1000 classes), 224 px,
batch 1, one ONNX Runtime thread: each exported in fp32, in int8 (static QDQ,
per-channel weights, calibrated on random inputs; random weights make this a
latency benchmark, not an accuracy one) with the int8 graph rewrites
(``OnnxInt8Config(rewrite=True)``, the default) and without them (``int8-plain``),
then timed in interleaved rounds so machine load hits all alike. Latency is the
CPU time of the inference thread (``clock="thread"``), steadier than wall time on a
shared machine. Also the cosine similarity and largest absolute difference of the
int8 logits to the fp32 ones on held-out inputs.

Usage:
    python scripts/bench_int8.py [--out bench_int8.json] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from _bench import Bench
from _common import logit_agreement, onnx_logits

from compress import OnnxInt8Config, export_onnx, int8_mac_share, measure_onnx_latency_ms

MODELS = ("mobilenetv3_small_050", "resnet18")
SHAPE = (1, 3, 224, 224)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (< 5 minutes)")
    args = parser.parse_args()
    bench = Bench(__file__)
    rounds, repeats, n_calib = (5, 10, 32) if args.quick else (11, 20, 200)
    torch.manual_seed(0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            rows += _measure(name, Path(tmp), rounds=rounds, repeats=repeats, n_calib=n_calib)
    load = os.getloadavg()
    _print(rows, load, rounds, repeats)
    if args.out:
        record = {"latency": rows, "load_average": load, "rounds": rounds, "repeats": repeats}
        bench.write(record, args.out, indent=1)
        print(f"wrote {args.out}")


def _measure(
    name: str, tmp: Path, *, rounds: int, repeats: int, n_calib: int
) -> list[dict[str, Any]]:
    """One timm model as fp32, int8 (rewritten) and plain int8 ONNX: latency over
    interleaved rounds, int8 share of MACs, size, and similarity to fp32."""
    model = timm.create_model(name, pretrained=False, num_classes=1000).eval()
    calib = torch.randn(n_calib, *SHAPE[1:])
    variants = ("fp32", "int8", "int8-plain")
    paths = {v: tmp / f"{name}_{v}.onnx" for v in variants}
    sizes = {
        "fp32": export_onnx(model, paths["fp32"], input_shape=SHAPE),
        "int8": export_onnx(model, paths["int8"], input_shape=SHAPE, int8=True, calibration=calib),
        "int8-plain": export_onnx(
            model, paths["int8-plain"], input_shape=SHAPE, int8=True, calibration=calib,
            config=OnnxInt8Config(rewrite=False),
        ),
    }  # fmt: skip
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            times[v].append(
                measure_onnx_latency_ms(
                    paths[v], SHAPE, threads=1, warmup=3, repeats=repeats, clock="thread"
                )[0]
            )
    held_out = torch.randn(8, *SHAPE[1:]).numpy()
    sims = {v: _similarity(paths["fp32"], paths[v], held_out) for v in variants[1:]}
    fp32_ms = float(np.median(times["fp32"]))
    rows = []
    for v in variants:
        q1, ms, q3 = np.percentile(times[v], [25, 50, 75])
        rows.append(
            {
                "model": name,
                "variant": v,
                "fp32_ms": fp32_ms,
                "ms": float(ms),
                "spread": float((q3 - q1) / ms),
                "speedup": fp32_ms / float(ms),
                "int8_mac_share": int8_mac_share(paths[v]),
                "size_bytes": sizes[v],
                **sims.get(v, {}),
            }
        )
    return rows


def _print(rows: list[dict[str, Any]], load: tuple[float, ...], rounds: int, repeats: int) -> None:
    print(
        f"{'model':24s} {'variant':10s} {'ms':>8s} {'spread':>7s} {'speedup':>8s} "
        f"{'int8 MACs':>9s} {'cosine':>7s} {'size':>9s}"
    )
    for r in rows:
        print(
            f"{r['model']:24s} {r['variant']:10s} {r['ms']:8.3f} {r['spread']:7.2f} "
            f"{r['speedup']:8.2f} {r['int8_mac_share']:9.1%} {r.get('cosine', 1.0):7.4f} "
            f"{r['size_bytes']:9d}"
        )
    print(
        f"load average {load[0]:.1f} on {os.cpu_count()} CPUs; ms = thread CPU time; "
        f"spread = IQR / median over {rounds} interleaved rounds of {repeats} runs"
    )


def _similarity(fp32: Path, int8: Path, x: np.ndarray) -> dict[str, float]:
    """Cosine similarity and max |diff| of int8 to fp32 logits, one input at a time."""
    a = logit_agreement(onnx_logits(fp32, x), onnx_logits(int8, x))
    return {
        "cosine": a["cosine_min"],
        "max_abs_diff": a["max_abs_diff"],
        "top1_agreement": a["top1_agreement"],
    }


if __name__ == "__main__":
    main()
