"""Architecture search spaces: architectures as data, built into ``nn.Module`` s.

Importing this package is light (no torch): a space's builder module is imported
the first time the space is constructed, so configs validate in milliseconds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from search_spaces._configs import (
    BUILTIN_MODULES,
    FBNET_NUM_LAYERS,
    FBNET_OPS,
    LENET5,
    LENET_300_100,
    NESTED_SPACES,
    FBNetSpaceConfig,
    MBConvSpaceConfig,
    TinySpaceConfig,
)
from search_spaces._header import artifact_meta, build_from_meta
from search_spaces._registry import (
    Arch,
    InputSpec,
    SearchSpace,
    Suggest,
    get_search_space,
    list_search_spaces,
    register_search_space,
    search_space_config,
)

if TYPE_CHECKING:
    from search_spaces._adaptive import (
        AdaptiveModel,
        OperatingPoint,
        arch_contains,
        bn_stats,
        save_adaptive,
    )
    from search_spaces._adaptive_masks import decode_masks, encode_masks, target_shapes
    from search_spaces._fbnet import FBNet, build_fbnet_layer, fbnet_layer_shapes
    from search_spaces._supernet import SlicedSupernet, slice_to

# The FBNet builder's names, loaded on first access (they import torch).
_LAZY = {
    name: "search_spaces._fbnet" for name in ("FBNet", "build_fbnet_layer", "fbnet_layer_shapes")
}
_LAZY.update({name: "search_spaces._supernet" for name in ("SlicedSupernet", "slice_to")})
# The adaptive runtime (one package, many operating points): torch and compress.
_LAZY.update(
    {
        name: "search_spaces._adaptive_masks"
        for name in ("decode_masks", "encode_masks", "target_shapes")
    }
)
_LAZY.update(
    {
        name: "search_spaces._adaptive"
        for name in (
            "AdaptiveModel",
            "OperatingPoint",
            "arch_contains",
            "bn_stats",
            "save_adaptive",
        )
    }
)

__all__ = [
    "AdaptiveModel",
    "BUILTIN_MODULES",
    "NESTED_SPACES",
    "FBNET_NUM_LAYERS",
    "FBNET_OPS",
    "FBNet",
    "FBNetSpaceConfig",
    "Arch",
    "InputSpec",
    "LENET5",
    "LENET_300_100",
    "MBConvSpaceConfig",
    "OperatingPoint",
    "SearchSpace",
    "SlicedSupernet",
    "Suggest",
    "TinySpaceConfig",
    "arch_contains",
    "artifact_meta",
    "bn_stats",
    "decode_masks",
    "encode_masks",
    "build_fbnet_layer",
    "build_from_meta",
    "fbnet_layer_shapes",
    "get_search_space",
    "list_search_spaces",
    "register_search_space",
    "save_adaptive",
    "search_space_config",
    "slice_to",
    "target_shapes",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'search_spaces' has no attribute {name!r}")
