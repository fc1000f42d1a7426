"""Bad input through the CLI (``nas.search``'s ``main``): refused by the driver's
start-up checks with one line naming the value and what is allowed, leaving nothing
written. Names and ranges fail before torch is imported; the data, the tracking
server and the budgets are checked after it, but before any study or run exists."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest


def _image_dirs(root: Path) -> dict[str, Path]:
    # One unreadable image is skipped and counted (tests/nas/pipeline/test_stream.py);
    # a folder whose sampled training images are all unreadable is refused.
    corrupt = root / "corrupt"
    for cls in ("a", "b"):
        (corrupt / cls).mkdir(parents=True)
        for i in range(4):
            (corrupt / cls / f"broken{i}.png").write_bytes(b"this is not a png")
    empty = root / "empty"
    empty.mkdir()
    return {"corrupt": corrupt, "empty": empty}


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CASES = [
    # (id, overrides, words the one line must contain, fails before torch is imported)
    ("hw", ["+hw=nosuch"], ["+hw=nosuch", "mcu, mobile"], True),
    ("dataset", ["dataset=nosuch"], ["dataset=nosuch", "digits"], True),
    ("space", ["search_space=nosuch"], ["search_space=nosuch", "mbconv"], True),
    ("key", ["search.n_trail=3"], ["search.n_trail", "n_trials"], True),
    ("bits", ["compress.bits=[5]"], ["contains 5", "(2, 3, 4, 6, 8, 16, 32)"], True),
    ("sparsity", ["compress.sparsity_max=1.5"], ["sparsity_max=1.5", "[0, 1)"], True),
    ("n_trials", ["search.n_trials=0"], ["search.n_trials=0", ">= 1"], True),
    ("root", ["dataset=imagefolder", "dataset.root={tmp}/nosuch"], ["nosuch", "existing"], True),
    ("corrupt", ["dataset=imagefolder", "dataset.root={corrupt}", "dataset.n_test=2",
                 "dataset.n_val=2"], ["dataset.root", "none of 4 sampled", "could be read"],
     False),
    ("empty", ["dataset=imagefolder", "dataset.root={empty}"], ["empty", "class"], False),
    ("mlflow", ["mlflow.tracking_uri=http://127.0.0.1:{port}"], ["127.0.0.1", "unreachable"],
     False),
    ("budget", ["+hw=mcu", "hw.size_budget_bytes=100"],
     ["hw.size_budget_bytes=100", "cannot be met", "740 B"], False),
    ("energy_budget", ["+hw=mobile", "hw.energy_budget_uj=0.001"],
     ["hw.energy_budget_uj=0.001 cannot be met", "smallest candidate", "uJ"], False),
]  # fmt: skip
# A late refusal (data, tracking server, budgets) imports torch and loads the data
# first: 10-16 s each on 2 cores, so those are slow.
BAD_INPUT = [
    pytest.param(overrides, words, early, id=name, marks=() if early else pytest.mark.slow)
    for name, overrides, words, early in CASES
]


@pytest.mark.parametrize(("overrides", "words", "early"), BAD_INPUT)
def test_bad_input_is_one_line_and_leaves_nothing(
    tmp_path: Path, fast, overrides: list[str], words: list[str], early: bool
) -> None:
    out = tmp_path / "out"
    subs = {"tmp": str(tmp_path), "port": str(_closed_port())}
    subs.update({k: str(v) for k, v in _image_dirs(tmp_path / "imgs").items()})
    args = [o.format(**subs) for o in overrides]
    # The CLI's own main(), plus a report of whether torch got imported before it failed.
    probe = (
        "import sys; from nas.search import main; rc = main(sys.argv[1:]); "
        "print('torch imported' if 'torch' in sys.modules else 'torch not imported'); "
        "sys.exit(rc)"
    )
    start = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-c", probe, *fast(f"search.output_dir={out}", *args)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "INFO mlflow" not in ln]
    assert r.returncode == 2, r.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-3000:]
    for word in words:
        assert word in lines[0]
    if early:
        assert "torch not imported" in r.stdout
        assert elapsed < 10
    # Nothing half-written: no study, no parent run.
    assert not list(tmp_path.rglob("*.journal"))
    assert not (out / "mlflow.db").exists()
