"""Contract tests every registered technique passes on every model kind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from compress_models import FAST_KINDS, MODEL_KINDS, example_input, fine_tune, make
from torch import nn

import compress
from compress import BITS, ChannelPruneConfig, LowRankConfig, PruneConfig, QuantConfig
from compress._quant import quantize_weight

HERE = Path(__file__).parent


def _input_shape(kind: str) -> tuple[int, ...]:
    return tuple(example_input(kind, batch=1).shape)


# Technique name -> its example config for a model kind (channel pruning traces an input).
EXAMPLES: dict[str, Callable[[str], Any]] = {
    "channel_prune": lambda kind: ChannelPruneConfig(ratio=0.5, input_shape=_input_shape(kind)),
    "lowrank": lambda kind: LowRankConfig(rank_ratio=0.5),
    "prune": lambda kind: PruneConfig(sparsity=0.5),
    "quant": lambda kind: QuantConfig(bits=4),
}

# Loads artifacts in a new interpreter; inputs and outputs travel as .npy.
_LOADER = """
import sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
import compress
from compress_models import build
for stem in sys.argv[2:]:
    model = compress.load(stem + ".dsz", build).eval()
    with torch.no_grad():
        np.save(stem + ".out.npy", model(torch.from_numpy(np.load(stem + ".in.npy"))).numpy())
"""


def _targets(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def test_every_technique_has_an_example() -> None:
    assert set(compress.list_techniques()) == set(EXAMPLES)


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("name", compress.list_techniques())
def test_apply_keeps_a_working_model(name: str, kind: str) -> None:
    model, x = make(kind), example_input(kind)
    out = compress.apply(model, [EXAMPLES[name](kind)])
    assert out is model
    fine_tune(model, x, steps=1)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (x.shape[0], 10) and torch.isfinite(y).all()


def test_every_technique_exports_loads_in_a_fresh_process_and_is_bounded(tmp_path: Path) -> None:
    """Each technique alone, on every model kind, and the structural ones followed by
    prune and quant: the estimate bounds the file, the file gives the same outputs."""
    cases = [(kind, [EXAMPLES[name](kind)]) for name in compress.list_techniques()
             for kind in MODEL_KINDS]
    cases += [(kind, [EXAMPLES[name](kind), PruneConfig(sparsity=0.5), QuantConfig(bits=4)])
              for name in ("channel_prune", "lowrank") for kind in FAST_KINDS]
    expected, stems = [], []
    for i, (kind, cfgs) in enumerate(cases):
        est = compress.estimate_size_bytes(make(kind, seed=100 + i), cfgs, meta={"kind": kind})
        model, x = make(kind, seed=i), example_input(kind)
        compress.apply(model, cfgs)
        fine_tune(model, x, steps=1)
        with torch.no_grad():
            expected.append(model(x).numpy())
        stem = str(tmp_path / f"case{i}")
        assert compress.export(model, stem + ".dsz", meta={"kind": kind}) <= est, (kind, cfgs)
        np.save(stem + ".in.npy", x.numpy())
        stems.append(stem)
    subprocess.run([sys.executable, "-c", _LOADER, str(HERE), *stems], check=True)
    for (kind, cfgs), stem, want in zip(cases, stems, expected, strict=True):
        got = np.load(stem + ".out.npy")
        assert np.array_equal(got, want), f"{kind} {cfgs}: max diff {np.abs(got - want).max()}"


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_pruned_weights_stay_zero_while_fine_tuning(kind: str, scope: str) -> None:
    model, x = make(kind), example_input(kind)
    compress.apply(model, [PruneConfig(sparsity=0.7, scope=scope), QuantConfig(bits=8)])
    layers = _targets(model)
    masks = [m.parametrizations.weight[0].mask.clone() for m in layers]
    n = sum(int(mask.numel()) for mask in masks)
    pruned = sum(int((mask == 0).sum()) for mask in masks)
    if scope == "global":
        assert pruned == round(0.7 * n)
    else:
        assert all(int((mk == 0).sum()) == round(0.7 * mk.numel()) for mk in masks)
    fine_tune(model, x, steps=3)
    for m, mask in zip(layers, masks, strict=True):
        assert torch.equal(m.parametrizations.weight[0].mask, mask)
        assert (m.weight[mask == 0] == 0).all()
    assert compress.stats(model)["nonzero_params"] <= compress.stats(model)["params"] - pruned


@pytest.mark.parametrize("kind", FAST_KINDS)
@pytest.mark.parametrize("bits", [b for b in BITS if b <= 8])
def test_quantized_weights_take_few_values_per_channel(kind: str, bits: int) -> None:
    model, x = make(kind), example_input(kind)
    compress.apply(model, [QuantConfig(bits=bits)])
    fine_tune(model, x, steps=2)
    with torch.no_grad():
        for m in _targets(model):
            w = m.weight.flatten(1)
            assert max(len(torch.unique(row)) for row in w) <= 2**bits - 1


def test_scales_are_fp16_values_in_the_normal_range() -> None:
    w = torch.randn(6, 9)
    w[1] *= 1e-9  # would be a subnormal (or zero) fp16 scale
    w[2] *= 1e9  # would overflow fp16
    w[3] = 0.0  # fully pruned
    for bits in (2, 4, 8):
        codes, scale = quantize_weight(w, bits)
        assert torch.equal(scale, scale.half().float())
        assert (scale >= 2.0**-14).all() and (scale <= 65504).all()
        assert scale[3].item() == 1.0 and (codes[3] == 0).all()
        assert codes.abs().max() <= 2 ** (bits - 1) - 1


def test_fp16_and_fp32() -> None:
    model = make("mlp")
    before = [m.weight.detach().clone() for m in _targets(model)]
    compress.apply(model, [QuantConfig(bits=32)])
    assert all(torch.equal(m.weight, w) for m, w in zip(_targets(model), before, strict=True))
    compress.apply(model, [QuantConfig(bits=16)])
    for m, w in zip(_targets(model), before, strict=True):
        assert m.weight.dtype == torch.float32
        assert torch.equal(m.weight, w.half().float())


def test_prune_after_quant_still_masks_first() -> None:
    model = make("cnn")
    compress.apply(model, [QuantConfig(bits=4), PruneConfig(sparsity=0.5)])
    for m in _targets(model):
        kinds = [type(p).__name__ for p in m.parametrizations.weight]
        assert kinds == ["WeightMask", "FakeQuant"]


def test_gradients_flow_through_fake_quant() -> None:
    model, x = make("mlp"), example_input("mlp")
    compress.apply(model, [QuantConfig(bits=2)])
    model(x).sum().backward()
    grads = [m.parametrizations.weight.original.grad for m in _targets(model)]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_stats_counts_effective_weights() -> None:
    model = nn.Linear(100, 10)
    assert compress.stats(model) == {"params": 1010, "nonzero_params": 1010}
    compress.apply(model, [PruneConfig(sparsity=0.9)])
    s = compress.stats(model)
    assert s["params"] == 1010 and s["nonzero_params"] <= 1010 - 900


def test_distillation_loss() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g)
    y = torch.randint(0, 10, (8,), generator=g)
    ce = nn.functional.cross_entropy(s, y)
    assert torch.allclose(compress.distillation_loss(s, t, y, temperature=3.0, alpha=0.0), ce)
    assert compress.distillation_loss(t, t, y, temperature=2.0, alpha=1.0).abs() < 1e-6
    kl = nn.functional.kl_div(
        torch.log_softmax(s / 4, -1), torch.softmax(t / 4, -1), reduction="batchmean"
    )
    mixed = compress.distillation_loss(s, t, y, temperature=4.0, alpha=0.3)
    assert torch.allclose(mixed, 0.3 * kl * 16 + 0.7 * ce)
    with pytest.raises(ValueError, match="alpha=1.5"):
        compress.distillation_loss(s, t, y, temperature=1.0, alpha=1.5)
    with pytest.raises(ValueError, match="temperature=0"):
        compress.distillation_loss(s, t, y, temperature=0, alpha=0.5)
