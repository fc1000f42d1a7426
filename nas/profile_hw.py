"""Profile this machine's operators and write a device profile for ``+hw=custom``.

Usage:
    python -m nas.profile_hw --out my_device.json [--quick] [--threads 1]
    python -m nas.search +hw=custom hw.profile=my_device.json

Times every operator kind the search spaces use over a grid of shapes (batch 1,
fixed threads, warm-up, median of repeats), fits a per-kind latency model on them,
fixes its per-network overhead on a few measured ``mbconv`` networks, and reports
its accuracy on random ``mbconv`` networks it was not fitted on, next to the noise
ceiling (the same networks measured twice). ``--quick`` takes under 2 minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

USAGE_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nas.profile_hw", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, required=True, help="device profile JSON to write")
    parser.add_argument("--quick", action="store_true", help="a smaller grid, under 2 minutes")
    parser.add_argument("--grid", choices=("tiny", "quick", "full"), default=None)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (1)")
    parser.add_argument("--image-size", type=int, default=28, help="mbconv input side (28)")
    parser.add_argument("--in-chans", type=int, default=1, help="mbconv input channels (1)")
    parser.add_argument("--n-fit", type=int, default=None, help="networks fitting the overhead")
    parser.add_argument("--n-eval", type=int, default=None, help="held-out networks to report")
    parser.add_argument("--device", default=None, help="device name (default: --out's stem)")
    args = parser.parse_args(argv)
    grid_name = args.grid or ("quick" if args.quick else "full")
    if args.threads < 1 or args.image_size < 8:
        print(
            f"error: --threads={args.threads} must be >= 1 and --image-size={args.image_size} >= 8",
            file=sys.stderr,
        )
        return USAGE_ERROR
    defaults = {"tiny": (2, 0), "quick": (10, 20), "full": (12, 20)}[grid_name]
    n_fit = defaults[0] if args.n_fit is None else args.n_fit
    n_eval = defaults[1] if args.n_eval is None else args.n_eval

    import torch

    from nas.hw import arch_features, measure_latency_ms, write_device_profile
    from nas.hw._host_profile import GRIDS, fit_host_predictor, time_ops
    from nas.hw._random_arch import random_archs
    from search_spaces import InputSpec, get_search_space

    torch.manual_seed(0)
    grid = GRIDS[grid_name]
    start = time.monotonic()
    op_feats, op_ms, _ = time_ops(grid, threads=args.threads, progress=_bar("operators"))
    space = get_search_space("mbconv")
    spec = InputSpec(args.in_chans, args.image_size, 10)
    shape = (1, args.in_chans, args.image_size, args.image_size)

    def measure(arch: dict) -> float:
        model = space.build(arch, spec)
        return measure_latency_ms(
            model, shape, threads=args.threads, warmup=grid.warmup, repeats=grid.repeats
        )[0]

    def features(arch: dict) -> dict[str, float]:
        return arch_features(
            arch, space="mbconv", image_size=args.image_size, in_chans=args.in_chans
        )

    fit_archs = random_archs("mbconv", n_fit, seed=1)
    net_ms = np.array([measure(a) for a in fit_archs])
    device = args.device or args.out.stem
    predictor = fit_host_predictor(
        op_feats, op_ms, [features(a) for a in fit_archs], net_ms, device=device
    )
    if n_eval > 0:
        predictor.metrics.update(_held_out(n_eval, measure, features, predictor))
    predictor.metrics["profile_seconds"] = round(time.monotonic() - start, 1)
    write_device_profile(
        predictor,
        args.out,
        provenance={
            "method": "python -m nas.profile_hw: single-operator timings over a shape grid "
            f"({grid_name}, {len(op_ms)} ops), per-kind NNLS, network overhead from "
            f"{n_fit} mbconv networks at {shape}",
            "threads": args.threads,
            "torch": torch.__version__,
            "date": date.today().isoformat(),
        },
    )
    m = predictor.metrics
    print(f"profiled {len(op_ms)} operators and {n_fit} networks in {m['profile_seconds']} s")
    if n_eval > 0:
        print(
            f"held-out: {n_eval} random mbconv networks at {shape}: within +-10% "
            f"{100 * m['held_out_within_10pct']:.0f}%, Spearman {m['held_out_spearman']:.3f}; "
            f"noise ceiling (same networks measured twice) within +-10% "
            f"{100 * m['noise_within_10pct']:.0f}%"
        )
    print(f"wrote {args.out}; use it with: python -m nas.search +hw=custom hw.profile={args.out}")
    return 0


def _held_out(n, measure, features, predictor) -> dict[str, float]:
    from scipy.stats import spearmanr

    from nas.hw._random_arch import random_archs

    archs = random_archs("mbconv", n, seed=2)
    first = np.array([measure(a) for a in archs])
    second = np.array([measure(a) for a in archs])
    predicted = np.array([predictor.predict_features_ms(features(a)) for a in archs])
    return {
        "held_out_n": n,
        "held_out_within_10pct": float(np.mean(np.abs(predicted / first - 1) <= 0.10)),
        "held_out_spearman": float(spearmanr(predicted, first)[0]),
        "noise_within_10pct": float(np.mean(np.abs(second / first - 1) <= 0.10)),
        "noise_spearman": float(spearmanr(second, first)[0]),
        "held_out_median_ms": float(np.median(first)),
    }


def _bar(label: str):
    def show(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)

    return show


if __name__ == "__main__":
    sys.exit(main())
