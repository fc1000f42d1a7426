"""The search-space registry and the small interface every space implements.

A search space turns sampled choices into an *architecture*, a plain JSON-able
dict (architecture is data), and turns an architecture back into a model. It
knows nothing of Optuna: it samples through the :class:`Suggest` protocol, which
an ``optuna.Trial`` satisfies, as does any object with the three methods.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from search_spaces._configs import BUILTIN_MODULES

if TYPE_CHECKING:  # torch is imported by the spaces' modules, on first use
    from torch import nn

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

Arch = dict[str, Any]
"""An architecture: a JSON-serializable dict that rebuilds the same model."""


class Suggest(Protocol):
    """What a space needs from a sampler (``optuna.Trial`` satisfies it)."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class InputSpec:
    """Shape of the data a model is built for."""

    in_chans: int
    image_size: int
    num_classes: int


class SearchSpace(abc.ABC):
    """A family of architectures.

    Lifecycle: a space is constructed once per search from its config dataclass
    (the ranges), then for each trial ``sample`` draws an architecture and
    ``build`` turns it into an untrained ``nn.Module``. ``build`` must be
    deterministic in its structure: the same ``arch`` and ``spec`` always give the
    same layers, so an artifact's weights load back into ``build(arch, spec)``.
    """

    name: str = ""
    default_lr: float = 0.01
    """Peak learning rate of the training loop when ``train.lr`` is null. Spaces differ:
    BatchNorm networks train well at rates that make plain LeNets diverge."""
    nested: bool = False
    """Whether every architecture is a slice of the largest one (leading channels, first
    blocks, centre of each kernel), so one ``SlicedSupernet`` shares the weights of all
    (``strategy=supernet``)."""

    @abc.abstractmethod
    def sample(self, suggest: Suggest) -> Arch:
        """Draw one architecture; every choice goes through ``suggest``."""

    @abc.abstractmethod
    def build(self, arch: Arch, spec: InputSpec) -> nn.Module:
        """Build the (uncompressed, untrained) model of ``arch``."""

    def extremes(self) -> tuple[Arch, Arch]:
        """The (smallest, largest) architectures, used for budget checks and teachers."""
        raise NotImplementedError(f"search space {self.name!r} does not define extremes()")

    def small_corners(self) -> list[Arch]:
        """Architectures that, between them, bound the space's figures from below.

        Budget checks take the best of these on each figure (bytes, latency, peak
        memory). One smallest architecture is enough where a space has one family;
        a space of several families (an MLP and a CNN) lists each family's smallest,
        since the one with fewest parameters need not be the fastest.
        """
        return [self.extremes()[0]]


_SPACES: dict[str, tuple[type[Any], Callable[[Any], SearchSpace]]] = {}


def register_search_space(
    name: str, *, config: type[Any]
) -> Callable[[Callable[[Any], SearchSpace]], Callable[[Any], SearchSpace]]:
    """Register a space factory under ``name`` (the Hydra option name).

    Args:
        name: the key, equal to the YAML file name in ``conf/search_space/``.
        config: the dataclass holding the space's ranges; the factory receives an
            instance of it.
    """

    def deco(factory: Callable[[Any], SearchSpace]) -> Callable[[Any], SearchSpace]:
        if name in _SPACES:
            raise ValueError(f"search space {name!r} is already registered")
        _SPACES[name] = (config, factory)
        return factory

    return deco


def list_search_spaces() -> list[str]:
    """Names of every registered space (built-in ones included), sorted."""
    return sorted(set(_SPACES) | set(BUILTIN_MODULES))


def search_space_config(name: str) -> type[Any]:
    """The config dataclass of space ``name`` (built-ins resolve without importing torch)."""
    from search_spaces import _configs

    if name not in _SPACES and name in BUILTIN_MODULES:
        cls = getattr(_configs, "BUILTIN_CONFIGS", {}).get(name)
        if cls is not None:
            return cls
    _check(name)
    return _SPACES[name][0]


def get_search_space(name: str, cfg: Any | None = None) -> SearchSpace:
    """Construct space ``name`` from ``cfg`` (an instance of its config, or None for defaults)."""
    _check(name)
    config_cls, factory = _SPACES[name]
    space = factory(cfg if cfg is not None else config_cls())
    space.name = name
    return space


def _check(name: str) -> None:
    if name not in _SPACES and name in BUILTIN_MODULES:
        importlib.import_module(BUILTIN_MODULES[name])
    if name not in _SPACES:
        raise KeyError(
            f"unknown search space {name!r}; registered: {', '.join(list_search_spaces())}"
        )
