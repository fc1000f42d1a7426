from __future__ import annotations

import timm
import torch
from torch import nn

from nas.hw import peak_activation_bytes


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.conv_b = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_b(self.act(self.bn(self.conv_a(x))))


class SharedActivation(nn.Module):
    """relu(y) + y: the ReLU cannot overwrite y, which the add still reads."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.relu(y) + y


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent: fx cannot trace it
            x = -x
        return self.conv(x)


def test_sequential_hand_computed() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )
    # input 3*8*8=192; conv1 512 (ReLU fused in place); conv2 256; flatten aliases; linear 10.
    # Steps: conv1 192+512, relu 512, conv2 512+256 = 768 (peak), linear 256+10.
    assert peak_activation_bytes(model, (1, 3, 8, 8)) == 768 * 4
    assert peak_activation_bytes(model, (1, 3, 8, 8), bytes_per_element=1) == 768


def test_residual_hand_computed() -> None:
    # x (512) stays live until the add; conv_a 512 (BN, ReLU fused); conv_b reads it: x+a+b.
    assert peak_activation_bytes(Residual(), (1, 8, 8, 8)) == 3 * 512 * 4


def test_shared_activation_not_fused() -> None:
    # conv 512 (x freed), relu new 512, add: y + relu + out = 1536.
    assert peak_activation_bytes(SharedActivation(), (1, 8, 8, 8), bytes_per_element=1) == 1536


def test_untraceable_falls_back_to_hooks() -> None:
    # Only the conv is a leaf: in 192 + out 512, plus the largest activation 512.
    assert peak_activation_bytes(Untraceable(), (1, 3, 8, 8), bytes_per_element=1) == 1216


def test_timm_mobilenetv2() -> None:
    model = timm.create_model("mobilenetv2_100")
    # Peak at stage 2's first block: 96x112x112 expanded + its 96x56x56 depthwise output.
    expected = (96 * 112 * 112 + 96 * 56 * 56) * 4
    assert peak_activation_bytes(model, (1, 3, 224, 224)) == expected
    assert model.training
