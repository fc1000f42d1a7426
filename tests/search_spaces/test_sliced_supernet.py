"""The weight-sharing supernet of a nested space (``search_spaces.SlicedSupernet``):
slicing, a sub-network's weights as views of the shared ones, extraction into an
independent module, and OFA channel sorting that keeps the largest network's function."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import nn
from torch.func import functional_call

from search_spaces import (
    Arch,
    InputSpec,
    MBConvSpaceConfig,
    SlicedSupernet,
    get_search_space,
    slice_to,
)

# 16 px: the stem halves it to 8 and one stage to 4, so strides 1 and 2 both occur.
SPEC = InputSpec(in_chans=1, image_size=16, num_classes=10)
CFG = MBConvSpaceConfig(
    width_mults=[0.5, 1.0],
    depth_min=1,
    depth_max=2,
    kernels=[3, 5],
    expansions=[2, 4],
    stage_channels=[16, 24, 32],
    stem_size=16,
    num_features=32,
)


class SeededSuggest:
    """Uniform choices from a seeded ``random.Random`` (a stand-in for an Optuna trial)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int:
        return self.rng.randrange(low, high + 1, step)

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        return self.rng.uniform(low, high)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.rng.choice(list(choices))


def _supernet(seed: int = 0) -> SlicedSupernet:
    torch.manual_seed(seed)
    supernet = SlicedSupernet(get_search_space("mbconv", CFG), SPEC)
    _perturb_bn(supernet.model, seed)
    return supernet


def _perturb_bn(model: nn.Module, seed: int) -> None:
    """Random BatchNorm affine parameters and running statistics, so that eval-mode
    outputs depend on every channel's statistics (at init they are all 0 and 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)


def _archs(supernet: SlicedSupernet, n: int = 4) -> list[Arch]:
    randoms = [supernet.space.sample(SeededSuggest(seed)) for seed in range(n)]
    return [supernet.smallest, supernet.largest, *randoms]


def _x(n: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, SPEC.in_chans, SPEC.image_size, SPEC.image_size, generator=g)


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- slice_to ---------------------------------------------------------------------------


def test_slice_to_takes_the_leading_slice() -> None:
    full = torch.arange(24.0).view(4, 6)
    out = slice_to(full, (2, 3))
    assert torch.equal(out, full[:2, :3])
    assert out.data_ptr() == full.data_ptr()  # a view, not a copy


def test_slice_to_crops_a_conv_kernel_around_its_centre() -> None:
    full = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    out = slice_to(full, (1, 2, 3, 3))
    assert torch.equal(out, full[:1, :2, 1:4, 1:4])
    assert torch.equal(slice_to(full, (2, 3, 1, 1)), full[:, :, 2:3, 2:3])
    assert torch.equal(slice_to(full, full.shape), full)


def test_slice_to_is_a_view_gradients_reach_the_full_tensor() -> None:
    full = torch.zeros(4, 2, 5, 5, requires_grad=True)
    slice_to(full, (2, 2, 3, 3)).sum().backward()
    assert full.grad is not None
    expected = torch.zeros(4, 2, 5, 5)
    expected[:2, :, 1:4, 1:4] = 1
    assert torch.equal(full.grad, expected)


@pytest.mark.parametrize(
    ("shape", "needle"),
    [((5, 3), "dim 0 has 4 < 5"), ((2, 7), "dim 1 has 6 < 7"), ((2,), "cannot slice")],
)
def test_slice_to_refuses_a_source_too_small(shape: tuple[int, ...], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        slice_to(torch.zeros(4, 6), shape)


# --- sub-networks -----------------------------------------------------------------------


def test_extract_computes_what_functional_call_on_the_shared_weights_does() -> None:
    supernet = _supernet()
    full_buffers = dict(supernet.model.named_buffers())
    x = _x()
    for arch in _archs(supernet):
        shell = supernet.shell(arch).eval()
        state = {
            **supernet.weights(arch, shell),
            **{n: slice_to(full_buffers[n], b.shape) for n, b in shell.named_buffers()},
        }
        with torch.no_grad():
            expected = functional_call(shell, state, (x,))
            got = supernet.extract(arch).eval()(x)
        assert got.shape == (len(x), SPEC.num_classes)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=str(arch))


def test_extract_of_the_largest_is_the_supernet() -> None:
    supernet = _supernet()
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(
            supernet.extract(supernet.largest).eval()(x), supernet.model.eval()(x)
        )


def test_extract_has_the_parameter_count_of_the_candidates_own_model() -> None:
    supernet = _supernet()
    counts = set()
    for arch in _archs(supernet):
        n = _num_params(supernet.extract(arch))
        assert n == _num_params(supernet.space.build(arch, SPEC)), arch
        counts.add(n)
    assert len(counts) > 2  # the archs differ in size: slicing is exercised
    assert _num_params(supernet.extract(supernet.smallest)) < _num_params(supernet.model)


def test_an_extracted_module_is_independent_of_the_supernet() -> None:
    supernet = _supernet()
    arch = supernet.space.sample(SeededSuggest(1))
    before = {k: v.clone() for k, v in supernet.model.state_dict().items()}
    sub = supernet.extract(arch)
    with torch.no_grad():
        for t in sub.state_dict().values():
            if t.is_floating_point():
                t.add_(1.0)
    after = supernet.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # ... and the other way round: the supernet changing leaves the extracted copy alone.
    again = supernet.extract(arch)
    snapshot = {k: v.clone() for k, v in again.state_dict().items()}
    with torch.no_grad():
        for p in supernet.model.parameters():
            p.mul_(0)
    assert all(torch.equal(snapshot[k], v) for k, v in again.state_dict().items())


def test_gradients_of_functional_call_reach_only_the_shared_slice() -> None:
    supernet = _supernet()
    arch: Arch = {
        "width_mult": 0.5,
        "depths": [1, 1, 1],
        "kernels": [3, 3, 3],  # a 3x3 crop of the 5x5 depthwise kernels
        "expansions": [1, 2, 2],
    }
    shell = supernet.shell(arch).train()
    logits = functional_call(shell, supernet.weights(arch, shell), (_x(),))
    logits.square().mean().backward()

    grads = {n: p.grad for n, p in supernet.model.named_parameters()}
    assert all(p.grad is None for p in shell.parameters())  # the shell's own are never used
    stem = grads["conv_stem.weight"]
    assert stem is not None and stem.abs().sum() > 0
    narrow = shell.conv_stem.weight.shape[0]
    assert narrow < stem.shape[0]
    assert stem[narrow:].abs().sum() == 0  # channels outside the slice get nothing
    dw = grads["blocks.1.0.conv_dw.weight"]
    assert dw is not None and dw.shape[-1] == 5
    assert dw[..., 1:4, 1:4].abs().sum() > 0
    border = dw.clone()
    border[..., 1:4, 1:4] = 0
    assert border.abs().sum() == 0
    # A second block of a stage is outside a depth-1 sub-network.
    assert grads["blocks.1.1.conv_pw.weight"] is None


def test_shells_are_cached_per_arch() -> None:
    supernet = _supernet()
    arch = supernet.space.sample(SeededSuggest(2))
    assert supernet.shell(arch) is supernet.shell(dict(arch))
    assert supernet.shell(arch) is not supernet.shell(supernet.largest)


# --- channel sorting --------------------------------------------------------------------


def _middle_importance(model: nn.Module) -> torch.Tensor:
    """The importance the sort ranks the expanded channels of blocks.1.0 by."""
    w = model.blocks[1][0].conv_pwl.weight.detach().abs()
    return w.sum(dim=(0, 2, 3))


def test_sort_channels_keeps_the_largest_networks_function() -> None:
    supernet = _supernet(seed=3)
    x = _x(seed=3)
    model = supernet.model.eval()
    with torch.no_grad():
        before = model(x)
    supernet.sort_channels()
    with torch.no_grad():
        after = supernet.model.eval()(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_sort_channels_puts_the_most_important_first() -> None:
    supernet = _supernet(seed=4)
    unsorted = _middle_importance(supernet.model)
    assert not torch.all(unsorted[:-1] >= unsorted[1:])  # random init is not sorted
    smallest = supernet.extract(supernet.smallest)
    x = _x(seed=4)
    with torch.no_grad():
        before = smallest.eval()(x)

    supernet.sort_channels()

    importance = _middle_importance(supernet.model)
    assert torch.all(importance[:-1] >= importance[1:])
    torch.testing.assert_close(
        importance.sort(descending=True).values, unsorted.sort(descending=True).values
    )  # a permutation of the same channels
    # A narrower sub-network now gets other (the most important) channels.
    with torch.no_grad():
        assert not torch.allclose(supernet.extract(supernet.smallest).eval()(x), before)
