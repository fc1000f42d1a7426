"""How a supernet search's finalist trains: from its inherited weights, compressed as
the candidate says, distilled from the largest sub-network, for as long as its val
accuracy still improves (up to ``strategy.finetune_epochs``), keeping its best epoch.

A fixed few epochs left wide finalists short of what scratch training reaches (0.972
against 0.982-0.986 val in docs/bench/search_supernet.json before this), while small
ones had stopped improving: training until val accuracy stops improving spends the
budget where it still pays.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

from torch import nn

from nas.pipeline._data import Splits
from nas.pipeline._train import LossFn, Placing, accuracy, train

__all__ = ["Finetuned", "finetune_until_plateau"]


@dataclass
class Finetuned:
    model: nn.Module
    seconds: float
    epochs: int
    """Epochs trained before the plateau (or ``max_epochs``)."""
    best_epoch: int
    """The epoch whose weights were kept (0: the inherited ones)."""
    best_val: float


class _Plateau(Exception):
    """Raised between epochs to end the training once val accuracy stopped improving."""


def finetune_until_plateau(
    model: nn.Module,
    splits: Splits,
    *,
    max_epochs: int,
    patience: int,
    lr: float,
    batch_size: int,
    loss_fn: LossFn | None,
    seed: int,
    deadline: float | None,
    placing: Placing,
) -> Finetuned:
    """Train ``model`` (already compressed) epoch by epoch with the one training loop's
    one-cycle schedule over ``max_epochs``; after each epoch measure val accuracy, and
    stop once ``patience`` epochs in a row fell below the best. A tie counts as no
    worse and moves the kept weights to the later epoch: 500 val images tie often, and
    the later weights have trained longer. The best epoch's weights are restored."""
    start = time.monotonic()
    best_val = accuracy(model, splits.val)
    best_state = copy.deepcopy(model.state_dict())
    best_epoch, ran, worse = 0, 0, 0

    def on_epoch(epoch: int, _loss: float) -> None:
        nonlocal best_val, best_state, best_epoch, ran, worse
        ran = epoch + 1
        val = accuracy(model, splits.val)
        model.train()
        if val >= best_val:
            best_val, best_epoch, worse = val, ran, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            worse += 1
            if worse >= patience:
                raise _Plateau

    batches = splits.train.batches(batch_size, shuffle=True, seed=seed)
    try:
        train(model, batches, epochs=max_epochs, lr=lr, weight_decay=0.0, loss_fn=loss_fn,
              deadline=deadline, on_epoch=on_epoch, placing=placing)  # fmt: skip
    except _Plateau:
        pass
    model.load_state_dict(best_state)
    model.cpu().eval()
    return Finetuned(model, time.monotonic() - start, ran, best_epoch, best_val)
