"""Benchmark the latency models: few-shot calibration, FBNet predictors, this host.

- ``calibration`` / ``calibration_10``: each of the 13 FBNet-space devices held out
  in turn (its column unused, the known predictors those of the other 12),
  calibrated from 20 / 10 of its networks (seeded, mean over seeds), scored on all
  others: Spearman's rho, share within +-10 %, and the Pixel 3 table's ranking as
  the baseline (Raspberry Pi 4's for the Pixel 3).
- ``fbnet_predictor``: the shipped per-device predictors on the 1,000 FBNet
  networks they were not fitted on (``latency_models.json``).
- ``host``: ``nas.profile_hw``'s model of this machine against measured latencies
  of held-out random ``mbconv`` networks (>= 1 ms) compressed at several bit-widths
  and sparsities and exported as deployed (dense fp32 kernels), with the noise
  ceiling (the same networks measured twice).

Usage:
    python scripts/bench_latency.py [--out bench_latency.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch.nn.utils import parametrize

import compress
from nas.hw import arch_features, measure_latency_ms
from nas.hw._fbnet_data import load_fbnet_latencies
from nas.hw._fbnet_eval import calibration_holdout
from nas.hw._host_profile import GRIDS, fit_host_predictor, time_ops
from nas.hw._predictor import _read_models
from nas.hw._random_arch import random_archs
from search_spaces import InputSpec, get_search_space

COMPRESSIONS = [(32, 0.0), (8, 0.5), (4, 0.8), (2, 0.3)]  # (bits, sparsity), cycled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench_latency.json"))
    parser.add_argument("--quick", action="store_true", help="fewer seeds and networks (< 5 min)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.monotonic()
    seeds = (0, 1, 2) if args.quick else (0, 1, 2, 3, 4)
    devices = list(load_fbnet_latencies().latency_ms)
    result: dict[str, object] = {}
    for key, n in (("calibration", 20), ("calibration_10", 10)):
        result[key] = {d: calibration_holdout(d, n_samples=n, seeds=seeds) for d in devices}
    stored = _read_models(None)["devices"]
    result["fbnet_predictor"] = {
        d: {k: stored[d]["metrics"][k] for k in ("spearman", "within_10pct")} for d in devices
    }
    result["host"] = _host(n=24 if args.quick else 60, quick=args.quick)
    result["settings"] = {"seeds": list(seeds), "quick": args.quick}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    _print(result)
    print(f"wrote {args.out} in {time.monotonic() - start:.0f} s")


def _host(*, n: int, quick: bool) -> dict[str, Any]:
    grid = GRIDS["quick" if quick else "full"]
    space = get_search_space("mbconv")
    size, chans = 28, 1
    spec, shape = InputSpec(chans, size, 10), (1, chans, size, size)
    op_feats, op_ms, _ = time_ops(grid)

    def measure(model: torch.nn.Module) -> float:
        return measure_latency_ms(model, shape, warmup=grid.warmup, repeats=grid.repeats)[0]

    fit = random_archs("mbconv", 10, seed=11)
    predictor = fit_host_predictor(
        op_feats,
        op_ms,
        [arch_features(a, space="mbconv", image_size=size, in_chans=chans) for a in fit],
        np.array([measure(space.build(a, spec)) for a in fit]),
        device="host",
    )
    first: list[float] = []
    second: list[float] = []
    predicted: list[float] = []
    for i, arch in enumerate(random_archs("mbconv", 3 * n, seed=12)):
        if len(first) == n:
            break
        bits, sparsity = COMPRESSIONS[i % len(COMPRESSIONS)]
        model = space.build(arch, spec)
        cfgs = [compress.PruneConfig(sparsity=sparsity)] if sparsity else []
        compress.apply(model, [*cfgs, compress.QuantConfig(bits=bits)])
        deployed = _bake(model)
        t1 = measure(deployed)
        if t1 < 1.0:
            continue  # sub-ms networks are mostly timer noise on a shared machine
        first.append(t1)
        second.append(measure(deployed))
        predicted.append(predictor.predict_ms(deployed, shape))
    f, s, p = np.array(first), np.array(second), np.array(predicted)
    return {
        "n": len(f),
        "within_10pct": float(np.mean(np.abs(p / f - 1) <= 0.10)),
        "spearman": float(spearmanr(p, f)[0]),
        "noise_within_10pct": float(np.mean(np.abs(s / f - 1) <= 0.10)),
        "noise_spearman": float(spearmanr(s, f)[0]),
        "median_ms": float(np.median(f)),
        "input": list(shape),
        "compressions_bits_sparsity": COMPRESSIONS,
    }


def _bake(model: torch.nn.Module) -> torch.nn.Module:
    """The model as deployed on dense fp32 kernels: masked, dequantized plain weights."""
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):  # type: ignore[arg-type]
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return model


def _print(r: dict[str, Any]) -> None:
    print(
        f"{'device':14s} {'cal20 rho':>9s} {'+-10%':>6s} {'cal10 rho':>9s} {'+-10%':>6s} "
        f"{'baseline':>8s} {'full rho':>8s}"
    )
    for d, c20 in r["calibration"].items():
        c10, fp = r["calibration_10"][d], r["fbnet_predictor"][d]
        print(
            f"{d:14s} {c20['spearman']:9.3f} {c20['within_10pct']:6.2f} {c10['spearman']:9.3f} "
            f"{c10['within_10pct']:6.2f} {c20['baseline_spearman']:8.3f} {fp['spearman']:8.3f}"
        )
    for key in ("calibration", "calibration_10"):
        rho = [v["spearman"] for v in r[key].values()]
        print(f"{key}: mean rho {np.mean(rho):.3f}, {sum(x >= 0.9 for x in rho)}/13 >= 0.9")
    h = r["host"]
    print(
        f"host: n={h['n']} within +-10% {h['within_10pct']:.2f} rho {h['spearman']:.3f}; "
        f"noise ceiling within +-10% {h['noise_within_10pct']:.2f} rho {h['noise_spearman']:.3f}"
    )


if __name__ == "__main__":
    main()
