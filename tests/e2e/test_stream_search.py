"""A whole search on a streamed ``imagefolder``: loader workers in the trial's process,
the evaluator (a daemon, which may not fork workers) decoding val and test itself, an
unreadable image skipped and counted rather than fatal, and every trial's run saying
where it trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from nas import compose
from nas.driver import run_search


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(40):
            a = rng.integers(0, 60, (16, 16, 3)).astype(np.uint8)
            a[:, :, c] += 150  # each class its own colour: learnable in one epoch
            Image.fromarray(a).save(root / f"c{c}" / f"{i}.png")
    for c in range(3):  # one unreadable file per class: some land in train, val or test
        (root / f"c{c}" / "bad.png").write_bytes(b"not an image")
    return root


def test_a_streamed_folder_is_searched_with_workers(
    tmp_path: Path, fast, mlflow_runs, capfd
) -> None:
    root = _folder(tmp_path / "images")
    cfg = compose(
        fast(
            f"search.output_dir={tmp_path / 'out'}", "dataset=imagefolder",
            f"dataset.root={root}", "dataset.image_size=16", "dataset.n_test=24",
            "dataset.n_val=15", "dataset.num_workers=2", "train.batch_size=16",
            "search.n_trials=2", "search.min_accuracy=0", "train.device=auto",
        )
    )  # fmt: skip
    outcome = run_search(cfg)
    assert outcome.exit_code == 0
    err = capfd.readouterr().err
    assert "skipping unreadable image" in err and "bad.png" in err
    trials = mlflow_runs(tmp_path / "out", "trial")
    done = [r for r in trials if "val_accuracy" in r.data.metrics]
    assert len(done) == 2, [r.data.tags.get("error") for r in trials]
    for run in done:
        assert 0.0 <= run.data.metrics["val_accuracy"] <= 1.0
        assert run.data.tags["device"] == "cpu" and run.data.tags["precision"] == "fp32"
        assert run.data.metrics["export_seconds"] >= 0
        assert run.data.metrics["evaluate_seconds"] > 0
    # val/test images that could not be read are counted, not scored
    skipped = {run.data.metrics.get("skipped_images", 0.0) for run in done}
    assert len(skipped) == 1  # the same files for every trial
