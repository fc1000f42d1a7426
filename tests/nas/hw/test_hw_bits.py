"""Bit-width- and sparsity-aware latency: ``HardwareModel.latency_ms(..., bits=, sparsity=)``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn

import compress
from nas.hw import (
    HardwareModel,
    LatencyPredictor,
    accuracy,
    bake,
    deployed_latency_ms,
    deploys_int8,
    fit_host_predictor,
    layer_bits,
    layer_features,
    measure_deployed_ms,
    measure_samples,
    read_latency_models,
    sample_networks,
)
from search_spaces import InputSpec, get_search_space

SHAPE = (1, 3, 32, 32)
ARCH = {
    "width_mult": 0.5,
    "depths": [1, 2, 2, 1],
    "kernels": [3, 3, 5, 3],
    "expansions": [1, 4, 4, 6],
}


@dataclass
class Profile:
    name: str = "test"
    latency: str = "predict"
    predictor: str | None = "pixel3"
    latency_budget_ms: float | None = None
    size_budget_bytes: int | None = None
    peak_memory_budget_bytes: int | None = None
    bits: list[int] = field(default_factory=lambda: [2, 4, 8, 32])
    activation_bytes: int = 4
    threads: int = 1
    profile: str | None = None
    sparse_speedup: bool = False


def mbconv() -> nn.Module:
    torch.manual_seed(0)
    return get_search_space("mbconv").build(ARCH, InputSpec(3, 32, 10))


@pytest.fixture
def int8_fast(tmp_path: Path) -> HardwareModel:
    """Pixel 3's fp32 model plus int8 kernels twice as fast on weight layers."""
    entry = dict(read_latency_models(None)["devices"]["pixel3"])
    entry["kernels"] = {"8": {"speedup": 2.0}}
    path = tmp_path / "int8_fast.json"
    path.write_text(json.dumps({"device": "int8_fast", "devices": {"int8_fast": entry}}))
    return HardwareModel(Profile(predictor=None, profile=str(path)))  # type: ignore[arg-type]


def test_int8_kernels_predict_less_than_fp32(int8_fast: HardwareModel) -> None:
    model = mbconv()
    fp32 = int8_fast.latency_ms(model, SHAPE)
    int8 = int8_fast.latency_ms(model, SHAPE, bits=8)
    assert 0 < int8 < fp32
    assert int8_fast.kernel_bits == [8, 32]
    # No int4 or fp16 kernels: those run dequantized at the fp32 speed.
    assert int8_fast.latency_ms(model, SHAPE, bits=4) == pytest.approx(fp32)
    assert int8_fast.latency_ms(model, SHAPE, bits=16) == pytest.approx(fp32)
    # Per-layer widths: all 8 is int8; half of them in between.
    names = [f.name for f in layer_features(model, SHAPE) if f.kind.startswith(("conv", "lin"))]
    assert int8_fast.latency_ms(model, SHAPE, bits=dict.fromkeys(names, 8)) == pytest.approx(int8)
    mixed = int8_fast.latency_ms(model, SHAPE, bits=dict.fromkeys(names[::2], 8))
    assert int8 < mixed < fp32


def test_profile_without_int8_kernels_ignores_bits() -> None:
    hw = HardwareModel(Profile())  # type: ignore[arg-type]
    model = mbconv()
    assert hw.kernel_bits == [32]
    assert hw.latency_ms(model, SHAPE, bits=8) == pytest.approx(hw.latency_ms(model, SHAPE))


def test_structured_pruning_predicts_less() -> None:
    hw = HardwareModel(Profile())  # type: ignore[arg-type]
    dense = mbconv()
    pruned = compress.apply(mbconv(), [compress.ChannelPruneConfig(ratio=0.5, input_shape=SHAPE)])
    assert 0 < hw.latency_ms(pruned, SHAPE) < hw.latency_ms(dense, SHAPE)


def test_unstructured_sparsity_is_free_on_dense_kernels() -> None:
    model = mbconv()
    dense = HardwareModel(Profile())  # type: ignore[arg-type]
    assert dense.latency_ms(model, SHAPE, sparsity=0.8) == dense.latency_ms(model, SHAPE)
    sparse = HardwareModel(Profile(sparse_speedup=True))  # type: ignore[arg-type]
    assert sparse.latency_ms(model, SHAPE, sparsity=0.8) < sparse.latency_ms(model, SHAPE)
    with pytest.raises(ValueError, match="sparsity=1.0"):
        dense.latency_ms(model, SHAPE, sparsity=1.0)


def test_kernels_round_trip_through_json() -> None:
    base = LatencyPredictor.load("pixel3")
    base.kernels[8] = base.sped_up(1.5, bits=8)
    base.kernels[4] = LatencyPredictor(device="x@4", intercept_ms=0.01, coefficients={})
    again = LatencyPredictor.from_dict("pixel3", json.loads(json.dumps(base.to_dict())))
    assert again.kernel_bits == [4, 8, 32]
    model = mbconv()
    for bits in (32, 8, 4, 2):
        assert again.predict_ms(model, SHAPE, bits=bits) == pytest.approx(
            base.predict_ms(model, SHAPE, bits=bits)
        )


def test_layer_bits_assignment() -> None:
    layers = layer_features(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1)), SHAPE)
    assert layer_bits(layers, 8) == [8, 8, 8]
    assert layer_bits(layers, {"0": 4}) == [4, 4, 32]  # the ReLU runs fused with conv 0
    with pytest.raises(ValueError, match="not weight layers"):
        layer_bits(layers, {"1": 8})


def test_bake_leaves_the_model_alone() -> None:
    model = compress.apply(
        mbconv(), [compress.PruneConfig(sparsity=0.5), compress.QuantConfig(bits=4)]
    )
    x = torch.randn(2, *SHAPE[1:])
    first, second = bake(model), bake(model)  # twice: the original still works
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), first(x), atol=1e-5)
        assert torch.allclose(second(x), first(x))
    assert not any(hasattr(m, "parametrizations") for m in first.modules())
    assert deploys_int8(8) and deploys_int8({"a": 8}) and not deploys_int8({"a": 8, "b": 4})


def test_measured_deployed_form_and_trial_call() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 32 * 32, 10)
    )
    for bits in (32, 8):
        median, spread = measure_deployed_ms(model, SHAPE, bits=bits, warmup=1, repeats=3)
        assert median > 0 and spread >= 0
    host = HardwareModel(Profile(latency="measure", predictor=None))  # type: ignore[arg-type]
    assert host.kernel_bits == [8, 32]
    calib = torch.randn(16, *SHAPE[1:])
    assert deployed_latency_ms(host, model, SHAPE, bits=8, calib=calib) > 0
    predicted = HardwareModel(Profile())  # type: ignore[arg-type]
    assert deployed_latency_ms(predicted, model, SHAPE, bits=8) == predicted.latency_ms(
        model, SHAPE
    )
    none = HardwareModel(Profile(latency="none", predictor=None))  # type: ignore[arg-type]
    assert math.isnan(deployed_latency_ms(none, model, SHAPE))


def test_host_fit_on_deployed_networks() -> None:
    two = [(32, 0.0, 0.0), (8, 0.0, 0.0)]
    samples = sample_networks(
        8, seed=0, sizes=[(1, 28), (3, 32)], spaces=("mbconv", "tiny"), compressions=two
    )
    assert {s.space for s in samples} == {"mbconv", "tiny"}
    measure_samples(samples, passes=2, rounds=1, repeats=3)
    assert all(len(s.ms) == 2 and min(s.ms) > 0 and s.features for s in samples)
    predictor = fit_host_predictor(samples, device="host")
    assert 8 in predictor.kernels  # int8 samples get their own coefficients
    acc = accuracy(predictor, samples)
    assert acc["n"] == 8 and 0 <= acc["within_10pct"] <= 1 and "noise_within_10pct" in acc
