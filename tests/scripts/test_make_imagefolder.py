"""The synthetic image folder (scripts/make_imagefolder.py) and bench_stream's tree sampler."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

_SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, _SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_imagefolder = _load("make_imagefolder")
bench_stream = _load("bench_stream")

TINY = {"n": 60, "size": 16, "classes": 3, "seed": 0, "corrupt": 2}


def _digests(root: Path) -> dict[str, str]:
    return {
        str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*.jpg"))
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("folder") / "tiny"
    make_imagefolder.generate(out, **TINY, workers=2, progress=False)
    return out


def test_counts_and_images(tiny: Path) -> None:
    assert sorted(d.name for d in tiny.iterdir() if d.is_dir()) == ["0", "1", "2"]
    images = [f for f in tiny.rglob("*.jpg") if not f.name.startswith("corrupt_")]
    assert len(images) == 60
    per_class = {d: len([f for f in images if f.parent.name == d]) for d in ("0", "1", "2")}
    assert per_class == {"0": 20, "1": 20, "2": 20}
    with Image.open(images[0]) as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (16, 16))
    manifest = json.loads((tiny / make_imagefolder.MANIFEST).read_text())
    assert manifest["files"] == 62
    assert manifest["bytes"] == sum(f.stat().st_size for f in tiny.rglob("*.jpg"))


def test_corrupt_files_are_unreadable(tiny: Path) -> None:
    bad = sorted(tiny.rglob("corrupt_*.jpg"))
    assert len(bad) == 2
    for f in bad:
        with pytest.raises(OSError):  # UnidentifiedImageError is an OSError
            with Image.open(f) as im:
                im.load()


def test_same_seed_same_bytes_whatever_the_workers(tiny: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    make_imagefolder.generate(again, **TINY, workers=1, progress=False)
    assert _digests(again) == _digests(tiny)
    other = tmp_path / "other"
    make_imagefolder.generate(other, **{**TINY, "seed": 1}, workers=1, progress=False)
    assert _digests(other) != _digests(tiny)


def test_an_existing_folder_is_skipped_unless_forced(tiny: Path, tmp_path: Path) -> None:
    assert make_imagefolder.generate(tiny, **TINY, progress=False)["skipped"] is True
    with pytest.raises(FileExistsError):  # other arguments, same folder: not silently replaced
        make_imagefolder.generate(tiny, **{**TINY, "n": 30}, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("x")
    with pytest.raises(FileExistsError):  # never removes a folder it did not write
        make_imagefolder.generate(foreign, **TINY, force=True, progress=False)


def test_the_class_is_in_the_pixels() -> None:
    # Digit 0 against digit 1 in random colours, places and backgrounds: a linear model on
    # each pixel's distance from the image's median (colour-blind) beats chance by far
    # (0.83 on 200 held-out images, against 0.5), so a network can learn the classes.
    from sklearn.linear_model import LogisticRegression

    make_imagefolder._init_worker(make_imagefolder._load_digits())
    xs, ys = [], []
    for i in range(600):
        cls, data = make_imagefolder.render(i, size=28, classes=2, seed=0)
        with Image.open(io.BytesIO(data)) as im:
            x = np.asarray(im.convert("L"), np.float64)
        xs.append(np.abs(x - np.median(x)).ravel() / 64)
        ys.append(cls)
    x, y = np.stack(xs), np.array(ys)
    assert y.mean() == 0.5
    clf = LogisticRegression(max_iter=2000, C=0.1).fit(x[:400], y[:400])
    assert clf.score(x[400:], y[400:]) > 0.7


def test_the_sampler_sees_a_child_and_its_fork() -> None:
    code = (
        "import os, time; x = bytearray(50_000_000); x[::4096] = b'1' * len(x[::4096]); "
        "pid = os.fork(); time.sleep(1.0); pid and os.waitpid(pid, 0)"
    )
    res = bench_stream.measure([sys.executable, "-c", code], interval=0.1)
    assert res["returncode"] == 0
    assert res["peak_rss_bytes"] > 100_000_000  # two processes with 50 MB each resident
    assert res["roles"]["driver"]["peak_rss_bytes"] > 50_000_000
    assert res["roles"]["loader_workers"]["peak_procs"] == 1  # the forked child
    # PSS divides the pages the fork shares: less than the RSS sum, at least one copy.
    assert 50_000_000 < res["peak_pss_bytes"] < res["peak_rss_bytes"]
    assert res["samples"] >= 3 and res["timeline"]
