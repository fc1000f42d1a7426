"""The artifact header: what rebuilds a candidate's uncompressed model from data.

Every ``.dsz`` artifact (``compress.export(model, path, meta=...)``) carries this
header, so any process, with no search state, rebuilds the same architecture and
then loads the packed weights into it: ``compress.load(path, build_from_meta)``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from search_spaces._registry import (
    Arch,
    InputSpec,
    SearchSpace,
    get_search_space,
    search_space_config,
)

if TYPE_CHECKING:
    from torch import nn

__all__ = ["artifact_meta", "build_from_meta"]


def artifact_meta(
    space: SearchSpace,
    space_cfg: dict[str, Any],
    arch: Arch,
    spec: InputSpec,
    compression: dict[str, Any],
) -> dict[str, Any]:
    """The header of an artifact of ``arch`` in ``space`` (ranges ``space_cfg``)."""
    return {
        "space": space.name,
        "space_cfg": space_cfg,
        "arch": arch,
        "spec": asdict(spec),
        "compression": compression,
    }


def build_from_meta(meta: dict[str, Any]) -> nn.Module:
    """Rebuild the uncompressed model an artifact's header describes.

    Raises:
        KeyError, TypeError, ValueError: the header names no registered space, or an
            architecture that space cannot build.
    """
    name = meta["space"]
    space = get_search_space(name, search_space_config(name)(**meta["space_cfg"]))
    return space.build(meta["arch"], InputSpec(**meta["spec"]))
