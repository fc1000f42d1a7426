"""Measured FBNet-space latencies shipped in ``nas/hw/data`` and their network features.

Data: HW-NAS-Bench (Li et al., ICLR 2021) via HELP (Lee et al., NeurIPS 2021); see
``nas/hw/data/PROVENANCE.md``. Used to fit and to check the latency models.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from nas.hw._features import LayerFeature, layer_features
from nas.hw._predictor import network_features

__all__ = ["FBNetLatencies", "fbnet_network_features", "fbnet_split", "load_fbnet_latencies"]

IMAGE_SIZE = 32
NUM_CLASSES = 100


@dataclass(frozen=True)
class FBNetLatencies:
    """Whole-network latencies: ``ops[i]`` (22 op names) took ``latency_ms[device][i]`` ms."""

    ops: list[list[str]]
    latency_ms: dict[str, np.ndarray]


def load_fbnet_latencies() -> FBNetLatencies:
    """Read ``fbnet_latency.csv`` from the package data."""
    text = resources.files("nas.hw").joinpath("data", "fbnet_latency.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    devices = [c[: -len("_ms")] for c in rows[0] if c.endswith("_ms")]
    return FBNetLatencies(
        ops=[r["ops"].split() for r in rows],
        latency_ms={d: np.array([float(r[f"{d}_ms"]) for r in rows]) for d in devices},
    )


def fbnet_split(n: int, *, seed: int, train_fraction: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, held-out) index split of ``n`` networks."""
    perm = np.random.default_rng(seed).permutation(n)
    cut = int(round(train_fraction * n))
    return np.sort(perm[:cut]), np.sort(perm[cut:])


def fbnet_network_features(ops: Sequence[str]) -> dict[str, float]:
    """Network features of the FBNet network with ``ops``, from cached per-layer features."""
    feats = list(_base_layers())
    for i, op in enumerate(ops):
        feats.extend(_layer(i, op))
    return network_features(feats)


@cache
def _base_layers() -> tuple[LayerFeature, ...]:
    """Features of the stem and head, which every network shares."""
    from search_spaces import FBNet, fbnet_layer_shapes

    model = FBNet(["skip"] * len(fbnet_layer_shapes()), num_classes=NUM_CLASSES)
    _, cout, stride, size = fbnet_layer_shapes(IMAGE_SIZE)[-1]
    head_size = (size - 1) // stride + 1
    stem = layer_features(model.stem, (1, 3, IMAGE_SIZE, IMAGE_SIZE))
    head = layer_features(model.head, (1, cout, head_size, head_size))
    return tuple(stem + head)


@cache
def _layer(index: int, op: str) -> tuple[LayerFeature, ...]:
    from search_spaces import build_fbnet_layer, fbnet_layer_shapes

    cin, cout, stride, size = fbnet_layer_shapes(IMAGE_SIZE)[index]
    return tuple(layer_features(build_fbnet_layer(op, cin, cout, stride), (1, cin, size, size)))
