"""The adaptive runtime (``search_spaces.AdaptiveModel``): one package of nested operating
points, each derived from the shared copy as a supernet's candidate is (slice, mask,
quantize, its own BatchNorm statistics); selecting by limits, switching in place, and
one-line refusals of a broken file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from test_sliced_supernet import CFG, SPEC  # the supernet tests' small space
from torch import nn

import compress
from search_spaces import (
    AdaptiveModel,
    OperatingPoint,
    SlicedSupernet,
    arch_contains,
    artifact_meta,
    bn_stats,
    get_search_space,
    save_adaptive,
    slice_to,
)
from search_spaces._adaptive_format import read_package, write_package

SPACE = get_search_space("mbconv", CFG)
SMALL = {"width_mult": 0.5, "depths": [1, 1, 1], "kernels": [3, 3, 3], "expansions": [1, 2, 2]}
MID = {"width_mult": 0.5, "depths": [1, 2, 2], "kernels": [3, 5, 3], "expansions": [1, 2, 4]}
LARGE = {"width_mult": 1.0, "depths": [2, 2, 2], "kernels": [3, 5, 5], "expansions": [1, 4, 4]}
# Smallest first: each point contains the next smaller in arch, bits and density.
COMPRESSION = [
    [compress.PruneConfig(sparsity=0.6), compress.QuantConfig(bits=3)],
    [compress.PruneConfig(sparsity=0.4), compress.QuantConfig(bits=4)],
    [compress.PruneConfig(sparsity=0.2), compress.QuantConfig(bits=8)],
]


def _describe(cfgs: list[Any]) -> list[dict[str, Any]]:
    names = {compress.get_technique_config(n): n for n in compress.list_techniques()}
    return [{"technique": names[type(c)], **dataclasses.asdict(c)} for c in cfgs]


def compress_weight(model: nn.Module, name: str) -> torch.Tensor:
    """A layer's weight as evaluated (masked, quantized)."""
    module = model.get_submodule(name.rsplit(".", 1)[0])
    return module.weight.detach()


def _calibrate(model: nn.Module, x: torch.Tensor) -> None:
    """Fresh BatchNorm statistics, as a search re-estimates them for each candidate."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, nn.Module]]:
    """A package of SMALL < MID < LARGE cut from a random supernet, and each point's
    model as the search derives it (its shared copy: LARGE's own compressed weights)."""
    torch.manual_seed(0)
    supernet = SlicedSupernet(SPACE, SPEC)
    x = torch.randn(64, 1, 16, 16)
    models, points = {}, []
    for i, (arch, cfgs) in enumerate(zip((SMALL, MID, LARGE), COMPRESSION, strict=True)):
        model = compress.apply(supernet.extract(arch), cfgs)
        _calibrate(model, x)
        models[f"p{i}"] = model
        points.append(OperatingPoint(
            name=f"p{i}", arch=arch, compression=_describe(cfgs), size_bytes=1000 * (i + 1),
            val_accuracy=0.5 + 0.1 * i, latency_ms={"phone": 1.0 + i, "host": 0.1 * (i + 1)},
            peak_memory_bytes={"phone": 1e4 * (i + 1), "host": 1e4 * (i + 1)},
        ))  # fmt: skip
    path = tmp_path_factory.mktemp("adaptive") / "a.dsza"
    meta = artifact_meta(SPACE, dataclasses.asdict(CFG), LARGE, SPEC, {})
    bn = {p: bn_stats(m) for p, m in models.items() if p != "p2"}
    save_adaptive(path, shared=models["p2"], meta=meta, points=points, bn=bn, nested=True)
    return path, models


def test_the_largest_point_is_the_shared_copy_exactly(package: Any) -> None:
    path, models = package
    model = AdaptiveModel.load(path)
    x = torch.randn(4, 1, 16, 16)
    assert model.current.name == "p2"  # it starts at the largest
    with torch.no_grad():
        torch.testing.assert_close(model(x), models["p2"].eval()(x), rtol=0, atol=1e-5)


def test_a_smaller_point_is_its_slice_masked_and_quantized_again(package: Any) -> None:
    """The shared copy is LARGE at 8 bits and 20% sparsity; MID (4 bits, 40%) derived
    from it is within about 1% of MID derived from the fp32 supernet (the search's),
    not equal: the shared copy's rounding. Its masks nest: a weight pruned in the
    shared copy stays pruned."""
    path, models = package
    model = AdaptiveModel.load(path)
    mid = model.derive("p1")
    for name, w in mid.state_dict().items():
        if name.endswith(".weight") and w.dim() > 1:
            search = compress_weight(models["p1"], name)
            # Up to the shared copy's rounding: codes near a half step may differ, and
            # the point's scale (from its slice's largest weight) by one fp16 step.
            assert torch.isclose(w, search, rtol=0.02, atol=0).float().mean() > 0.95, name
            assert (w - search).abs().sum() / search.abs().sum() < 0.03, name
    shared = model._shared
    for name, w in mid.state_dict().items():
        if name.endswith("weight") and w.dim() == 4 and "bn" not in name:
            from search_spaces import slice_to

            pruned_shared = slice_to(shared[name], w.shape) == 0
            assert torch.all(w[pruned_shared] == 0), name
    # 4 bits, per output channel: at most 15 distinct codes per channel.
    conv = mid.conv_stem.weight
    assert max(len(torch.unique(c)) for c in conv) <= 15


def test_points_keep_their_own_batchnorm_statistics(package: Any) -> None:
    path, models = package
    model = AdaptiveModel.load(path)
    small = model.derive("p0")

    # Stored in 8 bits (search_spaces._adaptive_bn): close in what BatchNorm computes,
    # the mean in units of sqrt(var + eps) and var + eps relatively.
    def batchnorms(m: nn.Module) -> list[nn.BatchNorm2d]:
        return [b for b in m.modules() if isinstance(b, nn.BatchNorm2d)]

    bns = list(zip(batchnorms(small), batchnorms(models["p0"]), strict=True))
    assert bns
    for a, b in bns:
        sd = (b.running_var + 1e-5).sqrt()
        assert ((a.running_mean - b.running_mean).abs() / sd).max() < 0.05
        assert ((a.running_var + 1e-5) / (b.running_var + 1e-5)).log().abs().max() < 0.05


def test_select_takes_the_most_accurate_point_within_every_limit(package: Any) -> None:
    model = AdaptiveModel.load(package[0])
    assert model.select().name == "p2"
    assert model.select(latency_ms=2.5, device="phone").name == "p1"
    assert model.select(latency_ms=0.15, device="host").name == "p0"
    assert model.select(size_bytes=1500).name == "p0"
    assert model.select(memory_bytes=2.5e4, device="phone").name == "p1"
    assert model.select(latency_ms=0.5, device="phone") is None  # nothing fits
    with pytest.raises(ValueError, match="name a device, one of \\['host', 'phone'\\]"):
        model.select(latency_ms=1.0)
    with pytest.raises(ValueError, match="device='mcu' has no latency_ms"):
        model.select(latency_ms=1.0, device="mcu")


def test_switch_changes_the_point_in_place(package: Any) -> None:
    model = AdaptiveModel.load(package[0])
    x = torch.randn(2, 1, 16, 16)
    before = model(x)
    same = id(model)
    assert model.switch("p0").name == "p0" and model.current.name == "p0"
    assert id(model) == same and not torch.equal(model(x), before)
    model.switch(2)
    torch.testing.assert_close(model(x), before)
    with pytest.raises(KeyError, match="no point 'p9'"):
        model.switch("p9")


def test_arch_contains_is_the_nesting_order() -> None:
    assert arch_contains(LARGE, MID) and arch_contains(MID, SMALL) and arch_contains(LARGE, LARGE)
    assert not arch_contains(MID, LARGE)
    assert not arch_contains({**MID, "kernels": [3, 3, 5]}, MID)  # one stage's kernel is less


def test_a_broken_package_is_refused_in_one_line(tmp_path: Path, package: Any) -> None:
    data = package[0].read_bytes()
    bad = tmp_path / "bad.dsza"
    bad.write_bytes(b"not a package")
    with pytest.raises(ValueError, match="is not a downsize adaptive package"):
        AdaptiveModel.load(bad)
    bad.write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        AdaptiveModel.load(bad)


def test_the_format_round_trips_and_deflates_only_what_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "x.dsza"
    blobs = {"zeros": bytes(1000), "noise": torch.randint(0, 256, (300,)).byte().numpy().tobytes()}
    size = write_package(path, {"space": "mbconv", "points": []}, blobs)
    assert size == path.stat().st_size
    header, back = read_package(path)
    assert back == blobs
    table = {b["name"]: b for b in header["blobs"]}
    assert table["zeros"]["deflate"] and not table["noise"]["deflate"]
    assert json.loads(json.dumps(header))["format"] == "downsize-adaptive"


def test_the_runtime_needs_no_search_stack(package: Any) -> None:
    """Loading and switching imports torch, compress and search_spaces only: no nas,
    optuna, mlflow, hydra or ray (a device ships the runtime, not the search)."""
    import subprocess
    import sys

    code = (
        "import sys; from search_spaces import AdaptiveModel; "
        f"m = AdaptiveModel.load({str(package[0])!r}); m.switch('p0'); "
        "print(sorted({n.split('.')[0] for n in sys.modules} & "
        "{'nas', 'optuna', 'mlflow', 'hydra', 'omegaconf', 'ray'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_stored_masks_nest_and_decode_to_what_was_encoded() -> None:
    """Each point's own mask, intersected with the next larger one's, packed as one bit
    per weight the larger keeps in the smaller's slice; decoding gives them back."""
    from search_spaces import decode_masks, encode_masks, target_shapes

    torch.manual_seed(1)
    supernet = SlicedSupernet(SPACE, SPEC)
    own = []
    for arch, sparsity in ((SMALL, 0.7), (MID, 0.5), (LARGE, 0.2)):
        model = compress.bake(supernet.extract(arch), [compress.PruneConfig(sparsity=sparsity)])
        own.append({n: t != 0 for n, t in model.state_dict().items() if n in target_shapes(model)})
    shapes = [{n: tuple(m.shape) for n, m in o.items()} for o in own]
    data, masks = encode_masks(own[-1], own, shapes)
    decoded = decode_masks(own[-1], shapes, data)
    assert all(torch.equal(a[n], b[n]) for a, b in zip(decoded, masks, strict=True) for n in a)
    for i, (small, big) in enumerate(zip(masks, masks[1:], strict=False)):
        for name, m in small.items():
            assert not torch.any(m & ~slice_to(big[name], m.shape)), name  # nested
            assert torch.equal(m, own[i][name] & slice_to(big[name], m.shape))
    assert len(data) * 8 >= sum(
        int(slice_to(big[n], m.shape).sum())
        for small, big in zip(masks, masks[1:], strict=False)
        for n, m in small.items()
    )


def test_masks_of_points_that_do_not_nest_are_stored_within_their_union() -> None:
    from search_spaces import decode_masks, encode_masks, target_shapes

    torch.manual_seed(2)
    supernet = SlicedSupernet(SPACE, SPEC)
    deep = {**SMALL, "depths": [2, 2, 2]}  # deeper than WIDE, narrower than it
    wide = {**SMALL, "width_mult": 1.0}
    union = compress.bake(supernet.extract(LARGE), [compress.PruneConfig(sparsity=0.1)])
    base = {n: t != 0 for n, t in union.state_dict().items() if n in target_shapes(union)}
    own = []
    for arch in (deep, wide):
        model = compress.bake(supernet.extract(arch), [compress.PruneConfig(sparsity=0.5)])
        own.append({n: t != 0 for n, t in model.state_dict().items() if n in target_shapes(model)})
    shapes = [{n: tuple(m.shape) for n, m in o.items()} for o in own]
    data, masks = encode_masks(base, own, shapes, nested=False)
    decoded = decode_masks(base, shapes, data, nested=False)
    for i, m in enumerate(decoded):
        for name, mask in m.items():
            assert torch.equal(mask, masks[i][name])
            assert torch.equal(mask, own[i][name] & slice_to(base[name], mask.shape))
