"""``compress.bake``: the weights ``compress.apply`` would evaluate, written into the
plain weights with no parametrization (an adaptive model's point, derived per switch)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import compress


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 1),
        nn.Flatten(), nn.Linear(8 * 6 * 6, 10),
    )  # fmt: skip


@pytest.mark.parametrize(
    "cfgs",
    [
        [compress.PruneConfig(sparsity=0.5)],
        [compress.PruneConfig(sparsity=0.7, scope="layer")],
        [compress.QuantConfig(bits=3)],
        [compress.QuantConfig(bits=16)],
        [compress.PruneConfig(sparsity=0.4), compress.QuantConfig(bits=4)],
        [compress.QuantConfig(bits=8), compress.PruneConfig(sparsity=0.3, scope="layer")],
        [compress.PruneConfig(sparsity=0.3), compress.PruneConfig(sparsity=0.6, scope="layer")],
        [compress.LowRankConfig(rank_ratio=0.5), compress.QuantConfig(bits=6)],
    ],
    ids=repr,
)
def test_bake_equals_apply(cfgs: list[Any]) -> None:
    applied = compress.apply(_net(), cfgs).eval()
    baked = compress.bake(_net(), cfgs).eval()
    assert not any(parametrize.is_parametrized(m) for m in baked.modules())
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(baked(x), applied(x), rtol=0, atol=0)


def test_bake_refuses_a_model_already_compressed() -> None:
    model = compress.apply(_net(), [compress.QuantConfig(bits=8)])
    with pytest.raises(ValueError, match="plain weights"):
        compress.bake(copy.deepcopy(model), [compress.QuantConfig(bits=4)])
