"""Latency of a PyTorch model on this machine: its CPU (wall clock) or a GPU (CUDA events).

The repeat logic is one function, ``median_latency_ms(run, timer=...)``: untimed
warm-up passes, timed repeats, their median. What differs between devices is only the
timer that times one pass: ``wall_clock_timer`` on the CPU, ``cuda_event_timer`` on a
GPU, where kernels run asynchronously and a host clock would time their launch.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "Timer",
    "cuda_event_timer",
    "measure_latency_ms",
    "median_latency_ms",
    "wall_clock_timer",
]

Timer = Callable[[Callable[[], object]], float]
"""Times one call of ``run`` in ms, with the work it queued finished."""


def wall_clock_timer(run: Callable[[], object]) -> float:
    """``run()``'s wall-clock time in ms (``time.perf_counter``); for the CPU."""
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e3


def cuda_event_timer(device: torch.device | str) -> Timer:
    """A timer of ``run()`` on ``device``'s current stream between two CUDA events, in ms.

    The events are recorded on the GPU around the kernels ``run`` queues, and
    ``torch.cuda.synchronize`` waits for the end event, so the time is the kernels'
    (launch gaps included), not the host's.
    """

    def timer(run: Callable[[], object]) -> float:
        with torch.cuda.device(device):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            torch.cuda.synchronize(device)
            return float(start.elapsed_time(end))

    return timer


def median_latency_ms(
    run: Callable[[], object],
    *,
    timer: Timer = wall_clock_timer,
    warmup: int = 10,
    repeats: int = 30,
) -> tuple[float, float]:
    """Median time of ``run()`` over ``repeats`` timed calls after ``warmup`` untimed ones.

    Warm-up calls go through ``timer`` too (their times dropped), so they pay the same
    synchronisation as the timed ones and the first timed call starts on an idle device.

    Returns:
        ``(median_ms, spread)`` where spread is the interquartile range over the median
        (0 when the median is 0).
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(
            f"warmup={warmup}, repeats={repeats} invalid; need warmup >= 0, repeats >= 1"
        )
    for _ in range(warmup):
        timer(run)
    times = [timer(run) for _ in range(repeats)]
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return float(median), float((q3 - q1) / median) if median > 0 else 0.0


def measure_latency_ms(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 30,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    """Median latency of one forward pass of a batch of ``input_shape``, and its spread.

    Runs under ``torch.inference_mode`` in eval mode with ``threads`` intra-op
    threads; the previous thread count and the model's mode are restored. On the CPU
    each pass is timed by the wall clock; on a CUDA device by a pair of CUDA events
    (``cuda_event_timer``). The time is per batch: at ``input_shape[0] == 8`` it is
    the time of one pass over 8 inputs, not per input.

    Args:
        model: the network to time; left where it is (a copy is timed on ``device``).
        input_shape: full input shape including batch, normally ``(1, C, H, W)``.
        threads: intra-op CPU threads while timing.
        warmup: untimed passes first (allocator, cuDNN autotuning, lazy init).
        repeats: timed passes.
        device: where to time, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``; ``None``: the
            device of the model's parameters.

    Returns:
        ``(median_ms, spread)`` where spread is the interquartile range over the median.
    """
    if threads < 1:
        raise ValueError(f"threads={threads} invalid; need threads >= 1")
    param = next(model.parameters(), None)
    here = param.device if param is not None else torch.device("cpu")
    target = torch.device(device) if device is not None else here
    if target.type == "cuda" and target.index is None:
        target = torch.device("cuda", torch.cuda.current_device())
    if target != here:
        model = copy.deepcopy(model).to(target)
    timer = cuda_event_timer(target) if target.type == "cuda" else wall_clock_timer
    x = torch.randn(tuple(input_shape), device=target)
    previous_threads = torch.get_num_threads()
    was_training = model.training
    try:
        torch.set_num_threads(threads)
        model.eval()
        with torch.inference_mode():
            return median_latency_ms(lambda: model(x), timer=timer, warmup=warmup, repeats=repeats)
    finally:
        torch.set_num_threads(previous_threads)
        model.train(was_training)
