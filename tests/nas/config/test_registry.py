"""``nas.config.Registry``, the one helper behind every registry of ``nas``: names
listed without importing anything, lazy entries imported on first ``get``, unknown
names refused with the valid ones, duplicates refused."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from nas.config import ConfigError, Registry

MODULE = "registry_test_plugin"


@pytest.fixture
def lazy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module, not yet imported, holding ``thing`` (a function that registers itself
    in the registry it is given, as ``nas.runners._local`` does) and ``other``."""
    (tmp_path / f"{MODULE}.py").write_text(
        textwrap.dedent(
            """
            import builtins

            registry = builtins.registry_under_test

            @registry.register("thing")
            def thing():
                return "thing"

            def other():
                return "other"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    return MODULE


@pytest.fixture
def registry(lazy_module: str, monkeypatch: pytest.MonkeyPatch) -> Registry:
    reg: Registry = Registry(
        "widget", lazy={"thing": f"{lazy_module}:thing", "other": f"{lazy_module}:other"}
    )
    monkeypatch.setattr("builtins.registry_under_test", reg, raising=False)
    return reg


def test_lazy_entries_import_nothing_until_get(registry: Registry) -> None:
    assert registry.names() == ["other", "thing"]
    assert "thing" in registry and "nosuch" not in registry
    assert list(registry) == ["other", "thing"]
    registry.check("thing")
    assert MODULE not in sys.modules  # listing and checking import nothing

    thing = registry.get("thing")
    assert MODULE in sys.modules and thing() == "thing"
    assert registry.get("thing") is thing  # imported once, then kept
    assert registry.get("other")() == "other"  # a lazy entry need not register itself


def test_eager_entries_are_listed_with_the_lazy_ones(registry: Registry) -> None:
    @registry.register("eager")
    def eager() -> str:
        return "eager"

    assert eager() == "eager"  # the decorator returns what it registered
    registry.add("added", len)
    assert registry.names() == ["added", "eager", "other", "thing"]
    assert registry.get("eager") is eager and registry.get("added") is len


def test_an_unknown_name_lists_the_valid_ones(registry: Registry) -> None:
    with pytest.raises(ConfigError, match=r"^widget=nosuch is not known; choose one of: "):
        registry.get("nosuch")
    with pytest.raises(ConfigError) as refused:
        registry.check("nosuch", key="widget.name")
    assert str(refused.value) == ("widget.name=nosuch is not known; choose one of: other, thing")
    assert MODULE not in sys.modules


def test_duplicates_are_refused(registry: Registry) -> None:
    registry.add("eager", len)
    with pytest.raises(ValueError, match="widget 'eager' is already registered"):
        registry.add("eager", len)
    with pytest.raises(ValueError, match="widget 'eager' is already registered"):
        registry.register("eager")(max)
    assert registry.get("eager") is len


def test_a_lazy_name_is_taken_before_its_module_is_imported(registry: Registry) -> None:
    """Registering another object under a built-in's name is refused even before the
    built-in's module is imported (it would shadow it, then break that import)."""
    with pytest.raises(ValueError, match="widget 'thing' is already registered"):
        registry.register("thing")(max)
    assert MODULE not in sys.modules
    assert registry.get("thing")() == "thing"  # the module's own registration is accepted
    with pytest.raises(ValueError, match="already registered"):
        registry.register("thing")(max)
