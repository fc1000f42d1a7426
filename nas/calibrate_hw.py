"""Calibrate a latency model to a new device from 10-50 measured networks.

Usage:
    python -m nas.calibrate_hw measurements.csv --out my_device.json [--space fbnet]
        [--image-size 32] [--in-chans 3] [--num-classes 100] [--device NAME]
    python -m nas.search +hw=custom hw.profile=my_device.json

``measurements.csv`` has one row per measured network (batch 1, median of repeats):

    arch,ms
    "{""ops"": [""k3_e1"", ""skip"", ...]}",12.3

``arch`` is an architecture of the search space as JSON (``{"ops": [22 op names]}``
for ``fbnet``; ``{"width_mult": ..., "depths": ..., ...}`` for ``mbconv``), ``ms``
its measured latency; an optional ``space`` column overrides ``--space`` per row.
The new device is fitted as a non-negative combination of the shipped devices'
latency models (``nas/hw/_calibrate.py``) and written as a device profile.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from datetime import date
from pathlib import Path

from nas._cli import (
    InputError,
    OneLineParser,
    check_input_file,
    check_output_file,
    refuse,
    require,
)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Calibrate a device from measured networks; return the exit code (2: bad input)."""
    try:
        args = _parser().parse_args(argv)
        _check_args(args)
    except InputError as err:
        return refuse(err)

    import torch

    from nas.hw import (
        calibrate_predictor,
        known_predictors,
        list_latency_devices,
        read_measurements,
        write_device_profile,
    )

    torch.set_num_threads(1)
    device = args.device or args.out.stem
    try:
        _check_devices(args.exclude, list_latency_devices())
        meas = read_measurements(
            args.measurements,
            space=args.space,
            image_size=args.image_size,
            in_chans=args.in_chans,
            num_classes=args.num_classes,
        )
        known = known_predictors(exclude=[device, *args.exclude])
        predictor = calibrate_predictor(meas.features, meas.latency_ms, device=device, known=known)
    except (InputError, ValueError, KeyError) as err:
        return refuse(err)
    write_device_profile(
        predictor,
        args.out,
        provenance={
            "method": "python -m nas.calibrate_hw: " + predictor.metrics["method"],
            "measurements": str(args.measurements),
            "space": args.space,
            "input": [1, args.in_chans, args.image_size, args.image_size],
            "known_devices": sorted(known),
            "date": date.today().isoformat(),
        },
    )
    m = predictor.metrics
    weights = ", ".join(f"{k} {w:.3g}" for k, w in sorted(m["weights"].items()))
    print(
        f"calibrated {device!r} on {m['n_measurements']} networks: leave-one-out "
        f"Spearman {m['loo_spearman']:.3f}, MAPE {100 * m['loo_mape']:.1f}%; "
        f"weights: {weights or 'none'}"
    )
    print(f"wrote {args.out}; use it with: python -m nas.search +hw=custom hw.profile={args.out}")
    return 0


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m nas.calibrate_hw", description=__doc__.split("\n\n")[0])
    parser.add_argument("measurements", type=Path, help="CSV with columns arch (JSON), ms")
    parser.add_argument("--out", type=Path, required=True, help="device profile JSON to write")
    parser.add_argument("--space", default="fbnet", help="search space of the archs (fbnet)")
    parser.add_argument("--image-size", type=int, default=32, help="input side in px (32)")
    parser.add_argument("--in-chans", type=int, default=3, help="input channels (3)")
    parser.add_argument("--num-classes", type=int, default=100, help="classifier outputs (100)")
    parser.add_argument("--device", default=None, help="device name (default: --out's stem)")
    parser.add_argument(
        "--exclude", nargs="*", default=[], help="known devices not to use (e.g. the same one)"
    )
    return parser


def _check_args(args: Namespace) -> None:
    """Everything the command line names, before torch is imported."""
    from search_spaces import list_search_spaces

    check_input_file(args.measurements, "measurements file")
    check_output_file(args.out)
    spaces = list_search_spaces()
    require(args.space in spaces, f"--space={args.space!r} is unknown; known: {', '.join(spaces)}")
    for flag in ("image_size", "in_chans", "num_classes"):
        value = getattr(args, flag)
        require(value >= 1, f"--{flag.replace('_', '-')}={value} must be >= 1")
    require(
        args.device is None or args.device.strip() != "",
        "--device is empty; give a name, or leave it out to use --out's file name",
    )


def _check_devices(exclude: list[str], known: list[str]) -> None:
    unknown = [d for d in exclude if d not in known]
    require(
        not unknown,
        f"--exclude {' '.join(unknown)}: not a known device; known: {', '.join(sorted(known))}",
    )


if __name__ == "__main__":
    sys.exit(main())
