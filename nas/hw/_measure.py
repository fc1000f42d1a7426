"""Wall-clock latency of a model on this machine's CPU (or the model's device)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["measure_latency_ms"]


def measure_latency_ms(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 30,
) -> tuple[float, float]:
    """Median latency of one forward pass, and its spread.

    Runs under ``torch.inference_mode`` in eval mode with ``threads`` intra-op
    threads; the previous thread count and the model's mode are restored. On a
    CUDA model each pass is synchronised so the time covers the kernels.

    Args:
        model: the network to time.
        input_shape: full input shape including batch, normally ``(1, C, H, W)``.
        threads: intra-op CPU threads while timing.
        warmup: untimed passes first (allocator, caches, lazy init).
        repeats: timed passes.

    Returns:
        ``(median_ms, spread)`` where spread is the interquartile range over the median.
    """
    if threads < 1 or warmup < 0 or repeats < 1:
        raise ValueError(
            f"threads={threads}, warmup={warmup}, repeats={repeats} invalid; need threads >= 1, "
            "warmup >= 0, repeats >= 1"
        )
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    x = torch.randn(tuple(input_shape), device=device)
    previous_threads = torch.get_num_threads()
    was_training = model.training
    times = []
    try:
        torch.set_num_threads(threads)
        model.eval()
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            sync()
            for _ in range(repeats):
                start = time.perf_counter()
                model(x)
                sync()
                times.append((time.perf_counter() - start) * 1e3)
    finally:
        torch.set_num_threads(previous_threads)
        model.train(was_training)
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return float(median), float((q3 - q1) / median)
