"""Architecture search spaces: architectures as data, built into ``nn.Module`` s.

Importing this package is light (no torch): a space's builder module is imported
the first time the space is constructed, so configs validate in milliseconds.
"""

from __future__ import annotations

from search_spaces._configs import LENET5, LENET_300_100, MBConvSpaceConfig, TinySpaceConfig
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

__all__ = [
    "Arch",
    "InputSpec",
    "LENET5",
    "LENET_300_100",
    "MBConvSpaceConfig",
    "SearchSpace",
    "Suggest",
    "TinySpaceConfig",
    "artifact_meta",
    "build_from_meta",
    "get_search_space",
    "list_search_spaces",
    "register_search_space",
    "search_space_config",
]
