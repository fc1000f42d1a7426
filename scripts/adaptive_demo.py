"""An adaptive model serving while its budget changes: it switches operating points.

    python scripts/adaptive_demo.py outputs/bench_adaptive/adaptive   # an export --adaptive DIR

A loop serves the search's test images in batches through one
``search_spaces.AdaptiveModel``, in phases: a latency target stepped down and up again,
then the threads available cut from 2 to 1 and restored. At each phase it asks
``select(latency_ms=target, device=...)`` for the most accurate point that fits (the
smallest when none does), switches to it in place, and measures what it serves. The
latencies it selects by are measured here first, per point and thread count (median of
repeats after a warm-up), since the package's own are the search's target device's.

Prints one row per phase (point, target, measured latency per batch, accuracy, switch
time); writes the plot (``--png``, the README's) and the figures (``--json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from nas.config import DatasetConfig
from nas.pipeline import load_splits
from search_spaces import AdaptiveModel

ROOT = Path(__file__).resolve().parents[1]


def _phases(
    model: AdaptiveModel, host: dict[int, dict[str, float]]
) -> list[tuple[str, float, int]]:
    """(label, latency target in ms, threads): targets halfway between the measured
    latencies (2 threads) of neighbouring points at least 10% apart, stepped down and
    back up; then a target the largest point just meets with 2 threads, served with 1
    thread and then 2 again."""
    lat = sorted(host[2].values())
    distinct = [lat[0]]
    for x in lat[1:]:
        if x > distinct[-1] * 1.1:
            distinct.append(x)
    down = sorted(((a + b) / 2 for a, b in zip(distinct, distinct[1:], strict=False)), reverse=True)
    steps = [("no limit", float("inf"), 2)]
    steps += [(f"target {t:.2f} ms", t, 2) for t in down]
    steps += [(f"target {t:.2f} ms", t, 2) for t in reversed(down[:-1])]
    top = max(host[2].values()) * 1.05
    steps += [(f"target {top:.2f} ms, 2 threads", top, 2),
              (f"target {top:.2f} ms, 1 thread", top, 1),
              (f"target {top:.2f} ms, 2 threads", top, 2)]  # fmt: skip
    return steps


def _serve(
    model: AdaptiveModel, images: torch.Tensor, labels: torch.Tensor, batch: int, batches: int
) -> tuple[list[float], float]:
    """Milliseconds per batch and the accuracy over ``batches`` batches (after two
    untimed warm-up batches)."""
    times, correct, seen = [], 0, 0
    with torch.inference_mode():
        for _ in range(2):  # warm-up: the first calls of a new point allocate
            model(images[:batch])
        for b in range(batches):
            lo = (b * batch) % max(len(images) - batch, 1)
            x, y = images[lo : lo + batch], labels[lo : lo + batch]
            start = time.perf_counter()
            pred = model(x).argmax(1)
            times.append((time.perf_counter() - start) * 1e3)
            correct += int((pred == y).sum())
            seen += len(y)
    return times, correct / seen


def run(package_dir: Path, *, batch: int, batches: int) -> dict[str, Any]:
    record = json.loads((package_dir / "adaptive.json").read_text())
    splits = load_splits(DatasetConfig(**record["dataset"]), seed=int(record["seed"]))
    images, labels = splits.test.x, splits.test.y
    model = AdaptiveModel.load(package_dir / "adaptive.dsza", cache=len(record["points"]))
    host: dict[int, dict[str, float]] = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        host[threads] = model.measure_latency(images[:batch], device=f"host{threads}t")
    phases = []
    for label, target, threads in _phases(host):
        torch.set_num_threads(threads)
        device = f"host{threads}t"
        point = model.select(latency_ms=target, device=device) or model.points[0]
        start = time.perf_counter()
        model.switch(point)
        switch_ms = (time.perf_counter() - start) * 1e3
        times, acc = _serve(model, images, labels, batch, batches)
        phases.append({
            "phase": label, "target_ms": None if target == float("inf") else target,
            "threads": threads, "point": point.name, "switch_ms": switch_ms,
            "latency_ms_median": statistics.median(times), "latency_ms": times,
            "accuracy": acc, "size_bytes": point.size_bytes,
        })  # fmt: skip
        print(
            f"{label:<28} {point.name:<4} {statistics.median(times):7.2f} ms/batch  "
            f"acc {acc:.4f}  {point.size_bytes:>8,} B  switch {switch_ms:6.1f} ms"
        )
    return {"batch": batch, "batches_per_phase": batches, "host_latency_ms": host,
            "phases": phases}  # fmt: skip


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), dpi=120, sharex=True)
    x0 = 0
    for i, ph in enumerate(result["phases"]):
        xs = list(range(x0, x0 + len(ph["latency_ms"])))
        top.plot(xs, ph["latency_ms"], lw=0.8, c=f"C{int(ph['point'][1:]) % 10}")
        if ph["target_ms"] is not None:
            top.hlines(ph["target_ms"], xs[0], xs[-1], colors="k", linestyles="--", lw=0.8)
        bottom.hlines(ph["accuracy"], xs[0], xs[-1], colors=f"C{int(ph['point'][1:]) % 10}", lw=3)
        label = f" {ph['point']}" + (" 1t" if ph["threads"] == 1 else "")
        bottom.text(xs[0], ph["accuracy"], label, fontsize=7, va="bottom")
        if i:
            for ax in (top, bottom):
                ax.axvline(x0, c="#bbb", lw=0.5)
        x0 += len(xs)
    top.set_ylabel(f"ms per batch of {result['batch']}")
    top.set_title("One adaptive model: latency target stepped down and up, then 1 thread")
    bottom.set_ylabel("test accuracy")
    bottom.set_xlabel("batch served")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("package_dir", type=Path, help="a folder nas.export --adaptive wrote")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batches", type=int, default=30, help="batches served per phase")
    p.add_argument("--png", type=Path, default=ROOT / "docs" / "adaptive_demo.png")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if not (args.package_dir / "adaptive.dsza").is_file():
        print(f"error: {args.package_dir} has no adaptive.dsza (run nas.export --adaptive)",
              file=sys.stderr)  # fmt: skip
        return 2
    result = run(args.package_dir, batch=args.batch, batches=args.batches)
    plot(result, args.png)
    print(f"wrote {args.png}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
