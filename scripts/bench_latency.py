"""Benchmark the latency models: few-shot calibration, FBNet predictors, this host.

- ``calibration`` / ``calibration_10``: each of the 13 FBNet-space devices held out
  in turn (its column unused, the known predictors those of the other 12),
  calibrated from 20 / 10 of its networks (seeded, mean over seeds), scored on all
  others: Spearman's rho, share within +-10 %, and the Pixel 3 table's ranking as
  the baseline (Raspberry Pi 4's for the Pixel 3).
- ``fbnet_predictor``: the shipped per-device predictors on the 1,000 FBNet
  networks they were not fitted on (``latency_models.json``).
- ``host``: ``nas.profile_hw``'s model of this machine (fitted on random deployed
  ``mbconv``/``tiny`` networks) against measured latencies of held-out random
  ``mbconv`` networks at 224-320 px, compressed at several bit-widths, unstructured
  sparsities and channel-pruning ratios and deployed as ONNX Runtime sessions (int8
  kernels at 8 bits, dequantized fp32 otherwise). The noise ceiling comes first:
  the same networks measured twice, in two passes minutes apart. The headline
  figures are over the networks of at least 1 ms; ``all`` has every one.
- ``int8_speedup``: fp32 against int8 ONNX Runtime latency of a few ``mbconv``
  networks, with the share of their MACs that really runs in int8 kernels.

Usage:
    python scripts/bench_latency.py [--out bench_latency.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _bench import Bench

import compress
from nas.hw import (
    NetSample,
    accuracy,
    bake,
    calibration_holdout,
    fit_host_predictor,
    load_fbnet_latencies,
    measure_samples,
    random_archs,
    read_latency_models,
    sample_networks,
)
from nas.profile_hw import GRIDS
from search_spaces import InputSpec, get_search_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench_latency.json"))
    parser.add_argument("--quick", action="store_true", help="fewer seeds and networks (< 5 min)")
    parser.add_argument(
        "--only",
        choices=("host", "int8", "calibration"),
        action="append",
        help="run only these parts (repeatable); the others are kept from an existing --out",
    )
    args = parser.parse_args()
    bench = Bench(__file__)
    torch.set_num_threads(1)
    start = time.monotonic()
    parts = set(args.only or ("host", "int8", "calibration"))
    result: dict[str, object] = {}
    if args.only and args.out.exists():  # a partial run keeps the other parts' results
        result = {k: v for k, v in json.loads(args.out.read_text()).items() if k != "settings"}
    seeds = (0, 1, 2) if args.quick else (0, 1, 2, 3, 4)
    if "calibration" in parts:
        devices = list(load_fbnet_latencies().latency_ms)
        for key, n in (("calibration", 20), ("calibration_10", 10)):
            result[key] = {d: calibration_holdout(d, n_samples=n, seeds=seeds) for d in devices}
        stored = read_latency_models(None)["devices"]
        result["fbnet_predictor"] = {
            d: {k: stored[d]["metrics"][k] for k in ("spearman", "within_10pct")} for d in devices
        }
        _log(f"calibration done at {time.monotonic() - start:.0f} s")
    if "host" in parts:
        result["host"] = _host(quick=args.quick)
        _log(f"host done at {time.monotonic() - start:.0f} s")
    if "int8" in parts:
        result["int8_speedup"] = _int8_speedup(quick=args.quick)
    result["settings"] = {
        "parts_run": sorted(parts),
        "seeds": list(seeds),
        "quick": args.quick,
        "load_average_at_end": _loadavg(),
        "cpu_count": _cpus(),
    }
    bench.write(result, args.out, indent=1)
    _print(result)
    print(f"wrote {args.out} in {time.monotonic() - start:.0f} s")


def _host(*, quick: bool) -> dict[str, Any]:
    grid = GRIDS["quick" if quick else "full"]
    fit = sample_networks(grid.n_fit, seed=1, sizes=grid.fit_sizes, spaces=("mbconv", "tiny"))
    held_out = sample_networks(56 if quick else 120, seed=12, sizes=grid.eval_sizes)
    # One pool, timed in random order: load drifts hit fitted and held-out nets alike.
    measure_samples([*fit, *held_out], passes=2, repeats=grid.repeats, rounds=grid.rounds)
    predictor = fit_host_predictor(fit, device="host")
    headline = accuracy(predictor, held_out, min_ms=1.0)

    def by(pred: Any) -> dict[str, Any]:
        return accuracy(predictor, [s for s in held_out if pred(s)], min_ms=1.0)

    return {
        **{k: headline[k] for k in ("n", "within_10pct", "spearman", "noise_within_10pct")},
        "min_ms": 1.0,
        "detail": headline,
        "all": accuracy(predictor, held_out),
        "fp32_kernels": by(lambda s: not s.int8),
        "int8_kernels": by(lambda s: s.int8),
        "channel_pruned": by(lambda s: s.channel_ratio > 0),
        "fit_in_sample": accuracy(predictor, fit),
        "n_fit": len(fit),
        "fit_inputs": [list(x) for x in grid.fit_sizes],
        "held_out_inputs": [list(x) for x in grid.eval_sizes],
        "timing": {
            "repeats": grid.repeats,
            "rounds": grid.rounds,
            "warmup": 10,
            "threads": 1,
            "runtime": "onnxruntime CPU",
        },
        "samples": [_sample_row(s, predictor) for s in held_out],
    }


def _sample_row(s: NetSample, predictor: Any) -> dict[str, Any]:
    model = predictor.kernels.get(8, predictor) if s.int8 else predictor
    return {
        "arch": s.arch,
        "input": list(s.input_shape),
        "bits": s.bits,
        "sparsity": s.sparsity,
        "channel_ratio": s.channel_ratio,
        "measured_ms": s.ms,
        "predicted_ms": model.predict_features_ms(s.features),
    }


def _int8_speedup(*, quick: bool) -> dict[str, Any]:
    """fp32 vs int8 ONNX Runtime latency of random mbconv networks (lowest of 3 rounds)."""
    space = get_search_space("mbconv")
    rows = []
    n = 3 if quick else 6
    for chans, side in ((1, 28), (3, 224)):
        shape = (1, chans, side, side)
        calib = torch.randn(64, chans, side, side)
        for arch in random_archs("mbconv", n, seed=21):
            torch.manual_seed(0)
            model = bake(space.build(arch, InputSpec(chans, side, 10)))
            with tempfile.TemporaryDirectory() as tmp:
                fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
                compress.export_onnx(model, fp32, input_shape=shape)
                compress.export_onnx(model, int8, input_shape=shape, int8=True, calibration=calib)
                t32 = min(
                    compress.measure_onnx_latency_ms(fp32, shape, repeats=50)[0] for _ in range(3)
                )
                t8 = min(
                    compress.measure_onnx_latency_ms(int8, shape, repeats=50)[0] for _ in range(3)
                )
                share = compress.int8_mac_share(int8)
            rows.append(
                {
                    "arch": arch,
                    "input": list(shape),
                    "fp32_ms": t32,
                    "int8_ms": t8,
                    "speedup": t32 / t8,
                    "int8_mac_share": share,
                }
            )
    speedups = np.array([r["speedup"] for r in rows])
    return {
        "median_speedup": float(np.median(speedups)),
        "min_speedup": float(speedups.min()),
        "max_speedup": float(speedups.max()),
        "networks": rows,
    }


def _loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _print(r: dict[str, Any]) -> None:
    if "calibration" in r:
        print(
            f"{'device':14s} {'cal20 rho':>9s} {'+-10%':>6s} {'cal10 rho':>9s} {'+-10%':>6s} "
            f"{'baseline':>8s} {'full rho':>8s}"
        )
        for d, c20 in r["calibration"].items():
            c10, fp = r["calibration_10"][d], r["fbnet_predictor"][d]
            print(
                f"{d:14s} {c20['spearman']:9.3f} {c20['within_10pct']:6.2f} "
                f"{c10['spearman']:9.3f} {c10['within_10pct']:6.2f} "
                f"{c20['baseline_spearman']:8.3f} {fp['spearman']:8.3f}"
            )
        for key in ("calibration", "calibration_10"):
            rho = [v["spearman"] for v in r[key].values()]
            print(f"{key}: mean rho {np.mean(rho):.3f}, {sum(x >= 0.9 for x in rho)}/13 >= 0.9")
    if "host" in r:
        h = r["host"]
        print(
            f"host noise ceiling (same networks measured twice, >= 1 ms): within +-10% "
            f"{h['noise_within_10pct']:.2f} (n={h['n']})"
        )
        for key in ("detail", "all", "fp32_kernels", "int8_kernels", "channel_pruned"):
            a = h[key]
            if a.get("n"):
                print(
                    f"host {key:14s} n={a['n']:3d} within +-10% {a['within_10pct']:.2f} "
                    f"rho {a['spearman']:.3f} median |err| {a['median_abs_error']:.3f}; "
                    f"noise within +-10% {a.get('noise_within_10pct', float('nan')):.2f}"
                )
    if "int8_speedup" in r:
        for row in r["int8_speedup"]["networks"]:
            print(
                f"int8 {row['input']} w={row['arch']['width_mult']}: fp32 {row['fp32_ms']:.3f} "
                f"ms, int8 {row['int8_ms']:.3f} ms, speed-up {row['speedup']:.2f}x, "
                f"int8 MACs {100 * row['int8_mac_share']:.0f}%"
            )
    print(f"load average at the end: {r['settings']['load_average_at_end']}")


if __name__ == "__main__":
    main()
