"""Profile this machine's deployed latency and write a device profile for ``+hw=custom``.

Usage:
    python -m nas.profile_hw --out my_device.json [--quick] [--threads 1]
    python -m nas.search +hw=custom hw.profile=my_device.json

Builds random networks of the search spaces (``mbconv`` over a grid of input
sizes, and the ``tiny`` MLPs and LeNet-like CNNs at 28 px), so every operator kind
they use is seen over many shapes; compresses them (bit-widths, unstructured and
channel pruning), deploys each as an ONNX Runtime session (int8 kernels at 8 bits,
fp32 otherwise), times it (batch 1, fixed threads, warm-up, median of repeats,
lowest of a few rounds) and fits a per-operator-kind latency model for fp32 and
for int8 kernels. Then it reports the model's accuracy on random ``mbconv``
networks it was not fitted on, next to the noise ceiling (the same networks
measured twice). ``--quick`` takes about 2 minutes.
"""

from __future__ import annotations

import os
import sys
import time
from argparse import Namespace
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from nas._cli import InputError, OneLineParser, check_output_file, refuse, require

__all__ = ["GRIDS", "Grid", "main"]

MIN_FIT = 6
"""Fewest networks to fit on (``--n-fit``)."""
MIN_FP32 = 3
"""Fewest networks with fp32 kernels the fp32 model is fitted on (``fit_host_predictor``)."""


@dataclass(frozen=True)
class Grid:
    """How much to measure."""

    fit_sizes: tuple[tuple[int, int], ...]
    eval_sizes: tuple[tuple[int, int], ...]
    n_fit: int
    n_eval: int
    repeats: int
    rounds: int


GRIDS = {
    "tiny": Grid(((1, 28), (3, 32)), ((3, 32),), 8, 0, 3, 1),
    # mbconv at the held-out sizes too: a fit on small inputs alone extrapolates badly.
    "quick": Grid(
        ((1, 28), (3, 96), (3, 160), (3, 192), (3, 224), (3, 256)),
        ((3, 192), (3, 224), (3, 256)),
        36,
        24,
        20,
        1,
    ),
    "full": Grid(
        ((1, 28), (3, 32), (3, 64), (3, 128), (3, 160), (3, 192), (3, 224), (3, 256), (3, 288)),
        ((3, 192), (3, 224), (3, 256), (3, 288)),
        96,
        60,
        50,
        3,
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Profile this machine and write its device profile; return the exit code (2: bad input)."""
    try:
        args = _parser().parse_args(argv)
        grid, n_fit, n_eval = _check_args(args)
    except InputError as err:
        return refuse(err)

    import torch

    from nas.hw import accuracy, fit_host_predictor, measure_samples, write_device_profile

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    start = time.monotonic()
    try:
        fit = _fit_samples(grid, n_fit)
    except InputError as err:
        return refuse(err)
    timing = {"threads": args.threads, "repeats": grid.repeats, "rounds": grid.rounds}
    held_out = _held_out(grid, n_eval)
    # One pool, timed in random order: load drifts hit fitted and held-out nets alike.
    measure_samples([*fit, *held_out], passes=2, progress=_bar("networks"), **timing)
    device = args.device or args.out.stem
    predictor = fit_host_predictor(fit, device=device)
    if n_eval > 0:
        predictor.metrics["held_out"] = accuracy(predictor, held_out)
        predictor.metrics["held_out_1ms"] = accuracy(predictor, held_out, min_ms=1.0)
    predictor.metrics["profile_seconds"] = round(time.monotonic() - start, 1)
    write_device_profile(
        predictor,
        args.out,
        provenance={
            "method": "python -m nas.profile_hw: per-kind NNLS on whole deployed networks "
            f"({n_fit} random mbconv/tiny networks at inputs {list(grid.fit_sizes)}; "
            "ONNX Runtime CPU, int8 kernels at 8 bits, fp32 otherwise)",
            **timing,
            "torch": torch.__version__,
            "onnxruntime": _ort_version(),
            "date": date.today().isoformat(),
        },
    )
    _summary(predictor.metrics, n_fit, n_eval, args.out)
    return 0


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m nas.profile_hw", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="device profile JSON to write")
    parser.add_argument("--quick", action="store_true", help="fewer networks, about 2 minutes")
    parser.add_argument("--grid", choices=tuple(GRIDS), default=None)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (1)")
    parser.add_argument("--n-fit", type=int, default=None, help="networks to fit on (>= 6)")
    parser.add_argument("--n-eval", type=int, default=None, help="held-out networks to report")
    parser.add_argument("--device", default=None, help="device name (default: --out's stem)")
    return parser


def _check_args(args: Namespace) -> tuple[Grid, int, int]:
    """The grid and network counts the command line asks for; InputError if it is wrong."""
    require(
        not (args.quick and args.grid not in (None, "quick")),
        f"--quick and --grid {args.grid} disagree; give one of them",
    )
    grid = GRIDS[args.grid or ("quick" if args.quick else "full")]
    n_fit = grid.n_fit if args.n_fit is None else args.n_fit
    n_eval = grid.n_eval if args.n_eval is None else args.n_eval
    cores = _cores()
    require(
        1 <= args.threads <= cores,
        f"--threads={args.threads} must be in [1, {cores}] (this machine's cores): "
        "more threads than cores would time contention, not the device",
    )
    require(n_fit >= MIN_FIT, f"--n-fit={n_fit} must be >= {MIN_FIT}")
    require(n_eval >= 0, f"--n-eval={n_eval} must be >= 0")
    require(
        args.device is None or args.device.strip() != "",
        "--device is empty; give a name, or leave it out to use --out's file name",
    )
    check_output_file(args.out)
    return grid, n_fit, n_eval


def _fit_samples(grid: Grid, n_fit: int) -> list[Any]:
    """The networks to fit on; InputError if they hold too few fp32 ones to fit a model."""
    from nas.hw import sample_networks

    def draw(n: int) -> list[Any]:
        return sample_networks(n, seed=1, sizes=grid.fit_sizes, spaces=("mbconv", "tiny"))

    fit = draw(n_fit)
    if sum(not s.int8 for s in fit) >= MIN_FP32:
        return fit
    # The draw is seeded and each network's compression is drawn in order, so a larger
    # --n-fit keeps these networks and adds more: find the smallest that fits.
    more = draw(n_fit + 64)
    enough = next(
        (n for n in range(n_fit, len(more) + 1) if sum(not s.int8 for s in more[:n]) >= MIN_FP32),
        len(more),
    )
    raise InputError(
        f"--n-fit={n_fit} draws {sum(not s.int8 for s in fit)} networks with fp32 kernels; "
        f"the fp32 model needs {MIN_FP32}: use --n-fit {enough} or more"
    )


def _held_out(grid: Grid, n_eval: int) -> list[Any]:
    from nas.hw import sample_networks

    return sample_networks(n_eval, seed=2, sizes=grid.eval_sizes) if n_eval else []


def _summary(m: dict[str, Any], n_fit: int, n_eval: int, out: Path) -> None:
    print(f"profiled {n_fit} networks in {m['profile_seconds']} s")
    if n_eval > 0:
        for key in ("held_out", "held_out_1ms"):
            h = m[key]
            if h["n"]:
                print(
                    f"{key}: {h['n']} random mbconv networks: within +-10% "
                    f"{100 * h['within_10pct']:.0f}%, Spearman {h['spearman']:.3f}; noise "
                    f"ceiling (measured twice) within +-10% {100 * h['noise_within_10pct']:.0f}%"
                )
    print(f"wrote {out}; use it with: python -m nas.search +hw=custom hw.profile={out}")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _bar(label: str):
    def show(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)

    return show


if __name__ == "__main__":
    sys.exit(main())
