from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from nas.hw import HardwareModel, list_latency_methods, measure_latency_ms, register_latency_method


@dataclass
class Profile:
    name: str = "test"
    latency: str = "predict"
    predictor: str | None = "pixel3"
    latency_budget_ms: float | None = None
    size_budget_bytes: int | None = None
    peak_memory_budget_bytes: int | None = None
    bits: list[int] = field(default_factory=lambda: [8, 32])
    activation_bytes: int = 4
    threads: int = 1


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1))


def test_methods_registered() -> None:
    assert list_latency_methods() == ["measure", "none", "predict"]
    with pytest.raises(ValueError, match="already registered"):
        register_latency_method("measure")(lambda hw, m, s: 0.0)


def test_predict_measure_none() -> None:
    shape = (1, 3, 16, 16)
    assert HardwareModel(Profile()).latency_ms(tiny(), shape) > 0
    measured = HardwareModel(Profile(latency="measure", predictor=None))
    assert measured.latency_ms(tiny(), shape) > 0
    assert math.isnan(
        HardwareModel(Profile(latency="none", predictor=None)).latency_ms(tiny(), shape)
    )


def test_peak_memory_uses_activation_bytes() -> None:
    shape = (1, 3, 16, 16)
    fp32 = HardwareModel(Profile()).peak_memory_bytes(tiny(), shape)
    int8 = HardwareModel(Profile(activation_bytes=1)).peak_memory_bytes(tiny(), shape)
    assert fp32 == 4 * int8 == 4 * (8 + 8) * 16 * 16  # conv1 output + conv2 output


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"latency": "guess"}, "allowed: measure, none, predict"),
        ({"predictor": None}, "needs predictor"),
        ({"predictor": "pixel9"}, "available:"),
        ({"activation_bytes": 0}, "activation_bytes=0"),
    ],
)
def test_bad_profiles(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HardwareModel(Profile(**kwargs))  # type: ignore[arg-type]


def test_measure_latency_restores_threads() -> None:
    before = torch.get_num_threads()
    model = tiny()
    model.train()
    median, spread = measure_latency_ms(model, (1, 3, 16, 16), threads=1, warmup=2, repeats=5)
    assert median > 0 and spread >= 0
    assert torch.get_num_threads() == before and model.training
    with pytest.raises(ValueError, match="repeats=0"):
        measure_latency_ms(model, (1, 3, 16, 16), repeats=0)
