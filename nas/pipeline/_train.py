"""The one training loop. Compression plugs in through ``loss_fn`` and the model's
own parametrizations (masks, fake quantization); it never brings a second loop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nas.pipeline._data import Batches

__all__ = ["TrainFailed", "TrainStats", "TrialTimeout", "accuracy", "predict", "train"]

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(logits, targets, inputs) -> loss; inputs let a distillation loss query a teacher."""


class TrainFailed(RuntimeError):
    """Training diverged (NaN or inf loss); the trial is recorded as failed."""


class TrialTimeout(TimeoutError):
    """The trial ran past ``search.trial_timeout_s``."""


@dataclass
class TrainStats:
    seconds: float
    steps: int
    final_loss: float


def train(
    model: nn.Module,
    batches: Batches,
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    loss_fn: LossFn | None = None,
    deadline: float | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainStats:
    """Train ``model`` in place with AdamW and a one-cycle schedule.

    Args:
        loss_fn: replaces cross-entropy (e.g. a distillation loss).
        deadline: ``time.monotonic()`` value past which :class:`TrialTimeout` is raised.
        on_epoch: called with (epoch, mean loss) after each epoch.
        on_step: called with (step, total steps) after each optimizer step, steps
            counted from 1 (e.g. :class:`compress.GradualPruner` tightening masks).
    """
    start = time.monotonic()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    total = max(1, epochs * len(batches))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=total, pct_start=0.25, anneal_strategy="cos"
    )
    model.train()
    steps, loss_value = 0, float("nan")
    for epoch in range(epochs):
        running, n = 0.0, 0
        for x, y in batches:
            logits = model(x)
            if loss_fn is None:
                loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
            else:
                loss = loss_fn(logits, y, x)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise TrainFailed(f"loss became {loss_value} at step {steps} (epoch {epoch})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            steps += 1
            if on_step is not None:
                on_step(steps, total)
            running += loss_value
            n += 1
            if deadline is not None and time.monotonic() > deadline:
                raise TrialTimeout(
                    f"trial exceeded search.trial_timeout_s during training (epoch {epoch})"
                )
        if on_epoch is not None:
            on_epoch(epoch, running / max(n, 1))
    model.eval()
    return TrainStats(seconds=time.monotonic() - start, steps=steps, final_loss=loss_value)


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Predicted class of every row of ``x`` (model in eval mode)."""
    model.eval()
    out = [model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` classified as ``y``, in [0, 1]."""
    return float((predict(model, x) == y).float().mean())
