"""Lazy public names for a package ``__init__`` (PEP 562), as ``compress`` does.

A package lists ``{public name: private module}``; a name's module is imported on
first access. So ``import nas`` or ``import nas.runners`` costs nothing, and the
command line can validate a config before torch is imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``names[name]`` and returns its ``name``."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        # Cache on the package, so the next access is a plain attribute lookup.
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
