"""Architecture search spaces: architectures as data, built into ``nn.Module`` s."""

from __future__ import annotations

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
    "SearchSpace",
    "Suggest",
    "get_search_space",
    "list_search_spaces",
    "register_search_space",
    "search_space_config",
]
