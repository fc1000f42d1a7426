"""The artifact round-trips in a fresh process with the same predictions."""

from __future__ import annotations

import zlib
from dataclasses import asdict

import pytest
import torch

import compress
from nas.config import DatasetConfig
from nas.pipeline import ArtifactEvaluator, Batches, load_splits, predict, train
from search_spaces import get_search_space, search_space_config


@pytest.mark.slow  # 20-40 s on 2 cores: trains an mbconv net, then a fresh evaluator process
def test_fresh_process_gives_the_same_predictions(tmp_path) -> None:
    torch.manual_seed(0)
    dataset = {"name": "digits", "n_test": 360, "n_val": 180}
    splits = load_splits(DatasetConfig(**dataset), seed=0)
    space = get_search_space("mbconv")
    arch = {
        "width_mult": 0.25,
        "depths": [1, 1, 1, 1],
        "kernels": [3, 3, 5, 3],
        "expansions": [1, 4, 4, 4],
    }
    model = space.build(arch, splits.spec)
    batches = Batches(splits.x_train, splits.y_train, batch_size=64, shuffle=True)
    train(model, batches, epochs=1, lr=0.01)
    cfgs = [compress.PruneConfig(sparsity=0.5), compress.QuantConfig(bits=4)]
    compress.apply(model, cfgs)
    train(model, batches, epochs=1, lr=0.001)
    meta = {
        "space": "mbconv",
        "space_cfg": asdict(search_space_config("mbconv")()),
        "arch": arch,
        "spec": asdict(splits.spec),
    }
    path = tmp_path / "m.dsz"
    compress.export(model, path, meta=meta)

    evaluator = ArtifactEvaluator(dataset=dataset, seed=0, threads=1)
    try:
        remote = evaluator.evaluate(path)
    finally:
        evaluator.close()
    for name in ("val", "test"):
        x, y = getattr(splits, f"x_{name}"), getattr(splits, f"y_{name}")
        pred = predict(model, x)
        assert remote[f"{name}_pred_crc"] == zlib.crc32(pred.numpy().astype("int64").tobytes())
        assert remote[f"{name}_accuracy"] == float((pred == y).float().mean())
