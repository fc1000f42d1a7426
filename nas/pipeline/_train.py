"""The one training loop. Compression plugs in through ``loss_fn`` and the model's
own parametrizations (masks, fake quantization); it never brings a second loop."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nas.pipeline._data import DataPart
from nas.pipeline._device import autocast
from nas.pipeline._errors import TrainFailed, TrialTimeout
from nas.pipeline._stream import augment_batch, drop_unreadable, shift_batch

__all__ = [
    "Placing",
    "TrainStats",
    "accuracy",
    "model_device",
    "predict",
    "predict_labeled",
    "prepare_batch",
    "readable_accuracy",
    "step_seconds",
    "train",
]

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(logits, targets, inputs) -> loss; inputs let a distillation loss query a teacher."""


_MIN_ONE_CYCLE_STEPS = 4  # OneCycleLR at pct_start 0.25 needs more steps than this


@dataclass
class TrainStats:
    seconds: float
    steps: int
    final_loss: float
    # Streamed images a loader worker could not read, dropped from their batches.
    skipped: int = 0


@dataclass(frozen=True)
class Placing:
    """Where and how a training runs: ``device``, ``precision`` (fp32, bf16, fp16) and
    whether batches are augmented (seeded by ``seed``): the data set's augmentation, or
    else a shift of up to ``shift`` pixels (``shift_batch``)."""

    device: str = "cpu"
    precision: str = "fp32"
    augment: bool = False
    seed: int = 0
    shift: int = 0

    def augmenting(self) -> tuple[torch.Generator | None, int]:
        """The generator of the augmentation's draws (None: no augmentation) and the
        shift, for :func:`prepare_batch`."""
        shift = 0 if self.augment else self.shift
        on = self.augment or shift > 0
        return (torch.Generator().manual_seed(self.seed) if on else None), shift


def train(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    loss_fn: LossFn | None = None,
    deadline: float | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    placing: Placing | None = None,
) -> TrainStats:
    """Train ``model`` in place with AdamW and a one-cycle schedule.

    Args:
        loss_fn: replaces cross-entropy (e.g. a distillation loss).
        deadline: ``time.monotonic()`` value past which :class:`TrialTimeout` is raised.
        on_epoch: called with (epoch, mean loss) after each epoch.
        on_step: called with (step, total steps) after each optimizer step, steps
            counted from 1 (e.g. :class:`compress.GradualPruner` tightening masks).
        placing: the device (``model`` is moved there and stays), the precision
            (autocast; fp16 scales the loss) and augmentation; None: CPU, fp32, none.
    """
    start = time.monotonic()
    place = placing or Placing()
    model.to(place.device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler(place.device.split(":")[0], enabled=place.precision == "fp16")
    total = max(1, epochs * len(batches))  # type: ignore[arg-type]
    augment_gen, shift = place.augmenting()
    sched = _one_cycle(opt, lr, total)
    model.train()
    steps, loss_value, skipped = 0, float("nan"), 0
    for epoch in range(epochs):
        running, n = 0.0, 0
        for x, y in batches:
            x, y, dropped = prepare_batch(x, y, place.device, augment_gen, shift)
            skipped += dropped
            with autocast(place.device, place.precision):
                logits = model(x)
                loss = (
                    F.cross_entropy(logits, y, label_smoothing=label_smoothing)
                    if loss_fn is None
                    else loss_fn(logits, y, x)
                )
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):  # the first bad step, before it is taken
                raise TrainFailed(f"loss became {loss_value} at step {steps} (epoch {epoch})")
            opt.zero_grad(set_to_none=True)
            _step(loss, opt, scaler, sched)
            steps += 1
            if on_step is not None:
                on_step(steps, total)
            running, n = running + loss_value, n + 1
            if deadline is not None and time.monotonic() > deadline:
                raise TrialTimeout(
                    f"trial exceeded search.trial_timeout_s during training (epoch {epoch})"
                )
        if on_epoch is not None:
            on_epoch(epoch, running / max(n, 1))
    model.eval()
    if skipped:
        print(f"training skipped {skipped} unreadable image(s) (named above)", file=sys.stderr)
    return TrainStats(time.monotonic() - start, steps, loss_value, skipped)


def step_seconds(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, placing: Placing, *, repeats: int = 3
) -> float:
    """The fastest of ``repeats`` forward and backward passes of ``model`` on ``(x, y)``
    where ``placing`` trains (a GPU's queued work included); ``model`` stays there."""
    model.to(placing.device)
    x, y = x.to(placing.device), y.to(placing.device)
    model.train()
    times = []
    for _ in range(repeats):
        t0 = time.monotonic()
        with autocast(placing.device, placing.precision):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        if placing.device.startswith("cuda"):
            torch.cuda.synchronize(torch.device(placing.device))
        times.append(time.monotonic() - t0)
    model.zero_grad(set_to_none=True)
    model.eval()
    return min(times)


def _step(
    loss: torch.Tensor,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    sched: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """One optimizer step (the scaler is a pass-through unless at fp16)."""
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    sched.step()


def _one_cycle(
    opt: torch.optim.Optimizer, lr: float, total: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A one-cycle schedule over ``total`` steps; a flat lr when there are too few steps
    for its phases (torch's OneCycleLR then divides by zero)."""
    if total > _MIN_ONE_CYCLE_STEPS:
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=total, pct_start=0.25, anneal_strategy="cos"
        )
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _step: 1.0)


def prepare_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    device: str,
    augment_gen: torch.Generator | None,
    shift: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A training batch on ``device``: unreadable images (label -1) dropped and counted,
    then augmented when ``augment_gen`` is given (every training loop's first step): the
    data set's augmentation, or with ``shift`` a shift of up to that many pixels."""
    if device != "cpu":
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    x, y, dropped = drop_unreadable(x, y)
    if augment_gen is not None:
        x = shift_batch(x, shift, augment_gen) if shift else augment_batch(x, augment_gen)
    return x, y, dropped


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters are (the CPU for a model without any)."""
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.inference_mode()
def predict_labeled(
    model: nn.Module, data: torch.Tensor | DataPart, *, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Predicted classes of ``data`` on the CPU, on ``model``'s device, and, for a part,
    the labels in the same order (-1 where a streamed image could not be read)."""
    model.eval()
    device = model_device(model)
    preds, labels = [], []
    if isinstance(data, torch.Tensor):
        chunks: Iterable[tuple[torch.Tensor, torch.Tensor | None]] = (
            (data[i : i + batch_size], None) for i in range(0, len(data), batch_size)
        )
    else:
        chunks = data.batches(batch_size)
    for x, y in chunks:
        preds.append(model(x.to(device, non_blocking=True)).argmax(1).cpu())
        if y is not None:
            labels.append(y)
    pred = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)
    return pred, (torch.cat(labels) if labels else None)


def predict(
    model: nn.Module, data: torch.Tensor | DataPart, *, batch_size: int = 512
) -> torch.Tensor:
    """Predicted class of every image of ``data`` (model in eval mode, on its device)."""
    return predict_labeled(model, data, batch_size=batch_size)[0]


def accuracy(
    model: nn.Module, data: torch.Tensor | DataPart, y: torch.Tensor | None = None
) -> float:
    """Fraction of ``data`` classified as its labels (``y`` for a tensor; a part's own,
    counting only the images that could be read), in [0, 1]."""
    pred, labels = predict_labeled(model, data)
    target = y if labels is None else labels
    if target is None:
        raise ValueError("accuracy of a tensor of images needs its labels y")
    return readable_accuracy(pred, target)[0]


def readable_accuracy(pred: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    """``(accuracy, unreadable)``: the fraction of ``pred`` equal to ``labels`` over the
    images that could be read, and how many could not (label -1)."""
    keep = labels >= 0
    return float((pred[keep] == labels[keep]).float().mean()), int((~keep).sum())
