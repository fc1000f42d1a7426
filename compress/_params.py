"""Which weights are compressed, and the plain (unparametrized) names of a model's tensors.

Masks and fake quantization live in ``torch.nn.utils.parametrize``
parametrizations, which rename ``conv.weight`` to
``conv.parametrizations.weight.original``. Export, size estimation and
statistics all need the names and shapes the *plain* model has, so the mapping
lives here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = [
    "TARGETS",
    "BuiltShapes",
    "PlainTensor",
    "built_shapes",
    "is_target",
    "original_weight",
    "plain_tensors",
    "remember_built_shapes",
    "weight",
    "weight_parametrizations",
]

TARGETS: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
"""Layer types whose ``weight`` is pruned and quantized; everything else stays fp32."""

_ORIGINAL = ".parametrizations.weight.original"
_BUILT = "_compress_built_shapes"


@dataclass(frozen=True)
class PlainTensor:
    """One entry of the plain model's state dict.

    Attributes:
        name: Its key in the plain (unparametrized) model's ``state_dict``.
        tensor: The stored tensor; for a parametrized weight, the *original*.
        module: The ``Conv2d``/``Linear`` owning it when it is a compressed weight.
    """

    name: str
    tensor: torch.Tensor
    module: nn.Module | None


@dataclass(frozen=True)
class BuiltShapes:
    """What a model looked like before structured pruning changed its layers' widths.

    The exporter stores a tensor's shape (and a convolution's ``groups``) only where
    they differ from these, which are also what the loader's ``build_fn`` gives.

    Attributes:
        tensors: Plain tensor name -> shape, as built.
        groups: ``Conv2d`` path -> ``groups``, as built.
    """

    tensors: dict[str, tuple[int, ...]]
    groups: dict[str, int]


def remember_built_shapes(model: nn.Module) -> None:
    """Record ``model``'s current shapes as built, before a structural change.

    Shapes already recorded win: a second structured pruning must still compare
    against the model as built. New names (e.g. low-rank factors) are added.
    """
    now = BuiltShapes(
        {t.name: tuple(t.tensor.shape) for t in plain_tensors(model)},
        {name: m.groups for name, m in model.named_modules() if isinstance(m, nn.Conv2d)},
    )
    old = built_shapes(model)
    if old is not None:
        now = BuiltShapes({**now.tensors, **old.tensors}, {**now.groups, **old.groups})
    object.__setattr__(model, _BUILT, now)  # a plain attribute: not state, not a submodule


def built_shapes(model: nn.Module) -> BuiltShapes | None:
    """The shapes recorded by :func:`remember_built_shapes`, if structured pruning ran."""
    found = model.__dict__.get(_BUILT)
    return found if isinstance(found, BuiltShapes) else None


def is_target(module: nn.Module) -> bool:
    """Whether ``module``'s weight is pruned and quantized."""
    return isinstance(module, TARGETS)


def weight_parametrizations(module: nn.Module) -> list[nn.Module]:
    """The parametrizations on ``module.weight``, in the order they run."""
    if not parametrize.is_parametrized(module, "weight"):
        return []
    return list(module.parametrizations["weight"])  # type: ignore[index]


def weight(module: nn.Module) -> torch.Tensor:
    """The weight ``module``'s forward pass uses (masked and quantized if parametrized)."""
    w = module.weight
    assert isinstance(w, torch.Tensor)  # a TARGETS layer; a bug of ours otherwise
    return w


def original_weight(module: nn.Module) -> torch.Tensor:
    """The stored weight before any parametrization runs."""
    if not parametrize.is_parametrized(module, "weight"):
        return weight(module).detach()
    w = module.parametrizations["weight"].original  # type: ignore[index,union-attr]
    assert isinstance(w, torch.Tensor)
    return w.detach()


def plain_tensors(model: nn.Module) -> list[PlainTensor]:
    """The plain model's state-dict entries, sorted by name.

    ``num_batches_tracked`` is skipped: it does not affect inference. Sorting
    makes the order independent of parametrization, which reorders the state dict.
    """
    out: list[PlainTensor] = []
    for key, tensor in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith(_ORIGINAL) or key == _ORIGINAL[1:]:
            prefix = key[: -len(_ORIGINAL)] if key.endswith(_ORIGINAL) else ""
            name = f"{prefix}.weight" if prefix else "weight"
        elif ".parametrizations." in f".{key}":
            continue  # buffers of the parametrizations themselves (e.g. masks)
        else:
            name = key
        module: nn.Module | None = None
        if name == "weight" or name.endswith(".weight"):
            owner = model.get_submodule(name[: -len("weight")].rstrip("."))
            module = owner if is_target(owner) else None
        out.append(PlainTensor(name=name, tensor=tensor, module=module))
    return sorted(out, key=lambda t: t.name)
