"""Small models for the compress tests, rebuilt from a JSON-able ``meta`` dict.

Importable from a fresh process (the round-trip test adds this folder to
``sys.path``), so an artifact can be loaded with nothing pickled.
"""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn

MODEL_KINDS: tuple[str, ...] = ("mlp", "cnn", "mobilenetv3", "resnet10t")
FAST_KINDS: tuple[str, ...] = ("mlp", "cnn")


def build(meta: dict[str, Any]) -> nn.Module:
    """The uncompressed model of ``meta["kind"]`` (deterministic structure)."""
    kind = meta["kind"]
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 64), nn.ReLU(),
                             nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    if kind == "cnn":
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
        )
    if kind == "mobilenetv3":
        return timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=10)
    if kind == "resnet10t":
        # Narrow channels keep it fast on one CPU core; the layer structure is resnet10t's.
        return timm.create_model("resnet10t", pretrained=False, num_classes=10,
                                 channels=(16, 32, 64, 128), stem_width=8)
    raise ValueError(f"unknown test model kind {kind!r}")


def make(kind: str, seed: int = 0) -> nn.Module:
    """``build`` with seeded weights and nonzero BN statistics, ready to compress."""
    torch.manual_seed(seed)
    model = build({"kind": kind})
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # so a lost running stat would change outputs
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def example_input(kind: str, batch: int = 4, seed: int = 1) -> torch.Tensor:
    """A small input batch that the model of ``kind`` accepts."""
    g = torch.Generator().manual_seed(seed)
    size = 8 if kind == "mlp" else 32
    return torch.randn(batch, 3, size, size, generator=g)


def fine_tune(model: nn.Module, x: torch.Tensor, steps: int = 3, lr: float = 0.05) -> None:
    """A few SGD steps on a random-label loss, as quantization-aware fine-tuning does."""
    model.train()
    y = torch.arange(x.shape[0]) % 10
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
