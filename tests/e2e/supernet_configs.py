"""The tiny ``strategy=supernet`` search the end-to-end tests run (local and Ray): a
small space and data, one epoch of supernet training, two finalists."""

from __future__ import annotations


def tiny_supernet(*, n_trials: int, warmup_epochs: int) -> tuple[str, ...]:
    return (
        "strategy=supernet",
        "search_space=mbconv",
        "search_space.width_mults=[0.25,0.5]",
        "search_space.depth_max=2",
        "search_space.expansions=[2,4]",
        "dataset.n_train=300",
        "sampler=random",
        "strategy.epochs=1",
        f"strategy.warmup_epochs={warmup_epochs}",
        "strategy.bn_calib_images=64",
        "strategy.finalists=2",
        "strategy.max_finalists=2",
        "strategy.finetune_epochs=1",
        f"search.n_trials={n_trials}",
        "train.threads=1",  # tiny tensors: a second thread costs more than it gives
        # A supernet trained for 3 steps finalises near-chance models; these tests are of
        # the mechanics, so none is kept off the front by the accuracy floor.
        "search.min_accuracy=0",
    )
