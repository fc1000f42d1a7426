"""One stored model, many operating points: switch sub-network, bit-width and sparsity
at run time, with the resources at hand.

An adaptive package (``python -m nas.export RUN --adaptive``) holds one *shared* copy
of weights, the compressed weights of the largest architecture its points need, and
per point its architecture, compression, BatchNorm statistics and figures. Every
point is derived from the shared copy as the search derived a candidate from its
supernet (``search_spaces._supernet``):

- **width, depth, kernel**: the point's tensors are slices of the shared ones
  (leading channels, first blocks of a stage, centre of a kernel);
- **sparsity**: a magnitude mask of the sliced weights at the point's own sparsity.
  The shared copy's pruned weights are zeros, the smallest magnitudes, so they stay
  pruned: a smaller point's mask nests in the shared one;
- **bit-width**: the sliced weights quantized again at the point's bits, per output
  channel, as ``compress`` quantizes any weight. From a ``b``-bit shared copy this
  keeps, for each weight, the top ``k`` bits of its code up to rounding (Any-Precision
  DNNs' derivation), with the scale of the point's own slice;
- **BatchNorm**: the point's own statistics, stored (a sub-network's differ from the
  largest's, and re-estimating them needs data a device does not have).

Slimmable networks and Any-Precision DNNs switch one of these; Dynamic-OFA switches
OFA sub-networks by load. This runtime switches all three from one file, and needs
only torch, ``compress`` and ``search_spaces``.

Typical use::

    model = AdaptiveModel.load("adaptive.dsza")
    point = model.select(latency_ms=0.5, device="mobile") or model.points[0]
    model.switch(point)
    logits = model(images)
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

import compress
from search_spaces._adaptive_bn import decode_bn, encode_bn
from search_spaces._adaptive_format import read_package, write_package
from search_spaces._adaptive_masks import Masks, decode_masks, target_shapes
from search_spaces._header import build_from_meta
from search_spaces._registry import Arch, InputSpec, get_search_space, search_space_config
from search_spaces._supernet import slice_to

__all__ = [
    "AdaptiveModel",
    "OperatingPoint",
    "arch_contains",
    "bn_stats",
    "save_adaptive",
]


@dataclass
class OperatingPoint:
    """One operating point of an adaptive package.

    Attributes:
        name: ``p0`` (the smallest) to ``pN``.
        arch: the architecture, a slice of the shared one.
        compression: the ``compress`` techniques applied, in order, each as
            ``{"technique": <registry name>, **its config}``.
        size_bytes: the bytes of this point's own artifact (what shipping it alone costs).
        val_accuracy: measured on the search's val split, from the package.
        latency_ms: per device, as the search measured or predicted it.
        peak_memory_bytes: per device, the peak activation memory.
        info: provenance (the search's trial, its inherited estimate, ...).
    """

    name: str
    arch: Arch
    compression: list[dict[str, Any]]
    size_bytes: int
    val_accuracy: float
    latency_ms: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def configs(self) -> list[Any]:
        """The ``compress`` config objects of :attr:`compression`."""
        out = []
        for entry in self.compression:
            kw = {k: v for k, v in entry.items() if k != "technique"}
            out.append(compress.get_technique_config(entry["technique"])(**kw))
        return out


def arch_contains(big: Any, small: Any) -> bool:
    """Whether ``small`` is a slice of ``big`` in a nested space: every number of its
    architecture at most ``big``'s (width, depth per stage, kernel, expansion)."""
    if isinstance(big, Mapping) and isinstance(small, Mapping):
        return big.keys() == small.keys() and all(arch_contains(big[k], small[k]) for k in big)
    if isinstance(big, list | tuple) and isinstance(small, list | tuple):
        return len(big) == len(small) and all(
            arch_contains(b, s) for b, s in zip(big, small, strict=True)
        )
    if isinstance(big, int | float) and isinstance(small, int | float):
        return float(small) <= float(big)
    return bool(big == small)


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def bn_stats(model: nn.Module) -> torch.Tensor:
    """Every BatchNorm's running mean then variance, in module order, flat (fp32)."""
    parts = []
    for bn in _batchnorms(model):
        assert bn.running_mean is not None and bn.running_var is not None
        parts += [bn.running_mean.flatten(), bn.running_var.flatten()]
    return torch.cat(parts).float() if parts else torch.zeros(0)


def _bn_sizes(model: nn.Module) -> list[int]:
    return [bn.num_features for bn in _batchnorms(model)]


def _set_bn_stats(model: nn.Module, flat: torch.Tensor) -> None:
    offset = 0
    for bn in _batchnorms(model):
        for t in (bn.running_mean, bn.running_var):
            assert t is not None
            n = t.numel()
            if offset + n > flat.numel():
                raise ValueError("the stored BatchNorm statistics do not fit the point's model")
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n
    if offset != flat.numel():
        raise ValueError("the stored BatchNorm statistics do not fit the point's model")


class AdaptiveModel(nn.Module):
    """A module that runs one operating point of an adaptive package at a time.

    Args:
        header: the package's header; ``shared``: the shared weights (a state dict);
        bn: per point name, its stored BatchNorm statistics (``_adaptive_bn``; absent:
            the shared copy's); each is decoded on the point's first derivation.
        cache: derived points kept in memory (least recently used dropped); a switch
            to a cached point costs nothing, to another one a derivation.
    """

    def __init__(
        self,
        header: dict[str, Any],
        shared: dict[str, torch.Tensor],
        bn: dict[str, bytes],
        *,
        masks: bytes | None = None,
        cache: int = 0,
    ) -> None:
        super().__init__()
        self.header = header
        self.points = [OperatingPoint(**p) for p in header["points"]]
        self.nested = bool(header.get("nested", True))
        name = header["space"]
        self._space = get_search_space(name, search_space_config(name)(**header["space_cfg"]))
        self._spec = InputSpec(**header["spec"])
        self._shared, self._bn, self._cache_size = shared, bn, int(cache)
        self._bn_refs: dict[str, str | None] = dict(header.get("bn_refs", {}))
        self._bn_decoded: dict[str, torch.Tensor] = {}
        self._masks: dict[str, Masks] = {}
        if masks is not None:
            base = {
                n: shared[n] != 0
                for n in target_shapes(self._space.build(header["shared_arch"], self._spec))
            }
            shapes = [target_shapes(self._space.build(p.arch, self._spec)) for p in self.points]
            decoded = decode_masks(base, shapes, masks, nested=self.nested)
            self._masks = {p.name: m for p, m in zip(self.points, decoded, strict=True)}
        self._cache: OrderedDict[str, nn.Module] = OrderedDict()
        self.current = self.points[-1]
        self.net = self.derive(self.current)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, cache: int = 0) -> AdaptiveModel:
        """Read a package written by :func:`save_adaptive` (nothing is unpickled); the
        model starts at its largest point."""
        header, blobs = read_package(path)
        if "shared" not in blobs:
            raise ValueError(f"{path}: no shared weights in the package")
        fd, tmp = tempfile.mkstemp(suffix=".dsz")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blobs["shared"])
            shared = compress.load(tmp, build_from_meta)
        finally:
            os.unlink(tmp)
        state = {k: v.detach().clone() for k, v in shared.state_dict().items()}
        bn = {name[len("bn.") :]: data for name, data in blobs.items() if name.startswith("bn.")}
        return cls(header, state, bn, masks=blobs.get("masks"), cache=cache)

    def point(self, which: OperatingPoint | str | int) -> OperatingPoint:
        """A point by itself, its name, or its index (0: the smallest)."""
        if isinstance(which, OperatingPoint):
            which = which.name
        if isinstance(which, int):
            return self.points[which]
        for p in self.points:
            if p.name == which:
                return p
        raise KeyError(f"no point {which!r}; the package has {[p.name for p in self.points]}")

    @torch.no_grad()
    def derive(self, which: OperatingPoint | str | int) -> nn.Module:
        """A standalone module of one point, derived from the shared weights."""
        point = self.point(which)
        model = self._space.build(point.arch, self._spec)
        for name, t in model.state_dict().items():
            t.copy_(slice_to(self._shared[name], t.shape))
        if point.name in self._bn:
            _set_bn_stats(model, self._bn_stats(point.name, _bn_sizes(model)))
        cfgs = point.configs()
        if point.name in self._masks:  # the stored nested masks replace a ranking
            masks = self._masks[point.name]
            for name, m in model.named_modules():
                if f"{name}.weight" in masks:
                    m.weight.mul_(masks[f"{name}.weight"].to(m.weight.dtype))
            cfgs = [c for c in cfgs if not isinstance(c, compress.PruneConfig)]
        return compress.bake(model, cfgs).eval()

    def _bn_stats(self, name: str, sizes: list[int]) -> torch.Tensor:
        """A point's stored statistics, decoded (against its reference's, decoded first)."""
        if name not in self._bn_decoded:
            ref_name = self._bn_refs.get(name)
            ref = None if ref_name is None else self._bn_stats(ref_name, sizes)
            self._bn_decoded[name] = decode_bn(self._bn[name], sizes, ref)
        return self._bn_decoded[name]

    def switch(self, which: OperatingPoint | str | int) -> OperatingPoint:
        """Run ``which`` from now on (in place: the same module object)."""
        point = self.point(which)
        if point.name == self.current.name:
            return point
        net = self._cache.pop(point.name, None)
        if net is None:
            net = self.derive(point)
        if self._cache_size > 0:
            self._cache[self.current.name] = self.net
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self.net, self.current = net, point
        return point

    def select(
        self,
        *,
        latency_ms: float | None = None,
        memory_bytes: float | None = None,
        size_bytes: float | None = None,
        device: str | None = None,
    ) -> OperatingPoint | None:
        """The most accurate point within every limit given (None: no point is).

        ``device`` names whose latency and peak memory to read; it may be left out
        when the points carry one device's figures.
        """
        fits = [
            p
            for p in self.points
            if (size_bytes is None or p.size_bytes <= size_bytes)
            and (latency_ms is None or _figure(p.latency_ms, device, "latency_ms") <= latency_ms)
            and (
                memory_bytes is None
                or _figure(p.peak_memory_bytes, device, "peak_memory_bytes") <= memory_bytes
            )
        ]
        return max(fits, key=lambda p: (p.val_accuracy, -p.size_bytes), default=None)

    def measure_latency(
        self, example: torch.Tensor, *, device: str = "host", repeats: int = 20
    ) -> dict[str, float]:
        """Time every point on this machine (median of ``repeats`` after a warm-up) and
        record it as ``latency_ms[device]``; returns point name -> ms."""
        out = {}
        for p in self.points:
            net = self.derive(p)
            with torch.inference_mode():
                for _ in range(3):
                    net(example)
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    net(example)
                    times.append((time.perf_counter() - start) * 1e3)
            p.latency_ms[device] = out[p.name] = float(np.median(times))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _figure(per_device: dict[str, float], device: str | None, what: str) -> float:
    if device is None:
        if len(per_device) != 1:
            raise ValueError(
                f"{what}: name a device, one of {sorted(per_device)}"
                if per_device
                else f"{what}: the package records none"
            )
        return float(next(iter(per_device.values())))
    if device not in per_device:
        raise ValueError(f"device={device!r} has no {what}; the package has {sorted(per_device)}")
    return float(per_device[device])


def save_adaptive(
    path: str | os.PathLike[str],
    *,
    shared: nn.Module,
    meta: dict[str, Any],
    points: Sequence[OperatingPoint],
    bn: Mapping[str, torch.Tensor],
    nested: bool,
    masks: bytes | None = None,
) -> int:
    """Write an adaptive package; returns its bytes.

    Args:
        shared: the shared copy, compressed (masks, fake quantization) as it is to be
            stored; ``meta`` its artifact header (``search_spaces.artifact_meta``).
        points: smallest first; each arch a slice of ``meta["arch"]``.
        bn: per point name, its BatchNorm statistics (:func:`bn_stats`); a point left
            out uses the shared copy's.
        nested: whether each point contains the next smaller (recorded, for users).
        masks: the points' nested pruning masks (``_adaptive_masks.encode_masks``);
            without them a point's mask is ranked from the shared copy's weights.
    """
    fd, tmp = tempfile.mkstemp(suffix=".dsz")
    os.close(fd)
    try:
        compress.export(shared, tmp, meta=meta)
        with open(tmp, "rb") as f:
            blobs = {"shared": f.read()}
    finally:
        os.unlink(tmp)
    if masks is not None:
        blobs["masks"] = masks
    refs = _encode_bns(meta, points, bn, blobs)
    header = {
        "space": meta["space"],
        "space_cfg": meta["space_cfg"],
        "spec": meta["spec"],
        "shared_arch": meta["arch"],
        "shared_compression": meta.get("compression", {}),
        "nested": bool(nested),
        "points": [asdict(p) for p in points],
        "bn_refs": refs,
    }
    return write_package(path, header, blobs)


def _encode_bns(
    meta: dict[str, Any],
    points: Sequence[OperatingPoint],
    bn: Mapping[str, torch.Tensor],
    blobs: dict[str, bytes],
) -> dict[str, str | None]:
    """Each point's statistics in 8 bits (``_adaptive_bn``) into ``blobs``, against the
    largest stored point of the same BatchNorm layout (its last in ``points``, itself
    stored against none, so no chain forms); returns each point's reference."""
    space = get_search_space(meta["space"], search_space_config(meta["space"])(**meta["space_cfg"]))
    spec = InputSpec(**meta["spec"])
    sizes = {p.name: _bn_sizes(space.build(p.arch, spec)) for p in points if p.name in bn}
    last = {tuple(s): name for name, s in sizes.items()}  # points are smallest first
    refs: dict[str, str | None] = {}
    decoded: dict[str, torch.Tensor] = {}
    for name in sorted(sizes, key=lambda n: n != last[tuple(sizes[n])]):  # references first
        ref = last[tuple(sizes[name])]
        refs[name] = None if ref == name else ref
        against = None if refs[name] is None else decoded[ref]
        blobs[f"bn.{name}"] = encode_bn(bn[name], sizes[name], against)
        if refs[name] is None:  # a reference: the others are coded against what a reader decodes
            decoded[name] = decode_bn(blobs[f"bn.{name}"], sizes[name], None)
    return refs
