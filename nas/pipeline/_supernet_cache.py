"""A trained supernet on disk: safetensors (never unpickled), keyed by what made it.

The file's metadata holds the key, whole: the space and its elastic ranges, the
input, the data fingerprint, the training recipe (bit-widths and sparsity included)
and the seed. A search looks for the file of its exact key first, then for any
cached supernet that *covers* it (wider ranges, more bit-widths, the same data,
input, seed and schedule), so a search over a narrower space or another hardware
profile reuses what was trained. A file that is corrupt, or whose key does not
match its name, is refused with one line and trained again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from search_spaces import SlicedSupernet

__all__ = [
    "CheckpointError",
    "cache_path",
    "covers",
    "find_cached",
    "load_into",
    "save",
    "read_key",
]

_META_KEY = "downsize.supernet"
_SECONDS_KEY = "downsize.train_seconds"


class CheckpointError(ValueError):
    """A supernet file that cannot be used: corrupt, foreign, or not covering the search."""


def digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(cache_dir: Path, key: dict[str, Any]) -> Path:
    return cache_dir / f"supernet_{key['space']}_{digest(key)}.safetensors"


def save(
    supernet: SlicedSupernet,
    path: Path,
    key: dict[str, Any],
    *,
    train_seconds: float | None = None,
) -> int:
    """Write the shared weights, their key and how long they took to train (atomically);
    returns the bytes written."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous() for k, v in supernet.model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    meta = {_META_KEY: json.dumps(key, sort_keys=True)}
    if train_seconds is not None:
        meta[_SECONDS_KEY] = f"{train_seconds:.1f}"
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path.stat().st_size


def read_key(path: Path) -> dict[str, Any]:
    """The key a supernet file was saved with (CheckpointError if it has none)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        key: dict[str, Any] = json.loads(meta[_META_KEY])
    except FileNotFoundError:
        raise CheckpointError(f"supernet checkpoint {str(path)!r} does not exist") from None
    except Exception as e:
        raise CheckpointError(
            f"supernet checkpoint {str(path)!r} is not a Downsize supernet ({type(e).__name__})"
        ) from None
    return key


def train_seconds(path: Path) -> float | None:
    """How long the supernet at ``path`` took to train (None when not recorded)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        value = (f.metadata() or {}).get(_SECONDS_KEY)
    return None if value is None else float(value)


def load_into(supernet: SlicedSupernet, path: Path) -> None:
    """Load the shared weights of ``path`` (shapes must match the supernet's)."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
        supernet.model.load_state_dict(tensors, strict=True)
    except Exception as e:
        raise CheckpointError(
            f"supernet checkpoint {str(path)!r} is corrupt or of another network "
            f"({type(e).__name__})"
        ) from None
    with torch.no_grad():
        supernet.model.eval()


def covers(have: dict[str, Any], want: dict[str, Any]) -> str | None:
    """Why a supernet trained as ``have`` cannot serve a search that needs ``want``
    (None when it can): every elastic range and bit-width of ``want`` within
    ``have``'s, and the same space, input, data, seed and schedule."""
    for field in ("space", "spec", "data", "seed"):
        if have.get(field) != want.get(field):
            return f"it was trained for another {field} ({have.get(field)!r})"
    for name, value in want["space_cfg"].items():
        had = have["space_cfg"].get(name)
        if isinstance(value, list):
            extra = sorted(set(value) - set(had or []))
            if extra:
                return f"search_space.{name} has {extra}, which it was not trained with ({had})"
        elif name.endswith("_min") and had is not None and value < had:
            return f"search_space.{name}={value} is below the {had} it was trained with"
        elif name.endswith("_max") and had is not None and value > had:
            return f"search_space.{name}={value} is above the {had} it was trained with"
        elif not name.endswith(("_min", "_max")) and value != had:
            return f"search_space.{name}={value} differs from the {had} it was trained with"
    h, w = have["recipe"], want["recipe"]
    extra_bits = sorted(set(w["bits"]) - set(h["bits"]))
    if extra_bits:
        return f"bit-widths {extra_bits} are allowed, but it was trained with {h['bits']} only"
    if w["sparsity_max"] > h["sparsity_max"] + 1e-9:
        return (
            f"sparsity up to {w['sparsity_max']} is searched; it was trained to {h['sparsity_max']}"
        )
    return None


def find_cached(cache_dir: Path, want: dict[str, Any]) -> tuple[Path, dict[str, Any]] | None:
    """The cached supernet of key ``want``, else one that covers it, else None.

    Among covering ones, the one trained with the same recipe budget wins, then the
    newest. Unreadable files are skipped here (the exact one is reported by the caller).
    """
    exact = cache_path(cache_dir, want)
    if exact.exists():
        return exact, read_key(exact)
    found: list[tuple[bool, float, Path, dict[str, Any]]] = []
    for path in cache_dir.glob(f"supernet_{want['space']}_*.safetensors"):
        try:
            have = read_key(path)
        except CheckpointError:
            continue
        same_budget = {k: v for k, v in have["recipe"].items() if k not in ("bits", "sparsity_max")}
        wanted = {k: v for k, v in want["recipe"].items() if k not in ("bits", "sparsity_max")}
        if same_budget == wanted and covers(have, want) is None:
            found.append((True, path.stat().st_mtime, path, have))
    if not found:
        return None
    _, _, path, have = max(found, key=lambda f: (f[0], f[1]))
    return path, have
