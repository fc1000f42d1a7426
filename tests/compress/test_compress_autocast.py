"""Fake quantization and pruning masks under mixed precision (``train.precision``):
autocast lowers the convolutions' arithmetic, never the compressed weights. Checked
with CPU bf16 autocast, which takes the same code path as a GPU's."""

from __future__ import annotations

import torch
from compress_models import build
from torch import nn

import compress
from compress._quant import effective_weight
from nas.pipeline._train import Placing, train


def _compressed(bits: int = 4, sparsity: float = 0.5) -> nn.Module:
    torch.manual_seed(0)
    model = build({"kind": "cnn"})
    return (
        compress.apply(model, [compress.PruneConfig(sparsity), compress.QuantConfig(bits)]) or model
    )


def _targets(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def test_the_weights_a_layer_sees_are_the_same_under_autocast() -> None:
    model = _compressed()
    outside = [m.weight.detach().clone() for m in _targets(model)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = [m.weight.detach().clone() for m in _targets(model)]
        logits = model(torch.randn(4, 3, 8, 8))
    assert logits.dtype == torch.bfloat16  # the arithmetic is lowered ...
    for a, b in zip(outside, inside, strict=True):
        assert b.dtype == torch.float32 and torch.equal(a, b)  # ... the weights are not


def _data(n: int = 256) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 8, 8, generator=g)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, n, 32)]


def test_bf16_training_keeps_masks_and_the_quantization_grid(tmp_path) -> None:
    model = _compressed(bits=4, sparsity=0.5)
    nonzero_before = compress.stats(model)["nonzero_params"]
    stats = train(model, _data(), epochs=2, lr=0.01, placing=Placing(precision="bf16"))
    assert stats.steps == 16 and torch.isfinite(torch.tensor(stats.final_loss))
    # pruned weights stay pruned: the effective weight is zero wherever the mask is
    masks = 0
    for m in _targets(model):
        for p in m.parametrizations.weight:
            if hasattr(p, "mask"):
                masks += 1
                assert torch.all(m.weight[p.mask == 0] == 0)
        assert m.weight.dtype == torch.float32
    assert masks == len(_targets(model))
    assert compress.stats(model)["nonzero_params"] <= nonzero_before
    # every weight is still on its 4-bit per-channel grid
    for m in _targets(model):
        bits, codes, scale = effective_weight(m)
        assert bits == 4 and scale is not None
        assert torch.equal(codes, codes.round()) and float(codes.abs().max()) <= 7
        assert torch.equal(m.weight.detach(), codes * scale)
    # the artifact written after bf16 training reloads to the same fp32 function
    path = tmp_path / "m.dsz"
    compress.export(model, path, meta={"kind": "cnn"})
    loaded = compress.load(path, build)
    x = torch.randn(16, 3, 8, 8)
    model.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_fp16_weights_stay_fp16_values_under_autocast() -> None:
    model = _compressed(bits=16, sparsity=0.0)
    train(model, _data(64), epochs=1, lr=0.01, placing=Placing(precision="bf16"))
    for m in _targets(model):
        w = m.weight.detach()
        assert torch.equal(w, w.half().float())
