"""Structured (channel) pruning on real timm families: fewer MACs, the same model back."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from compress_models import build, example_input, make
from torch import nn

import compress
from compress import ChannelPruneConfig, PruneConfig, QuantConfig
from compress._params import plain_tensors
from compress._table import parse_table

# One small member of each family (pretrained=False, 10 classes, 32x32 inputs).
FAMILIES: dict[str, dict[str, Any]] = {
    "resnet10t": {"channels": (16, 32, 64, 128), "stem_width": 8},
    "mobilenetv3_small_050": {},
    "test_efficientnet": {},
    "regnetx_002": {},
    "test_convnext": {},
}
SHAPE = (1, 3, 32, 32)


def _timm(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, num_classes=10, **FAMILIES[name])
    return model.eval()


def _macs(model: nn.Module) -> int:
    total = 0

    def hook(m: nn.Module, i: Any, out: torch.Tensor) -> None:
        nonlocal total
        w = m.weight
        total += out.numel() * (w[0].numel() if isinstance(m, nn.Conv2d) else w.shape[1])

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        model(torch.zeros(SHAPE))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("name", list(FAMILIES))
def test_families_lose_macs_and_round_trip(tmp_path: Path, name: str) -> None:
    model, x = _timm(name), torch.randn(2, *SHAPE[1:])
    before = _macs(model)
    cfgs = [ChannelPruneConfig(ratio=0.5, input_shape=SHAPE), PruneConfig(sparsity=0.3),
            QuantConfig(bits=8)]
    est = compress.estimate_size_bytes(_timm(name, seed=1), cfgs)
    compress.apply(model, cfgs)
    assert _macs(model) < 0.5 * before  # both ends of most layers lose half their channels
    with torch.no_grad():
        want = model(x)
    size = compress.export(model, tmp_path / "m.dsz")
    assert size <= est <= 1.5 * size  # fp32 BatchNorms at init deflate well
    loaded = compress.load(tmp_path / "m.dsz", lambda meta: _timm(name, seed=2)).eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), want)
    for n, b in loaded.named_modules():
        a = model.get_submodule(n)
        for attr in ("in_channels", "out_channels", "groups", "num_features", "in_features",
                     "out_features", "normalized_shape"):
            assert getattr(a, attr, None) == getattr(b, attr, None), (n, attr)


@pytest.mark.parametrize("name", ["mobilenetv3_small_050", "regnetx_002"])
def test_pruned_widths_do_not_depend_on_the_weights(name: str) -> None:
    shapes = []
    for seed in (0, 1):
        model = compress.apply(_timm(name, seed), [ChannelPruneConfig(ratio=0.4, importance="l2")])
        shapes.append([(t.name, t.tensor.shape) for t in plain_tensors(model)])
    assert shapes[0] == shapes[1]


def test_round_to_keeps_multiples_and_leaves_narrow_groups_whole() -> None:
    model = compress.apply(_timm("resnet10t"), [ChannelPruneConfig(ratio=0.3, round_to=8,
                                                                   input_shape=SHAPE)])
    widths = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    built = {n: m.out_channels for n, m in _timm("resnet10t").named_modules()
             if isinstance(m, nn.Conv2d)}
    # a width is a multiple of 8, or left whole where rounding down would keep none
    assert all(w % 8 == 0 or w == built[n] < 16 for n, w in widths.items()), (widths, built)
    assert widths["conv1.0"] == built["conv1.0"] == 6  # tiered stem: 6, 8, 8 wide
    assert sum(widths.values()) < 0.8 * sum(built.values())


def test_only_changed_shapes_and_groups_are_stored(tmp_path: Path) -> None:
    model = compress.apply(_timm("mobilenetv3_small_050"), [ChannelPruneConfig(ratio=0.5)])
    compress.export(model, tmp_path / "m.dsz", meta={"kind": "x"})
    data = (tmp_path / "m.dsz").read_bytes()
    (hlen,) = struct.unpack("<I", data[8:12])
    header = json.loads(data[12 : 12 + hlen])
    groups = header["structure"]["groups"]
    depthwise = {n: m.groups for n, m in model.named_modules()
                 if isinstance(m, nn.Conv2d) and m.groups > 1}
    assert groups == depthwise  # every depthwise conv lost channels; nothing else is listed
    built = [tuple(t.tensor.shape) for t in plain_tensors(_timm("mobilenetv3_small_050"))]
    _, _, records, _ = parse_table(data[12 + hlen :], built)
    stored = {t.name: r.shape for t, r in zip(plain_tensors(model), records, strict=True)}
    changed = {t.name for t, b in zip(plain_tensors(model), built, strict=True)
               if tuple(t.tensor.shape) != b}
    assert changed and {n for n, shape in stored.items() if shape is not None} == changed
    assert compress.read_meta(tmp_path / "m.dsz") == {"kind": "x"}


def test_ratio_zero_changes_nothing(tmp_path: Path) -> None:
    model = make("cnn")
    before = [t.tensor.clone() for t in plain_tensors(model)]
    compress.apply(model, [ChannelPruneConfig(ratio=0.0)])  # no input needed: nothing traced
    assert all(torch.equal(a, t.tensor) for a, t in zip(before, plain_tensors(model),
                                                        strict=True))


def test_training_mode_and_batchnorm_statistics_are_kept() -> None:
    model = make("cnn").train()
    compress.apply(model, [ChannelPruneConfig(ratio=0.5, input_shape=(1, 3, 32, 32))])
    assert model.training
    assert all(float(m.running_var.min()) >= 0.5 for m in model.modules()
               if isinstance(m, nn.BatchNorm2d))  # the tracing pass ran in eval mode


@pytest.mark.parametrize(
    ("make_cfg", "message"),
    [
        (lambda: ChannelPruneConfig(ratio=1.0), r"ratio=1.0 is outside \[0, 1\)"),
        (lambda: ChannelPruneConfig(ratio=-0.1), r"ratio=-0.1 is outside \[0, 1\)"),
        (lambda: ChannelPruneConfig(ratio="0.5"), r"ratio='0.5' is outside"),  # type: ignore[arg-type]
        (lambda: ChannelPruneConfig(ratio=0.5, importance="l3"), r"importance='l3' is not one"),
        (lambda: ChannelPruneConfig(ratio=0.5, input_shape=(1, 0, 8)), r"input_shape=\(1, 0, 8\)"),
        (lambda: ChannelPruneConfig(ratio=0.5, round_to=0), r"round_to=0 is not a positive int"),
        (lambda: ChannelPruneConfig(ratio=0.5, round_to=True), r"round_to=True is not"),
    ],
)
def test_bad_configs_name_the_value(make_cfg, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        make_cfg()


def test_input_shape_from_hydra_lists() -> None:
    assert ChannelPruneConfig(ratio=0.5, input_shape=[1, 3, 8, 8]).input_shape == (1, 3, 8, 8)  # type: ignore[arg-type]


def test_models_it_cannot_prune_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="has no timm pretrained_cfg; pass input_shape"):
        compress.apply(make("cnn"), [ChannelPruneConfig(ratio=0.5)])
    with pytest.raises(ValueError, match="must come before prune and quant"):
        compress.apply(make("cnn"), [QuantConfig(bits=8), ChannelPruneConfig(ratio=0.5)])
    with pytest.raises(ValueError, match="must come before PruneConfig"):
        compress.estimate_size_bytes(make("cnn"), [PruneConfig(sparsity=0.5),
                                                   ChannelPruneConfig(ratio=0.5)])
    ghost = timm.create_model("ghostnet_050", pretrained=False, num_classes=10)
    with pytest.raises(ValueError, match="widths depend on the weights"):
        compress.apply(ghost, [ChannelPruneConfig(ratio=0.5, input_shape=SHAPE)])


def test_crafted_structure_is_refused(tmp_path: Path) -> None:
    model = make("cnn")
    compress.apply(model, [ChannelPruneConfig(ratio=0.5, input_shape=(1, 3, 32, 32))])
    compress.export(model, tmp_path / "m.dsz", meta={"kind": "cnn"})
    data = (tmp_path / "m.dsz").read_bytes()
    (hlen,) = struct.unpack("<I", data[8:12])
    header = json.loads(data[12 : 12 + hlen])
    for structure, message in [({"groups": {"0": 4}}, "does not fit"),
                               ({"groups": {"nope": 1}}, "does not fit"),
                               ({"groups": {"0": "1"}}, "'structure' must map"),
                               ({"lowrank": {"8": 10**9}}, "rank 1000000000 does not fit")]:
        raw = json.dumps({**header, "structure": structure}).encode()
        bad = tmp_path / "bad.dsz"
        bad.write_bytes(data[:8] + struct.pack("<I", len(raw)) + raw + data[12 + hlen :])
        with pytest.raises(ValueError, match=message):
            compress.load(bad, build)
    x = example_input("cnn")
    with torch.no_grad():
        assert torch.equal(compress.load(tmp_path / "m.dsz", build).eval()(x), model.eval()(x))
