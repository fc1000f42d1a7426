"""``imagefolder`` streams from disk (file list in memory, images decoded by loader
workers); unreadable images are skipped and counted; training augmentation is a
seeded batch operation, off for the embedded sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.config import compose
from nas.pipeline import load_splits
from nas.pipeline._recipe import Recipe, train_compressed
from nas.pipeline._stream import FolderPart, augment_batch, shift_batch
from nas.pipeline._train import Placing, accuracy, predict_labeled, train
from search_spaces import get_search_space, search_space_config


def _folder(root: Path, *, per_class: int = 20, classes: int = 3, size: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
            a[:, :, c % 3] += 150  # each class its own colour: learnable
            Image.fromarray(a).save(root / f"c{c}" / f"{i}.png")
    return root


def _cfg(root: Path, *extra: str):
    return compose(
        ["dataset=imagefolder", f"dataset.root={root}", "dataset.image_size=8",
         "dataset.n_test=9", "dataset.n_val=6", "dataset.num_workers=0", *extra]
    ).dataset  # fmt: skip


def test_imagefolder_streams_its_file_list(tmp_path: Path) -> None:
    splits = load_splits(_cfg(_folder(tmp_path)), seed=0)
    assert splits.streamed and isinstance(splits.train, FolderPart)
    assert splits.sizes() == {"train": 45, "val": 6, "test": 9}
    assert (splits.spec.in_chans, splits.spec.image_size, splits.spec.num_classes) == (3, 8, 3)
    assert splits.augment  # on by default for imagefolder
    x, y = next(iter(splits.train.batches(16, shuffle=True, seed=1)))
    assert x.shape == (16, 3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    # normalized by the training split's pixel statistics
    assert abs(float(splits.train.x.mean())) < 0.2
    assert 0.8 < float(splits.train.x.std()) < 1.2
    # no part shares an image with another
    paths = [set(p.paths) for p in (splits.train, splits.val, splits.test)]  # type: ignore[attr-defined]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])


def test_loader_workers_give_the_same_batches(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    inline = load_splits(_cfg(root), seed=0).train
    workers = load_splits(_cfg(root, "dataset.num_workers=2"), seed=0).train
    for (xa, ya), (xb, yb) in zip(
        inline.batches(10, shuffle=True, seed=3), workers.batches(10, shuffle=True, seed=3),
        strict=True,
    ):  # fmt: skip
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_unreadable_images_are_skipped_and_counted(tmp_path: Path, capfd) -> None:
    root = _folder(tmp_path)
    bad = [root / "c0" / "bad.png", root / "c1" / "bad.png", root / "c2" / "bad.png"]
    bad[0].write_bytes(b"not an image")
    bad[1].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)  # a truncated PNG
    bad[2].write_bytes(b"")
    splits = load_splits(_cfg(root, "dataset.n_test=12", "dataset.augment=false"), seed=0)
    where = {p: name for name in ("train", "val", "test") for p in getattr(splits, name).paths}
    in_train = sum(where[str(b)] == "train" for b in bad)
    # this seed puts bad files both in training and in val/test: both paths are exercised
    assert 1 <= in_train < len(bad)
    labels = torch.cat([y for _, y in splits.train.batches(8)])
    assert int((labels == -1).sum()) == in_train
    space = get_search_space("tiny", search_space_config("tiny")())
    model = space.build(space.extremes()[0], splits.spec)
    stats = train(model, splits.train.batches(8, shuffle=True), epochs=1, lr=0.01)
    assert stats.skipped == in_train
    err = capfd.readouterr().err
    assert f"training skipped {in_train} unreadable image(s)" in err
    for b in bad:
        if where[str(b)] == "train":
            assert f"skipping unreadable image {b}" in err
    # accuracy counts the readable images only: the unreadable are neither right nor wrong
    for name in ("val", "test"):
        part = getattr(splits, name)
        pred, labels = predict_labeled(model, part)
        readable = labels >= 0
        assert int((~readable).sum()) == sum(where[str(b)] == name for b in bad)
        want = float((pred[readable] == labels[readable]).float().mean())
        assert accuracy(model, part) == want


def test_fingerprint_follows_the_files(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    a = load_splits(_cfg(root), seed=0).fingerprint
    assert load_splits(_cfg(root), seed=0).fingerprint == a
    target = load_splits(_cfg(root), seed=0).train.paths[0]  # type: ignore[attr-defined]
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(target)
    assert load_splits(_cfg(root), seed=0).fingerprint != a


def test_a_streamed_search_trains_and_scores(tmp_path: Path) -> None:
    splits = load_splits(_cfg(_folder(tmp_path)), seed=0)
    space = get_search_space("tiny", search_space_config("tiny")())
    torch.manual_seed(0)
    model = space.build(space.extremes()[1], splits.spec)
    trained = train_compressed(
        model, splits, Recipe(epochs=8, lr=0.02, batch_size=8), compression=[], seed=0
    )
    assert next(trained.model.parameters()).device.type == "cpu"
    assert accuracy(trained.model, splits.val) > 0.5  # three colours: far above chance


def test_shift_batch_translates_each_image_by_whole_pixels() -> None:
    x = torch.randn(64, 2, 9, 9)
    a = shift_batch(x, 2, torch.Generator().manual_seed(0))
    assert a.shape == x.shape
    assert torch.equal(a, shift_batch(x, 2, torch.Generator().manual_seed(0)))
    assert torch.equal(shift_batch(x, 0, torch.Generator().manual_seed(0)), x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    offsets = set()
    for i in range(len(x)):  # each image is one window of its padded self, both channels
        found = [
            (dy, dx) for dy in range(5) for dx in range(5)
            if torch.equal(a[i], padded[i, :, dy : dy + 9, dx : dx + 9])
        ]  # fmt: skip
        assert found, f"image {i} is not a translation of itself"
        offsets.add(found[0])
    assert len(offsets) > 10  # the shifts vary over the batch (25 possible)


def test_augment_batch_is_seeded_and_keeps_shapes() -> None:
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    a = augment_batch(x, torch.Generator().manual_seed(0))
    b = augment_batch(x, torch.Generator().manual_seed(0))
    c = augment_batch(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)
    # values are bilinear mixes of the image's own pixels: within its range
    assert float(a.min()) >= float(x.min()) - 1e-4 and float(a.max()) <= float(x.max()) + 1e-4


def test_augment_flips_and_crops_each_image_on_its_own() -> None:
    x = torch.rand(64, 1, 8, 8)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    same = [torch.allclose(out[i], x[i], atol=1e-6) for i in range(64)]
    assert not all(same)


def test_augmentation_changes_training_only_when_on() -> None:
    cfg = compose(["dataset=digits"]).dataset
    splits = load_splits(cfg, seed=0)
    assert not splits.augment
    space = get_search_space("tiny", search_space_config("tiny")())

    def trained(augment: bool) -> torch.Tensor:
        torch.manual_seed(0)
        m = space.build(space.extremes()[0], splits.spec)
        train(m, splits.train.batches(64, shuffle=True), epochs=1, lr=0.01,
              placing=Placing(augment=augment))  # fmt: skip
        return torch.cat([p.detach().flatten() for p in m.parameters()])

    assert torch.equal(trained(False), trained(False))
    assert not torch.equal(trained(False), trained(True))


@pytest.mark.parametrize(
    ("dataset", "augment"),
    [("mnist5k", False), ("digits", False), ("imagefolder", True), ("cifar10", True)],
)
def test_augmentation_defaults(dataset: str, augment: bool, tmp_path: Path) -> None:
    extra = [] if dataset in ("mnist5k", "digits") else [f"dataset.root={tmp_path}"]
    assert compose([f"dataset={dataset}", *extra]).dataset.augment is augment


def _status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines())}


def test_loader_workers_leave_a_stop_to_the_search(tmp_path: Path) -> None:
    """``timeout`` and Slurm signal the whole process group: a loader worker that died
    of it would make torch raise in the middle of a clean stop. Workers leave the
    group, and ignore the stop signals sent to them alone, but for the SIGTERM torch
    ends a stuck worker with (its own handler keeps that one)."""
    import os
    import signal
    import time

    part = load_splits(_cfg(_folder(tmp_path), "dataset.num_workers=2"), seed=0).train
    batches = iter(part.batches(8, shuffle=True))
    next(batches)
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    workers = [int(p) for p in children if _status(int(p))["Name"] == "pt_data_worker"]
    assert len(workers) == 2
    end = time.monotonic() + 30  # the second worker may still be starting
    while any(os.getpgid(pid) == os.getpgid(0) for pid in workers) and time.monotonic() < end:
        time.sleep(0.05)
    for pid in workers:
        assert os.getpgid(pid) != os.getpgid(0)
        status = _status(pid)
        ignored, caught = int(status["SigIgn"], 16), int(status["SigCgt"], 16)
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            assert ignored & (1 << (sig - 1)), sig
        assert caught & (1 << (signal.SIGTERM - 1))  # torch's: quiet exit for its parent
        assert int(status["SigBlk"], 16) == 0
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    next(batches)  # they still serve


def test_a_split_that_does_not_fit_says_how_the_folder_was_split(tmp_path: Path) -> None:
    """240 images in 4 classes: test is split off first, so a val of 100 cannot fit in
    the 40 left. The refusal names the folder's size, the test split and both settings
    that can change (it once said "the data set has 40 images")."""
    from nas.config import ConfigError

    root = _folder(tmp_path, per_class=60, classes=4, size=4)
    with pytest.raises(ConfigError) as info:
        load_splits(_cfg(root, "dataset.n_test=200", "dataset.n_val=100"), seed=0)
    assert str(info.value) == (
        "dataset.n_val=100 does not fit: the data set has 240 images in 4 classes, split "
        "test first: dataset.n_test=200 leaves 40 for val and train; choose dataset.n_val "
        "between 4 and 35, or lower dataset.n_test"
    )
    with pytest.raises(ConfigError, match=r"dataset.n_test=300 does not fit: the data set has "
                       r"240 images in 4 classes; choose dataset.n_test between 4 and 235"):
        load_splits(_cfg(root, "dataset.n_test=300"), seed=0)


def test_a_dead_workers_signal_is_named_where_torch_does_not() -> None:
    """Off the main thread (a Ray worker runs a trial in one) torch only finds a worker
    gone: "exited unexpectedly". The error names the signal that killed it."""
    from types import SimpleNamespace

    from nas.pipeline._stream import _named_death

    batches = SimpleNamespace(_workers=[SimpleNamespace(pid=41, exitcode=-9),
                                        SimpleNamespace(pid=42, exitcode=None)])  # fmt: skip
    said = _named_death(batches, RuntimeError("DataLoader worker (pid(s) 41) exited unexpectedly"))
    assert str(said) == "DataLoader worker (pid 41) was killed by SIGKILL"
    torch_said = RuntimeError("DataLoader worker (pid 41) is killed by signal: Killed.")
    assert _named_death(batches, torch_said) is torch_said  # named already
    other = RuntimeError("CUDA out of memory")
    assert _named_death(batches, other) is other
