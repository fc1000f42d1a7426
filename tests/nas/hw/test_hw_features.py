from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from nas.hw import count_macs, layer_features


@pytest.mark.parametrize(
    ("layer", "kind", "macs"),
    [
        (nn.Conv2d(8, 16, 3, padding=1), "conv_full", 16 * 8 * 8 * 8 * 9),
        (nn.Conv2d(8, 16, 1, bias=False), "conv_pw", 16 * 8 * 8 * 8),
        (nn.Conv2d(8, 8, 5, stride=2, padding=2, groups=8), "conv_dw", 8 * 4 * 4 * 25),
        (nn.Conv2d(8, 16, 1, groups=2), "conv_group", 16 * 8 * 8 * 4),
        (nn.BatchNorm2d(8), "bn", 0),
        (nn.ReLU(), "act", 0),
        (nn.MaxPool2d(2), "pool", 0),
    ],
)
def test_single_layer(layer: nn.Module, kind: str, macs: int) -> None:
    (feat,) = layer_features(layer, (1, 8, 8, 8))
    assert feat.kind == kind
    assert feat.macs == macs
    assert feat.input_elements == 8 * 8 * 8
    assert feat.params == sum(p.numel() for p in layer.parameters())
    if isinstance(layer, nn.Conv2d):
        assert feat.kernel_size == layer.kernel_size[0] and feat.stride == layer.stride[0]
        assert feat.output_elements == feat.macs // (8 // layer.groups * layer.kernel_size[0] ** 2)


def test_sequential_and_linear() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
    )
    feats = layer_features(model, (2, 3, 6, 6))
    assert [f.kind for f in feats] == ["conv_full", "act", "pool", "identity", "linear"]
    assert feats[-1].macs == 2 * 4 * 5
    assert count_macs(model, (2, 3, 6, 6)) == 2 * 4 * 6 * 6 * 3 * 9 + 2 * 4 * 5
    assert model.training  # mode restored


def test_timm_model() -> None:
    model = timm.create_model("mobilenetv2_050", num_classes=10)
    feats = layer_features(model, (1, 3, 64, 64))
    kinds = {f.kind for f in feats}
    assert {"conv_full", "conv_pw", "conv_dw", "bn", "act", "linear"} <= kinds
    # BatchNormAct2d owns its activation: both are seen, the norm exactly once per module.
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(f.kind == "bn" for f in feats) == n_bn
    assert count_macs(model, (1, 3, 64, 64)) > 0


def test_macs_scale_with_resolution() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1))
    assert count_macs(model, (1, 3, 16, 16)) * 4 == count_macs(model, (1, 3, 32, 32))
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 4, 4)).shape == (1, 8, 4, 4)


def test_pruned_and_quantized_layers_count_as_the_plain_layers() -> None:
    import compress
    from compress import PruneConfig, QuantConfig

    def net() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))

    plain = layer_features(net(), (1, 3, 8, 8))
    packed = compress.apply(net(), [PruneConfig(sparsity=0.5), QuantConfig(bits=4)])
    assert any(True for _ in packed.get_submodule("0").parametrizations.weight)
    # the masks and quantizers run on weights, not activations: not layers of their own
    assert layer_features(packed, (1, 3, 8, 8)) == plain
