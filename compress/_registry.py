"""The compression-technique registry and the one entry point that applies techniques.

A technique is a public, frozen config dataclass (validated in ``__post_init__``)
plus a handler ``(model, config) -> model``, registered by config type, in the
manner of torchao's ``quantize_(model, Int8WeightOnlyConfig())`` handler registry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from torch import nn

from compress._bits import BITS, INT_BITS

__all__ = [
    "BITS",
    "INT_BITS",
    "Handler",
    "apply",
    "get_technique_config",
    "list_techniques",
    "register_technique",
]


Handler = Callable[[nn.Module, Any], nn.Module]
HandlerT = TypeVar("HandlerT", bound=Handler)

# name -> config class, and config class -> handler; both must stay one-to-one.
_CONFIGS: dict[str, type[Any]] = {}
_HANDLERS: dict[type[Any], Handler] = {}


def register_technique(name: str, config_cls: type[Any]) -> Callable[[HandlerT], HandlerT]:
    """Register ``handler(model, config) -> model`` for configs of type ``config_cls``.

    Args:
        name: Short technique name, the same as its Hydra option (e.g. ``"prune"``).
        config_cls: The config dataclass whose instances this handler applies.

    Returns:
        A decorator that registers the handler and returns it unchanged.

    Raises:
        ValueError: If ``name`` or ``config_cls`` is already registered.
    """

    def decorator(handler: HandlerT) -> HandlerT:
        if name in _CONFIGS:
            raise ValueError(f"compression technique {name!r} is already registered")
        if config_cls in _HANDLERS:
            raise ValueError(f"config {config_cls.__name__} already has a registered technique")
        _CONFIGS[name] = config_cls
        _HANDLERS[config_cls] = handler
        return handler

    return decorator


def list_techniques() -> list[str]:
    """Names of the registered techniques, sorted."""
    return sorted(_CONFIGS)


def get_technique_config(name: str) -> type[Any]:
    """The config dataclass of technique ``name`` (to build one from a Hydra/JSON dict).

    Raises:
        ValueError: If no technique of that name is registered.
    """
    if name not in _CONFIGS:
        raise ValueError(f"unknown compression technique {name!r}; known: {list_techniques()}")
    return _CONFIGS[name]


def apply(model: nn.Module, cfgs: Sequence[Any]) -> nn.Module:
    """Apply compression configs to ``model`` in order, in place.

    Args:
        model: Any module; its ``Conv2d`` and ``Linear`` weights are compressed.
        cfgs: Config instances of registered techniques, e.g.
            ``[PruneConfig(sparsity=0.5), QuantConfig(bits=4)]``.

    Returns:
        The same ``model``, with parametrizations (masks, fake quantization) attached.

    Raises:
        ValueError: If a config is not of a registered technique type.
    """
    for cfg in cfgs:
        handler = _HANDLERS.get(type(cfg))
        if handler is None:
            raise ValueError(
                f"{cfg!r} is not a registered compression config; "
                f"known techniques: {list_techniques()}"
            )
        model = handler(model, cfg)
    return model
