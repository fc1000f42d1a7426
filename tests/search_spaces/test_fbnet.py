from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
import torch
from torch import nn

from nas.hw import count_macs
from search_spaces import InputSpec, get_search_space, list_search_spaces, search_space_config
from search_spaces._fbnet import FBNET_OPS

SPEC = InputSpec(in_chans=3, image_size=32, num_classes=100)
# HW-NAS-Bench FBNet (cifar100): per searchable layer, output channels and spatial size at 32x32.
LAYER_CHANNELS = [16] + [24] * 4 + [32] * 4 + [64] * 4 + [112] * 4 + [184] * 4 + [352]
LAYER_SIZES = [32] + [32] * 4 + [16] * 4 + [8] * 4 + [8] * 4 + [4] * 4 + [4]
LAYER_STRIDES = [1, 1, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]


class RandomSuggest:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.names: list[str] = []

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int:
        raise AssertionError("fbnet samples only categoricals")

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        raise AssertionError("fbnet samples only categoricals")

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        self.names.append(name)
        return self.rng.choice(list(choices))


def analytic_macs(ops: list[str], num_classes: int = 100) -> int:
    """MACs from the space's description alone (conv and FC multiply-accumulates)."""
    macs = 3 * 16 * 3 * 3 * 32 * 32  # stem
    cin = 16
    for op, cout, size, stride in zip(ops, LAYER_CHANNELS, LAYER_SIZES, LAYER_STRIDES, strict=True):
        hw_out = size * size
        if op == "skip":
            macs += 0 if (cin == cout and stride == 1) else cin * cout * hw_out
        else:
            k, e = int(op[1]), int(op[4])
            g = 2 if op.endswith("_g2") else 1
            mid = e * cin
            hw_in = (size * stride) ** 2
            macs += (cin // g) * mid * hw_in + mid * k * k * hw_out + (mid // g) * cout * hw_out
        cin = cout
    return macs + 352 * 1504 * 4 * 4 + 1504 * num_classes


def test_registered() -> None:
    assert "fbnet" in list_search_spaces()
    assert search_space_config("fbnet")().ops == list(FBNET_OPS)


def test_sample_names_and_rebuild() -> None:
    space = get_search_space("fbnet")
    suggest = RandomSuggest(0)
    arch = space.sample(suggest)
    assert suggest.names == [f"op_l{i:02d}" for i in range(1, 23)]
    assert len(arch["ops"]) == 22 and set(arch["ops"]) <= set(FBNET_OPS)
    a, b = space.build(arch, SPEC), space.build(arch, SPEC)
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]


@pytest.mark.parametrize("op", FBNET_OPS)
def test_per_layer_shapes(op: str) -> None:
    model = get_search_space("fbnet").build({"ops": [op] * 22}, SPEC).eval()
    shapes: list[tuple[int, ...]] = []
    for layer in model.layers:
        layer.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 100)
    assert shapes == [(2, c, s, s) for c, s in zip(LAYER_CHANNELS, LAYER_SIZES, strict=True)]


def test_spec_and_resolution_agnostic() -> None:
    model = get_search_space("fbnet").build({"ops": ["k3_e3"] * 22}, InputSpec(1, 64, 10))
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 64, 64)).shape == (1, 10)


@pytest.mark.parametrize("seed", [0, 1])
def test_macs_match_analytic(seed: int) -> None:
    space = get_search_space("fbnet")
    for arch in (*space.extremes(), space.sample(RandomSuggest(seed))):
        model = space.build(arch, SPEC)
        assert count_macs(model, (1, 3, 32, 32)) == analytic_macs(arch["ops"])


def test_g2_block_groups_and_shuffles() -> None:
    model = get_search_space("fbnet").build({"ops": ["k5_e1_g2"] * 22}, SPEC)
    block = model.layers[1]
    assert block.conv_pw.groups == 2 and block.conv_pwl.groups == 2
    assert block.conv_dw.kernel_size == (5, 5)
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert block.shuffle(x).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_skip_layers() -> None:
    model = get_search_space("fbnet").build({"ops": ["skip"] * 22}, SPEC)
    assert isinstance(model.layers[0], nn.Identity)  # 16 -> 16, stride 1
    assert isinstance(model.layers[1][0], nn.Conv2d)  # 16 -> 24: 1x1 conv + BN + ReLU
    assert model.layers[5][0].stride == (2, 2)


def test_extremes_order() -> None:
    space = get_search_space("fbnet")
    small, large = space.extremes()
    assert small == {"ops": ["skip"] * 22} and large == {"ops": ["k5_e6"] * 22}
    sizes = [sum(p.numel() for p in space.build(a, SPEC).parameters()) for a in (small, large)]
    assert sizes[0] < sizes[1]


def test_bad_config_and_arch() -> None:
    cfg_cls = search_space_config("fbnet")
    with pytest.raises(ValueError, match="k7_e6"):
        cfg_cls(ops=["k3_e1", "k7_e6"])
    with pytest.raises(ValueError, match="22"):
        cfg_cls(num_layers=10)
    with pytest.raises(ValueError, match="22 ops"):
        get_search_space("fbnet").build({"ops": ["k3_e1"] * 3}, SPEC)
