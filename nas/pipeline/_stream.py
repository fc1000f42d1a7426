"""Data sets streamed from disk, and the training augmentation.

``imagefolder`` keeps only its file list and labels in memory: a torch ``DataLoader``
with ``dataset.num_workers`` worker processes decodes each batch (PIL, resize,
normalize) while the previous one trains, so a folder far larger than memory can be
searched. An unreadable image is skipped, not fatal: its worker names the file once
on stderr and hands it on with label -1, which training and evaluation drop and count
(a folder of a million files should not stop on its one truncated JPEG, nor be
decoded in full before the search starts to find it).

Augmentation (random-resized crop and horizontal flip) works on a whole batch on the
training device (``torchvision.ops.roi_align`` crops and resizes every image in one
call), so loader workers only decode, and a GPU does the rest.
"""

from __future__ import annotations

import hashlib
import math
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas._stop import children_shielded, moot_while_stopping, shield_child
from nas.config import ConfigError, DatasetConfig
from nas.pipeline._data import DataPart, Splits, _existing_root, register_dataset, split_arrays
from search_spaces import InputSpec

__all__ = ["FolderPart", "ShieldedLoader", "augment_batch", "drop_unreadable", "shift_batch"]

_STATS_IMAGES = 512  # training images decoded to estimate the pixel mean and std
_SCALE = (0.35, 1.0)  # random-resized crop: fraction of the area kept
_RATIO = (3 / 4, 4 / 3)


def _decode(path: str, size: int, mode: str) -> np.ndarray:
    """One image as uint8 CHW at ``size`` x ``size``; raises on an unreadable file."""
    from PIL import Image

    with Image.open(path) as im:
        a = np.array(im.convert(mode).resize((size, size)), dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


class _FolderDataset(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """Decodes one image per item (in a loader worker)."""

    def __init__(
        self, paths: Sequence[str], labels: Sequence[int], size: int, mode: str, mean: float,
        std: float,
    ) -> None:  # fmt: skip
        self.paths, self.labels = list(paths), list(labels)
        self.size, self.mode, self.mean, self.std = size, mode, mean, std
        self.chans = 1 if mode == "L" else 3

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            a = _decode(self.paths[i], self.size, self.mode)
        except Exception as e:  # noqa: BLE001 - PIL raises many kinds for a bad file
            print(f"skipping unreadable image {self.paths[i]}: {e}", file=sys.stderr)
            return torch.zeros(self.chans, self.size, self.size), -1
        x = (torch.from_numpy(a).float() / 255.0 - self.mean) / self.std
        return x, self.labels[i]


class FolderPart(DataPart):
    """One split of an image folder: file paths and labels, decoded on use."""

    streamed = True

    def __init__(
        self, paths: Sequence[str], labels: np.ndarray, *, size: int, mode: str,
        mean: float = 0.0, std: float = 1.0, num_workers: int = 2,
    ) -> None:  # fmt: skip
        self.paths = list(paths)
        self.y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.size, self.mode, self.mean, self.std = size, mode, mean, std
        self.num_workers = int(num_workers)

    def _dataset(self) -> _FolderDataset:
        return _FolderDataset(
            self.paths, self.y.tolist(), self.size, self.mode, self.mean, self.std
        )

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        workers = self.num_workers
        return ShieldedLoader(
            torch.utils.data.DataLoader(
                self._dataset(),
                batch_size=batch_size,
                shuffle=shuffle,
                generator=torch.Generator().manual_seed(seed) if shuffle else None,
                num_workers=workers,
                # Workers stay up across epochs (and the fine-tuning that reuses the
                # loader), instead of being forked again for every pass.
                persistent_workers=workers > 0,
                pin_memory=torch.cuda.is_available(),
                worker_init_fn=_shield_worker if workers > 0 else None,
            )
        )

    def images(self, index: torch.Tensor | slice) -> torch.Tensor:
        idx = range(len(self))[index] if isinstance(index, slice) else index.tolist()
        ds = self._dataset()
        out = [ds[int(i)][0] for i in idx]
        return torch.stack(out) if out else torch.empty(0, ds.chans, self.size, self.size)

    def identity(self) -> str:
        """What defines this part: its files (path, size, mtime) and labels."""
        h = hashlib.sha256()
        for path, label in zip(self.paths, self.y.tolist(), strict=True):
            st = Path(path).stat()
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{label}\n".encode())
        return h.hexdigest()


class ShieldedLoader:
    """A DataLoader whose worker processes leave a stop to the search.

    ``timeout`` and Slurm signal the whole process group; a worker that died of it
    would make torch raise "DataLoader worker ... is killed by signal" in the search's
    main thread at whatever it was doing, even in the middle of the bookkeeping of a
    clean stop. So the workers start with the stop signals blocked (they are forked
    when the loader is first iterated, inside :func:`~nas._stop.children_shielded`)
    and leave the process group first thing (:func:`_shield_worker`); the search stops
    them when it closes the loader.
    """

    def __init__(self, loader: torch.utils.data.DataLoader[tuple[torch.Tensor, int]]) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        try:
            with children_shielded():
                # Persistent workers: a later epoch resets the loader's one iterator,
                # which waits on the workers (and finds a dead one) here.
                batches = iter(self.loader)
        except RuntimeError as e:
            raise _named_death(getattr(self.loader, "_iterator", None), e) from e
        _guard_sigchld()
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except RuntimeError as e:
                raise _named_death(batches, e) from e
            yield batch


def _guard_sigchld() -> None:
    """Once torch has set its SIGCHLD handler (on the main thread, at the first loader
    with workers), keep its error out of a stop (see nas._stop.moot_while_stopping)."""
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGCHLD)
    if callable(handler) and not getattr(handler, "moot_while_stopping", False):
        signal.signal(signal.SIGCHLD, moot_while_stopping(handler))


def _named_death(batches: Any, error: RuntimeError) -> RuntimeError:
    """torch's error for a worker that died, with the signal that killed it. (On the main
    thread torch's SIGCHLD handler names it; elsewhere, as in a Ray worker's trial
    thread, torch finds the worker gone and says only that it "exited unexpectedly".)"""
    said = str(error)
    if "DataLoader worker" not in said or "signal" in said:
        return error
    dead = []
    for worker in getattr(batches, "_workers", []):
        code = worker.exitcode
        if code is not None and code < 0:
            dead.append(f"DataLoader worker (pid {worker.pid}) was killed by "
                        f"{signal.Signals(-code).name}")  # fmt: skip
        elif code is not None:
            dead.append(f"DataLoader worker (pid {worker.pid}) exited with code {code}")
    return RuntimeError("; ".join(dead)) if dead else error


def _shield_worker(worker_id: int) -> None:
    shield_child(own_group=True)
    # shield_child ignores SIGTERM, which also dropped any that came before; torch's own
    # handler comes back, so that the loader can still end a stuck worker (it sends
    # SIGTERM), and a worker exits quietly when its parent does.
    from torch.utils.data._utils.signal_handling import _set_worker_signal_handlers

    _set_worker_signal_handlers()


@register_dataset("imagefolder")  # type: ignore[arg-type]  # a streamed loader
def _imagefolder(cfg: DatasetConfig, *, seed: int) -> Splits:
    """``<root>/<class>/<image>`` (torchvision's ImageFolder layout), streamed."""
    from torchvision.datasets import ImageFolder

    root = _existing_root(cfg)
    size = int(cfg.image_size or 64)
    mode = "L" if cfg.in_chans == 1 else "RGB"
    try:
        # Only the file list: ImageFolder opens no image until asked for one.
        folder = ImageFolder(str(root))
    except (FileNotFoundError, RuntimeError) as e:
        raise ConfigError(
            f"dataset.root={cfg.root!r} has no images in <class>/<image> folders: {e}"
        ) from None
    paths = np.asarray([p for p, _ in folder.samples])
    labels = np.asarray([c for _, c in folder.samples], dtype=np.int64)
    index = np.arange(len(labels))
    i_test, y_test, i_val, y_val, i_train, y_train = split_arrays(index, labels, None, cfg, seed)
    workers = int(getattr(cfg, "num_workers", 2))

    def part(i: np.ndarray, y: np.ndarray, mean: float = 0.0, std: float = 1.0) -> FolderPart:
        return FolderPart(
            paths[i].tolist(), y, size=size, mode=mode, mean=mean, std=std, num_workers=workers
        )

    mean, std = _pixel_stats(part(i_train, y_train), seed)
    return Splits(
        part(i_train, y_train, mean, std),
        part(i_val, y_val, mean, std),
        part(i_test, y_test, mean, std),
        InputSpec(
            in_chans=1 if mode == "L" else 3, image_size=size, num_classes=len(folder.classes)
        ),
        mean=mean,
        std=std,
    )


_imagefolder.streams = True  # type: ignore[attr-defined]


def _pixel_stats(train: FolderPart, seed: int) -> tuple[float, float]:
    """The training split's pixel mean and std, estimated on a seeded sample of it (the
    in-memory sets use every pixel; a folder of a million images cannot)."""
    n = min(_STATS_IMAGES, len(train))
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    pixels = []
    for i in pick.tolist():
        try:
            pixels.append(
                _decode(train.paths[i], train.size, train.mode).astype(np.float32) / 255.0
            )
        except Exception:  # noqa: BLE001 - counted when it is trained on
            continue
    if not pixels:
        raise ConfigError(f"dataset.root: none of {n} sampled training images could be read")
    a = np.stack(pixels)
    return float(a.mean()), float(a.std()) + 1e-8


def drop_unreadable(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The batch without the images a loader worker could not read (label -1)."""
    keep = y >= 0
    dropped = int((~keep).sum())
    if dropped:
        return x[keep], y[keep], dropped
    return x, y, 0


def augment_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random-resized crop (area 35-100%, aspect 3:4-4:3, bilinear) and horizontal flip
    of each image of ``x``, on ``x``'s device; ``generator`` lives on the CPU, so the
    draws are the same on any device."""
    from torchvision.ops import roi_align

    n, _, h, w = x.shape
    area = torch.empty(n).uniform_(*_SCALE, generator=generator)
    log_r = torch.empty(n).uniform_(math.log(_RATIO[0]), math.log(_RATIO[1]), generator=generator)
    ratio = torch.exp(log_r)
    cw = (torch.sqrt(area * ratio) * w).clamp(1, w)
    ch = (torch.sqrt(area / ratio) * h).clamp(1, h)
    x0 = torch.rand(n, generator=generator) * (w - cw)
    y0 = torch.rand(n, generator=generator) * (h - ch)
    boxes = torch.stack([torch.arange(n, dtype=torch.float32), x0, y0, x0 + cw, y0 + ch], 1)
    out = roi_align(x, boxes.to(x.device, x.dtype), (h, w), aligned=True)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def shift_batch(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` translated by a whole number of pixels, up to ``max_shift``
    each way on each axis (uniform), its edge pixels repeated into the gap; on ``x``'s
    device, drawn on the CPU ``generator``. Unlike :func:`augment_batch` it neither
    flips nor rescales, so it keeps a digit's class (a flipped 2 is no 2)."""
    if max_shift <= 0:
        return x
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (max_shift,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    images = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[images, channels, rows, cols]
