"""A finalist trains in rounds until its val accuracy stops improving and keeps its best."""

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
    monkeypatch: pytest.MonkeyPatch, vals: list[float], *, max_epochs: int, patience: int,
    ends: float | None = None,
) -> tuple[finalise.Finetuned, list[torch.Tensor], list[int]]:  # fmt: skip
    """``vals``: val accuracy before training, then after each round. The clock starts
    at 0 and each round takes 10 s of it."""
    model = nn.Linear(4, 3)
    clock = [0.0]
    monkeypatch.setattr(finalise, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    snapshots: list[torch.Tensor] = []
    rounds: list[int] = []
    real_train = finalise.train

    def fake_accuracy(m: nn.Module, data: Any) -> float:
        snapshots.append(m.get_parameter("weight").detach().clone())
        return vals[len(snapshots) - 1]

    def counting_train(*args: Any, **kwargs: Any) -> Any:
        rounds.append(kwargs["epochs"])
        clock[0] += 10.0
        return real_train(*args, **kwargs)

    monkeypatch.setattr(finalise, "accuracy", fake_accuracy)
    monkeypatch.setattr(finalise, "train", counting_train)
    out = finalise.finetune_until_plateau(
        model, _splits(), max_epochs=max_epochs, patience=patience, lr=0.1, batch_size=8,
        loss_fn=None, seed=0, deadline=None, placing=Placing(), ends=ends,
    )  # fmt: skip
    return out, snapshots, rounds


def test_it_stops_at_the_first_round_below_the_best_and_keeps_the_best(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Inherited 0.5; rounds of 2 epochs: 0.6, 0.7, then 0.65 (below: stop).
    out, snaps, rounds = _run(monkeypatch, [0.5, 0.6, 0.7, 0.65, 0.9], max_epochs=10, patience=2)
    assert rounds == [2, 2, 2]  # each round a whole schedule of `patience` epochs
    assert (out.epochs, out.best_epoch, out.best_val) == (6, 4, 0.7)
    torch.testing.assert_close(out.model.get_parameter("weight"), snaps[2])
    assert not out.model.training


def test_a_tie_keeps_training_up_to_the_most_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    out, snaps, rounds = _run(monkeypatch, [0.5, 0.7, 0.7, 0.7], max_epochs=5, patience=2)
    assert rounds == [2, 2, 1]  # the last round is what is left of max_epochs
    assert (out.epochs, out.best_epoch) == (5, 5)
    torch.testing.assert_close(out.model.get_parameter("weight"), snaps[3])


def test_the_inherited_weights_are_not_kept_even_when_no_round_beats_their_val(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The inherited 0.9 is the selection-biased figure the finalist was chosen by: the
    # first round always trains, and the second (below the first) stops it.
    out, snaps, rounds = _run(monkeypatch, [0.9, 0.5, 0.4], max_epochs=10, patience=2)
    assert rounds == [2, 2]
    assert (out.epochs, out.best_epoch, out.best_val, out.inherited_val) == (4, 2, 0.5, 0.9)
    torch.testing.assert_close(out.model.get_parameter("weight"), snaps[1])


def test_no_epochs_keeps_the_inherited_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    out, snaps, rounds = _run(monkeypatch, [0.9], max_epochs=0, patience=2)
    assert rounds == []
    assert (out.epochs, out.best_epoch, out.best_val) == (0, 0, 0.9)
    torch.testing.assert_close(out.model.get_parameter("weight"), snaps[0])


@pytest.mark.parametrize(("ends", "want_rounds"), [(35.0, 3), (30.0, 3), (29.0, 2), (5.0, 1)])
def test_no_round_starts_that_would_end_past_the_searchs_end(
    monkeypatch: pytest.MonkeyPatch, ends: float, want_rounds: int
) -> None:
    """Rounds of 10 s, still improving: a round starts only if one as long as the last
    ends by ``ends``; the first always runs, and the best round's weights are kept."""
    vals = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    out, snaps, rounds = _run(monkeypatch, vals, max_epochs=10, patience=2, ends=ends)
    assert len(rounds) == want_rounds and out.cut
    assert (out.epochs, out.best_epoch, out.best_val) == (2 * want_rounds, 2 * want_rounds,
                                                          vals[want_rounds])  # fmt: skip
    torch.testing.assert_close(out.model.get_parameter("weight"), snaps[want_rounds])


def test_a_plateau_before_the_end_is_not_a_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    out, _, rounds = _run(monkeypatch, [0.5, 0.6, 0.55], max_epochs=10, patience=2, ends=1e9)
    assert rounds == [2, 2] and not out.cut
