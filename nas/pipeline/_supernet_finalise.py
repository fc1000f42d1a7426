"""How a supernet search's finalist trains: from its inherited weights, compressed as
the candidate says, distilled from the largest sub-network, for as long as its val
accuracy still improves (up to ``strategy.finetune_epochs``), keeping its best weights.

A fixed few epochs left wide finalists short of what scratch training reaches (0.972
against 0.982-0.986 val in docs/bench/search_supernet.json before this), while small
ones had stopped improving: training until val accuracy stops improving spends the
budget where it still pays.

It trains in rounds of ``finetune_patience`` epochs, each a whole one-cycle schedule
(warm-up, then annealed to nothing: warm restarts, as SGDR), and val accuracy is
measured after each round. One schedule over the most epochs, judged every epoch,
stopped finalists at its learning-rate peak: inherited weights are good, the first
epochs at the peak lower val accuracy, and two such epochs ended the training before
it annealed (measured on the issue-24 benchmark's first run: finalists kept their
inherited weights after 2 epochs). Judged at the end of a round, the weights compared
are always annealed ones.

The inherited weights are never kept when there is training to do: the first round
always trains, and rounds are compared with rounds only. A finalist was chosen because
its inherited val accuracy was the best of thousands of estimates on the same 500 val
images, so that figure is biased upward, and a trained round rarely beat it. Measured on
docs/bench/search_supernet.json at b8c3524, seed 0: 13 of 22 finalists kept their
inherited weights after one round, and its front lost 2.8 points from val to test on
average (0.980 val, 0.950 test at the top), where scratch training's lost 1.8 on that
seed. Re-measured at 450a64f with this rule: 1.7 (scratch 2.0).

No round starts that would end past the search's budget, judged by the length of the
round before it: the last finalist of a search ran to its plateau, 11-49 s past the
1,800 s budget at 13ca037, where a scratch search ends within 10 s of it. A round cut
so keeps the best round's weights, as a plateau does.
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
    """The epoch whose weights were kept (0: the inherited ones, only when
    ``max_epochs`` is 0)."""
    best_val: float
    inherited_val: float
    cut: bool
    """Whether it stopped at ``ends`` (the search's budget) rather than a plateau or
    ``max_epochs``."""
    """Val accuracy of the inherited weights, compressed, before any training: the
    selection-biased figure the finalist was chosen by, kept to measure that bias."""


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
    ends: float | None = None,
) -> Finetuned:
    """Train ``model`` (already compressed) in rounds of ``patience`` epochs, each a
    one-cycle schedule peaking at ``lr``, until a round ends below the best round's
    val accuracy or ``max_epochs`` are spent; restore the best round's weights. The
    inherited weights are kept only when ``max_epochs`` is 0 (see the module's note).
    A tie counts as no worse and keeps training: 500 val images tie often, and the
    later weights have trained longer. ``ends`` (``time.monotonic()``): no round starts
    that, as long as the one before it, would end after it; the first always runs."""
    start = time.monotonic()
    inherited_val = best_val = accuracy(model, splits.val)
    best_state = None
    best_epoch, ran, cut, took = 0, 0, False, 0.0
    batches = splits.train.batches(batch_size, shuffle=True, seed=seed)
    while ran < max_epochs:
        if ran and ends is not None and time.monotonic() + took > ends:
            cut = True
            break
        round_start = time.monotonic()
        epochs = min(patience, max_epochs - ran)
        train(model, batches, epochs=epochs, lr=lr, weight_decay=0.0, loss_fn=loss_fn,
              deadline=deadline, placing=placing)  # fmt: skip
        ran += epochs
        val = accuracy(model, splits.val)
        took = time.monotonic() - round_start
        if best_state is not None and val < best_val:
            break
        best_val, best_epoch = val, ran
        best_state = copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    model.cpu().eval()
    return Finetuned(model, time.monotonic() - start, ran, best_epoch, best_val, inherited_val, cut)
