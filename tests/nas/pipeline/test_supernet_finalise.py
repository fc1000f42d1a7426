"""A finalist trains until its val accuracy stops improving and keeps its best epoch."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from nas.pipeline import _supernet_finalise as finalise
from nas.pipeline._train import Placing


def _splits() -> Any:
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 4, generator=gen), torch.randint(0, 3, (8,), generator=gen))
               for _ in range(3)]  # fmt: skip
    train = SimpleNamespace(batches=lambda batch_size, shuffle, seed: batches)
    return SimpleNamespace(train=train, val="val")


def _run(
    monkeypatch: pytest.MonkeyPatch, vals: list[float], *, max_epochs: int, patience: int
) -> tuple[finalise.Finetuned, list[torch.Tensor]]:
    model = nn.Linear(4, 3)
    snapshots: list[torch.Tensor] = []

    def fake_accuracy(m: nn.Module, data: Any) -> float:
        snapshots.append(m.get_parameter("weight").detach().clone())
        return vals[len(snapshots) - 1]

    monkeypatch.setattr(finalise, "accuracy", fake_accuracy)
    out = finalise.finetune_until_plateau(
        model, _splits(), max_epochs=max_epochs, patience=patience, lr=0.1, batch_size=8,
        loss_fn=None, seed=0, deadline=None, placing=Placing(),
    )  # fmt: skip
    return out, snapshots


def test_it_stops_after_patience_epochs_below_the_best_and_keeps_the_best(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # inherited 0.5; epochs 1-5: 0.6, 0.7, 0.65, 0.6 (two below the best: stop), -
    out, snaps = _run(monkeypatch, [0.5, 0.6, 0.7, 0.65, 0.6, 0.9], max_epochs=10, patience=2)
    assert (out.epochs, out.best_epoch, out.best_val) == (4, 2, 0.7)
    assert len(snaps) == 5  # never the sixth value: training ended
    torch.testing.assert_close(out.model.get_parameter("weight"), snaps[2])
    assert not out.model.training


def test_a_tie_keeps_training_and_takes_the_later_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    out, snaps = _run(monkeypatch, [0.5, 0.7, 0.7, 0.6, 0.7], max_epochs=4, patience=2)
    assert (out.epochs, out.best_epoch) == (4, 4)
    torch.testing.assert_close(out.model.get_parameter("weight"), snaps[4])


def test_no_epoch_better_than_the_inherited_weights_keeps_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, snaps = _run(monkeypatch, [0.9, 0.5, 0.4], max_epochs=5, patience=2)
    assert (out.epochs, out.best_epoch) == (2, 0)
    torch.testing.assert_close(out.model.get_parameter("weight"), snaps[0])
