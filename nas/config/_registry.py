"""One registry helper for every extensible thing of ``nas``: a name -> object map.

Modelled on Ray Tune's ``create_searcher`` (a name maps to a lazy import, so listing
the choices imports nothing heavy) and timm's ``_registry.py`` (``register_model``,
``list_models``, ``is_model``). The key is always the name of the Hydra option
(``conf/<group>/<name>.yaml``), so a config and a registry entry meet by name.

Each registry lives beside what it holds (``nas.runners.RUNNERS``,
``nas.study.SAMPLERS``, ...); ``compress`` and ``search_spaces`` keep their own,
since they do not depend on ``nas``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from nas.config._schema import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, registered eagerly or by a lazy ``"module:attr"``.

    Args:
        kind: what an entry is, as the config names it (``"runner"``, ``"sampler"``):
            it opens every error message, e.g. ``runner=foo is not known; ...``.
        lazy: built-in entries, name -> ``"package.module:attr"``, imported on first
            :meth:`get`; listing them imports nothing.
    """

    def __init__(self, kind: str, *, lazy: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._lazy: dict[str, str] = dict(lazy or {})

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` (refuses duplicates)."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        # A lazy name is taken too, before its module is imported: only that module's
        # own registration of it (the object the lazy entry points at) is accepted.
        if name in self._entries or (name in self._lazy and not self._is_lazy_target(name, obj)):
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj

    def _is_lazy_target(self, name: str, obj: object) -> bool:
        module, _, attr = self._lazy[name].partition(":")
        return getattr(obj, "__module__", None) == module and (
            getattr(obj, "__qualname__", None) == attr
        )

    def names(self) -> list[str]:
        """Every valid name, registered or lazily known, sorted."""
        return sorted(set(self._entries) | set(self._lazy))

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def check(self, name: str, *, key: str | None = None) -> None:
        """Raise :class:`ConfigError` naming the valid choices unless ``name`` is one."""
        if name not in self:
            shown = key or self.kind
            raise ConfigError(
                f"{shown}={name} is not known; choose one of: {', '.join(self.names())}"
            )

    def get(self, name: str) -> T:
        """The entry ``name``, importing its module first if it is a lazy one.

        Raises:
            ConfigError: ``name`` is not registered (the message lists the names).
        """
        self.check(name)
        if name not in self._entries:
            module, _, attr = self._lazy[name].partition(":")
            loaded = getattr(importlib.import_module(module), attr)
            # Importing the module may have registered it already (a decorator).
            self._entries.setdefault(name, loaded)
        return self._entries[name]
