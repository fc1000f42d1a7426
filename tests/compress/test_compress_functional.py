"""The functional forms of quantization and pruning (``compress.fake_quantize``,
``compress.magnitude_mask``) that a weight-sharing supernet applies to views of its
shared weights: the same numbers as the parametrizations, gradients straight through."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import compress
from compress import BITS, PruneConfig, QuantConfig


def _w(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("bits", [b for b in BITS if b != 32])
def test_fake_quantize_is_what_a_quantized_layer_uses(bits: int) -> None:
    layer = nn.Conv2d(3, 8, 3)
    with torch.no_grad():
        layer.weight.copy_(_w(8, 3, 3, 3) * 0.3)
    w = layer.weight.detach().clone()
    compress.apply(layer, [QuantConfig(bits=bits)])
    got = compress.fake_quantize(w, bits)
    assert torch.equal(got, layer.weight.detach())
    assert got.dtype == w.dtype and got.shape == w.shape
    if bits <= 8:  # at most 2**bits - 1 levels per output channel
        assert all(row.unique().numel() <= 2**bits - 1 for row in got.flatten(1))
        assert not torch.equal(got, w)


def test_fake_quantize_32_bits_is_the_weight_itself() -> None:
    w = _w(4, 4)
    assert compress.fake_quantize(w, 32) is w


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_fake_quantize_passes_gradients_straight_through(bits: int) -> None:
    w = _w(6, 5).requires_grad_()
    upstream = _w(6, 5, seed=1)
    (compress.fake_quantize(w, bits) * upstream).sum().backward()
    assert w.grad is not None
    assert torch.equal(w.grad, upstream)


def test_fake_quantize_of_a_view_sends_gradients_to_the_full_tensor() -> None:
    full = _w(8, 4).requires_grad_()
    compress.fake_quantize(full[:3, :2], 4).sum().backward()
    assert full.grad is not None
    expected = torch.zeros(8, 4)
    expected[:3, :2] = 1
    assert torch.equal(full.grad, expected)


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.9, 0.99])
def test_magnitude_mask_drops_exactly_the_smallest(sparsity: float) -> None:
    w = _w(7, 11, 3)  # 231 weights: round() matters for 1/3 and 0.99
    mask = compress.magnitude_mask(w, sparsity)
    assert mask.shape == w.shape and mask.dtype == w.dtype
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    dropped = round(sparsity * w.numel())
    assert int((mask == 0).sum()) == dropped
    if 0 < dropped < w.numel():
        assert w.abs()[mask == 0].max() < w.abs()[mask == 1].min()


def test_magnitude_mask_agrees_with_layer_scope_pruning() -> None:
    layer = nn.Linear(20, 10)
    w = layer.weight.detach().clone()
    compress.apply(layer, [PruneConfig(sparsity=0.6, scope="layer")])
    assert torch.equal(w * compress.magnitude_mask(w, 0.6), layer.weight.detach())


def test_magnitude_mask_is_a_constant_and_breaks_ties_by_position() -> None:
    w = torch.zeros(2, 5, requires_grad=True)
    mask = compress.magnitude_mask(w, 0.3)
    assert not mask.requires_grad
    assert mask.flatten().tolist() == [0.0, 0.0, 0.0] + [1.0] * 7
    # A gradient through w * mask reaches only the kept weights.
    (w * mask).sum().backward()
    assert w.grad is not None and torch.equal(w.grad, mask)
