"""Benchmark int8 ONNX deployment against fp32: latency, speedup, int8 MAC share.

timm ``mobilenetv3_small_050`` and ``resnet18`` (random init, 1000 classes), 224 px,
batch 1, one ONNX Runtime thread: each exported in fp32 and in int8 (static QDQ,
per-channel weights, calibrated on random inputs; random weights make this a
latency benchmark, not an accuracy one), then timed in interleaved rounds (fp32,
int8, fp32, ...) so machine load hits both alike. Also the cosine similarity and
largest absolute difference of the int8 logits to the fp32 ones on held-out inputs.

Usage:
    python scripts/bench_int8.py [--out bench_int8.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch

from compress._onnx import export_onnx, int8_mac_share, measure_onnx_latency_ms

MODELS = ("mobilenetv3_small_050", "resnet18")
SHAPE = (1, 3, 224, 224)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (< 5 minutes)")
    args = parser.parse_args()
    rounds, repeats, n_calib = (5, 10, 32) if args.quick else (11, 20, 200)
    torch.manual_seed(0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            model = timm.create_model(name, pretrained=False, num_classes=1000).eval()
            calib = torch.randn(n_calib, *SHAPE[1:])
            paths = {v: Path(tmp) / f"{name}_{v}.onnx" for v in ("fp32", "int8")}
            sizes = {"fp32": export_onnx(model, paths["fp32"], input_shape=SHAPE),
                     "int8": export_onnx(model, paths["int8"], input_shape=SHAPE,
                                         int8=True, calibration=calib)}
            times: dict[str, list[float]] = {"fp32": [], "int8": []}
            for _ in range(rounds):
                for v in ("fp32", "int8"):
                    times[v].append(measure_onnx_latency_ms(
                        paths[v], SHAPE, threads=1, warmup=3, repeats=repeats)[0])
            sim = _similarity(paths, torch.randn(8, *SHAPE[1:]).numpy())
            fp32_ms = float(np.median(times["fp32"]))
            for v in ("fp32", "int8"):
                q1, ms, q3 = np.percentile(times[v], [25, 50, 75])
                rows.append({
                    "model": name, "variant": v, "fp32_ms": fp32_ms, "ms": float(ms),
                    "spread": float((q3 - q1) / ms), "speedup": fp32_ms / float(ms),
                    "int8_mac_share": int8_mac_share(paths[v]), "size_bytes": sizes[v],
                    **(sim if v == "int8" else {}),
                })
    load = os.getloadavg()
    print(f"{'model':24s} {'variant':7s} {'ms':>8s} {'spread':>7s} {'speedup':>8s} "
          f"{'int8 MACs':>9s} {'cosine':>7s} {'size':>9s}")
    for r in rows:
        print(f"{r['model']:24s} {r['variant']:7s} {r['ms']:8.3f} {r['spread']:7.2f} "
              f"{r['speedup']:8.2f} {r['int8_mac_share']:9.1%} {r.get('cosine', 1.0):7.4f} "
              f"{r['size_bytes']:9d}")
    print(f"load average {load[0]:.1f} on {os.cpu_count()} CPUs; spread = IQR / median "
          f"over {rounds} interleaved rounds of {repeats} runs")
    if args.out:
        args.out.write_text(json.dumps({"latency": rows, "load_average": load,
                                        "rounds": rounds, "repeats": repeats}, indent=1))
        print(f"wrote {args.out}")


def _similarity(paths: dict[str, Path], x: np.ndarray) -> dict[str, float]:
    """Cosine similarity and max |diff| of int8 to fp32 logits, one input at a time."""
    import onnxruntime as ort

    outs = {}
    for v, p in paths.items():
        sess = ort.InferenceSession(os.fspath(p), providers=["CPUExecutionProvider"])
        outs[v] = np.concatenate([sess.run(None, {"input": xi[None]})[0] for xi in x])
    a, b = outs["fp32"], outs["int8"]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"cosine": float(cos.min()), "max_abs_diff": float(np.abs(a - b).max()),
            "top1_agreement": float((a.argmax(1) == b.argmax(1)).mean())}


if __name__ == "__main__":
    main()
