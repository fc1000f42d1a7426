"""Every registry of ``nas`` keeps the same contract (``nas.config.Registry``), checked
for each of its names: the name resolves, an unknown name is refused with the valid
ones, a name cannot be registered twice, and where a Hydra group chooses the entry,
the names are that group's options (``conf/<group>/<name>.yaml``)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from nas.config import ConfigError, Registry, conf_dir

# id -> (package, registry, the conf group whose options name its entries, or None)
REGISTRIES: dict[str, tuple[str, str, str | None]] = {
    "runners": ("nas.runners", "RUNNERS", "runner"),
    "samplers": ("nas.study", "SAMPLERS", "sampler"),
    "early_stoppers": ("nas.study", "EARLY_STOPPERS", "early_stop"),
    "strategies": ("nas.pipeline", "STRATEGIES", "strategy"),
    "teachers": ("nas.pipeline", "TEACHERS", None),  # compress.teacher=<name>[:<arg>]
    "datasets": ("nas.pipeline", "DATASETS", "dataset"),
    "latency_methods": ("nas.hw", "LATENCY_METHODS", None),  # a profile's `latency:`
}


def _registry(kind: str) -> Registry[Any]:
    package, attr, _ = REGISTRIES[kind]
    return getattr(importlib.import_module(package), attr)


# The built-in names, as collected (a test may register its own entries later).
BUILT_IN = {kind: _registry(kind).names() for kind in REGISTRIES}
ENTRIES = [
    pytest.param(kind, name, id=f"{kind}-{name}") for kind in REGISTRIES for name in BUILT_IN[kind]
]


def test_every_registry_has_entries() -> None:
    assert all(BUILT_IN.values()), BUILT_IN


@pytest.mark.parametrize(("kind", "name"), ENTRIES)
def test_every_name_resolves(kind: str, name: str) -> None:
    registry = _registry(kind)
    assert name in registry
    registry.check(name)
    entry = registry.get(name)
    assert callable(entry), entry  # a class, a factory or a function, by the registry
    assert registry.get(name) is entry


@pytest.mark.parametrize("kind", REGISTRIES)
def test_an_unknown_name_is_refused_with_the_valid_names(kind: str) -> None:
    registry = _registry(kind)
    with pytest.raises(ConfigError) as refused:
        registry.get("nosuch")
    message = str(refused.value)
    assert message == (
        f"{registry.kind}=nosuch is not known; choose one of: {', '.join(registry.names())}"
    )
    assert all(name in message for name in BUILT_IN[kind])


@pytest.mark.parametrize(("kind", "name"), ENTRIES)
def test_a_name_cannot_be_registered_twice(kind: str, name: str) -> None:
    registry = _registry(kind)
    entry = registry.get(name)

    def impostor(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a duplicate registration replaced the built-in entry")

    with pytest.raises(ValueError, match=f"'{name}' is already registered"):
        registry.register(name)(impostor)
    with pytest.raises(ValueError, match=f"'{name}' is already registered"):
        registry.add(name, impostor)
    assert registry.get(name) is entry


@pytest.mark.parametrize("kind", [k for k, (_, _, group) in REGISTRIES.items() if group])
def test_names_are_the_config_group_options(kind: str) -> None:
    group = REGISTRIES[kind][2]
    options = sorted(p.stem for p in (conf_dir() / str(group)).glob("*.yaml"))
    assert BUILT_IN[kind] == options
