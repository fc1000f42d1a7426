"""Low-rank factorization: exact at full rank, trainable, composable, rebuilt at load."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from compress_models import build, example_input, fine_tune, make
from torch import nn

import compress
from compress import LowRankConfig, PruneConfig, QuantConfig
from compress._lowrank import LowRank, factorize, rank_for


@pytest.mark.parametrize(
    ("layer", "x"),
    [(nn.Linear(24, 16), torch.randn(5, 24)),
     (nn.Conv2d(6, 8, 3, stride=2, padding=1), torch.randn(2, 6, 9, 9)),
     (nn.Conv2d(6, 8, (3, 1), dilation=2, bias=False), torch.randn(2, 6, 9, 9))],
)
def test_full_rank_factors_reproduce_the_layer(layer: nn.Module, x: torch.Tensor) -> None:
    w = layer.weight
    full = min(w.shape[0], w[0].numel())
    with torch.no_grad():
        assert torch.allclose(factorize(layer, full)(x), layer(x), atol=1e-5)


def test_rank_and_which_layers() -> None:
    assert rank_for(nn.Linear(64, 32), 0.25) == 8  # round(0.25 * 32)
    assert rank_for(nn.Linear(64, 32), 0.001) == 1  # never below 1
    assert rank_for(nn.Linear(4, 4), 1.0) is None  # 4 * (4 + 4) > 16: not smaller
    assert rank_for(nn.Conv2d(8, 8, 3, groups=8), 0.1) is None  # depthwise
    assert rank_for(nn.Conv2d(8, 16, 3, groups=2), 0.1) is None  # grouped
    assert rank_for(nn.Conv2d(8, 16, 3), 0.5) == 8  # min(16, 8 * 9) = 16


def test_truncation_keeps_the_largest_singular_values() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(40, 30, bias=False)
    f = factorize(layer, 5)
    w = layer.weight.detach().double()
    approx = (f[1].weight @ f[0].weight).detach().double()
    best = torch.linalg.svdvals(w)[5:].pow(2).sum().sqrt()  # Eckart-Young
    assert torch.isclose(torch.linalg.matrix_norm(w - approx), best, rtol=1e-4)


@pytest.mark.parametrize("kind", ["mlp", "cnn", "resnet10t"])
def test_factors_train_and_take_prune_and_quant(kind: str) -> None:
    model, x = make(kind), example_input(kind)
    before = sum(p.numel() for p in model.parameters())
    compress.apply(model, [LowRankConfig(rank_ratio=0.25), PruneConfig(sparsity=0.5),
                           QuantConfig(bits=4)])
    factored = [m for m in model.modules() if isinstance(m, LowRank)]
    assert factored and sum(p.numel() for p in model.parameters()) < before
    for f in factored:
        for layer in f:
            kinds = [type(p).__name__ for p in layer.parametrizations.weight]
            assert kinds == ["WeightMask", "FakeQuant"]
    model.train()
    nn.functional.cross_entropy(model(x), torch.arange(x.shape[0]) % 10).backward()
    assert all(layer.parametrizations.weight.original.grad is not None
               for f in factored for layer in f)
    fine_tune(model, x, steps=1)


def test_applying_twice_does_not_factorize_the_factors() -> None:
    model = make("mlp")
    compress.apply(model, [LowRankConfig(rank_ratio=0.5)])
    n = len(list(model.modules()))
    compress.apply(model, [LowRankConfig(rank_ratio=0.5)])
    assert len(list(model.modules())) == n


@pytest.mark.parametrize(
    ("rank_ratio", "message"),
    [(0, r"rank_ratio=0 is outside \(0, 1\]"), (-0.5, r"rank_ratio=-0.5 is outside"),
     (1.5, r"rank_ratio=1.5 is outside"), (True, r"rank_ratio=True is outside")],
)
def test_bad_rank_ratio_names_the_value(rank_ratio: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LowRankConfig(rank_ratio=rank_ratio)


def test_order_is_enforced() -> None:
    with pytest.raises(ValueError, match="lowrank must come before prune and quant"):
        compress.apply(make("mlp"), [PruneConfig(sparsity=0.5), LowRankConfig(rank_ratio=0.5)])
    with pytest.raises(ValueError, match="LowRankConfig must come before"):
        compress.estimate_size_bytes(make("mlp"), [QuantConfig(bits=4),
                                                   LowRankConfig(rank_ratio=0.5)])


def test_ranks_are_stored_and_checked(tmp_path: Path) -> None:
    model, x = make("cnn"), example_input("cnn")
    compress.apply(model, [LowRankConfig(rank_ratio=0.3)])
    compress.export(model, tmp_path / "m.dsz", meta={"kind": "cnn"})
    data = (tmp_path / "m.dsz").read_bytes()
    (hlen,) = struct.unpack("<I", data[8:12])
    header = json.loads(data[12 : 12 + hlen])
    assert header["structure"] == {"lowrank": {"0": 5, "3": 10, "8": 3}}
    with torch.no_grad():
        assert torch.equal(compress.load(tmp_path / "m.dsz", build).eval()(x), model.eval()(x))
    for lowrank, message in [({"0": 6, "3": 10, "8": 3}, "do not match the built model"),
                             ({"0": 27, "3": 10, "8": 3}, "rank 27 does not fit"),
                             ({"1": 5, "3": 10, "8": 3}, "does not fit the layer '1'"),
                             ({"x.y": 5}, "'x.y' is not in the built model")]:
        raw = json.dumps({**header, "structure": {"lowrank": lowrank}}).encode()
        bad = tmp_path / "bad.dsz"
        bad.write_bytes(data[:8] + struct.pack("<I", len(raw)) + raw + data[12 + hlen :])
        with pytest.raises(ValueError, match=message):
            compress.load(bad, build)
