"""Gradual magnitude pruning (Zhu & Gupta's polynomial schedule) in the training loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import compress
from compress import GradualPruner, PruneConfig, PruneSchedule, QuantConfig
from nas.pipeline import Batches, train


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32),
                         nn.ReLU(), nn.Linear(32, 10))


def _batches() -> Batches:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 1, 8, 8, generator=g)
    return Batches(x, (x.flatten(1)[:, :10].argmax(1)), batch_size=32, shuffle=True)


def _sparsity(model: nn.Module) -> float:
    ws = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_sparsity_follows_the_schedule_and_ends_at_the_target(scope: str) -> None:
    model, batches = _model(), _batches()
    cfg, sched = PruneConfig(sparsity=0.8, scope=scope), PruneSchedule(
        initial_sparsity=0.1, begin=0.2, end=0.6, every=2)
    pruner = GradualPruner(model, cfg, sched)
    assert _sparsity(model) == pytest.approx(0.1, abs=2e-3)
    seen: list[tuple[int, int, float]] = []

    def on_step(step: int, total: int) -> None:
        pruner(step, total)
        seen.append((step, total, _sparsity(model)))

    train(model, batches, epochs=5, lr=1e-2, on_step=on_step)
    total = seen[-1][1]
    assert [s for s, _, _ in seen] == list(range(1, total + 1)) and total == 5 * len(batches)
    for step, _, got in seen:
        last = step - step % 2  # masks move on even steps, and on the step that reaches end
        if step >= 0.6 * total:
            want = 0.8
        else:
            want = sched.sparsity(0.8, last, total) if last else 0.1
        assert got == pytest.approx(want, abs=2e-3), (step, got, want)
    mid = next(s for s, t, _ in seen if s / t >= 0.4)  # progress 0.5 through [0.2, 0.6]
    assert sched.sparsity(0.8, mid, total) == pytest.approx(0.8 - 0.7 * 0.5**3, abs=0.02)
    assert pruner.sparsity == 0.8
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    n = sum(m.weight.numel() for m in layers)
    assert sum(int((m.weight == 0).sum()) for m in layers) == (
        round(0.8 * n) if scope == "global"
        else sum(round(0.8 * m.weight.numel()) for m in layers))


def test_gradual_pruning_with_fake_quant_exports_at_the_final_sparsity(tmp_path) -> None:
    model = _model()
    pruner = GradualPruner(model, PruneConfig(sparsity=0.9), PruneSchedule(end=1.0, every=3))
    compress.apply(model, [QuantConfig(bits=4)])
    train(model, _batches(), epochs=2, lr=1e-2, on_step=pruner)
    stats = compress.stats(model)
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    biases = stats["params"] - weights
    assert stats["nonzero_params"] <= weights - round(0.9 * weights) + biases
    path = tmp_path / "m.dsz"
    compress.export(model, path)
    loaded = compress.load(path, lambda meta: _model())
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_schedule_is_cubic_and_clamped() -> None:
    s = PruneSchedule(initial_sparsity=0.0, begin=0.0, end=0.5)
    assert s.sparsity(0.9, 0, 100) == 0.0
    assert s.sparsity(0.9, 25, 100) == pytest.approx(0.9 * (1 - 0.5**3))
    assert s.sparsity(0.9, 50, 100) == pytest.approx(0.9)
    assert s.sparsity(0.9, 100, 100) == pytest.approx(0.9)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"initial_sparsity": 1.0}, r"initial_sparsity=1\.0 is outside \[0, 1\)"),
    ({"initial_sparsity": -0.1}, r"initial_sparsity=-0\.1"),
    ({"begin": 1.0}, r"begin=1\.0 is outside \[0, 1\)"),
    ({"begin": 0.5, "end": 0.5}, r"end=0\.5 is outside \(begin=0\.5, 1\]"),
    ({"end": 1.5}, r"end=1\.5"),
    ({"every": 0}, r"every=0 must be an int >= 1"),
    ({"every": 2.0}, r"every=2\.0"),
])
def test_bad_schedules_name_the_value(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PruneSchedule(**kwargs)  # type: ignore[arg-type]


def test_initial_above_final_sparsity_is_refused() -> None:
    with pytest.raises(ValueError, match=r"initial_sparsity=0\.5 is above the final sparsity=0\.3"):
        GradualPruner(_model(), PruneConfig(sparsity=0.3), PruneSchedule(initial_sparsity=0.5))
