"""Retrain: the candidate from scratch, through the search's one training recipe.

The model is rebuilt from the artifact's header and trained, compressed and
fine-tuned by :func:`nas.pipeline.train_compressed` with the search's budget
(:meth:`SearchRecord.recipe`) and the trial's seed, distilled from the search's own
teacher when the search distilled it. With the search's epochs this reproduces the
trial; with more, it is the longer training a front member deserves.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.export._fetch import Artifact
from nas.export._resolve import SearchRecord, TrialRun

if TYPE_CHECKING:
    from nas.pipeline import LossFn, Recipe, RecipeResult, Splits
    from search_spaces import SearchSpace

__all__ = ["configs_from_params", "retrain"]


def configs_from_params(params: Mapping[str, Any], input_shape: tuple[int, ...]) -> list[Any]:
    """The ``compress`` configs of an artifact header's ``meta["compression"]``, in apply order.

    One mapping for search and export alike: :func:`nas.pipeline.compression_configs`.
    """
    from nas.pipeline import compression_configs

    return compression_configs(dict(params), tuple(input_shape))


def retrain(
    artifact: Artifact,
    trial: TrialRun,
    splits: Splits,
    *,
    epochs: int,
    dst: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Retrain the artifact's candidate for ``epochs`` epochs and export it to ``dst``.

    Returns:
        What was done, for ``metrics.json``: the budget, the compression configs,
        the distillation settings (or None) and the seconds it took.
    """
    import torch

    import compress
    from search_spaces import build_from_meta

    meta, record = artifact.meta, trial.record
    space = _space(meta)
    recipe = record.recipe(default_lr=space.default_lr, epochs=epochs)
    comp = dict(meta.get("compression") or {})
    loss_fn, distilled = _distillation(comp, record, space, meta, splits, dst.parent, say)
    cfgs = configs_from_params(comp, artifact.input_shape)
    seed = record.seed + max(trial.number, 0)  # the trial's own seed: same init, same batches
    torch.manual_seed(seed)
    model = build_from_meta(meta)
    start = time.monotonic()
    say(
        f"retraining trial {trial.number}: {epochs} epochs at lr {recipe.lr:g}, "
        f"batch {recipe.batch_size}"
    )
    trained = _train(model, splits, recipe, cfgs, seed, loss_fn, say)
    new_meta = {**meta, "retrained": {"epochs": epochs, "from_trial": trial.number}}
    compress.export(trained.model, dst, meta=new_meta)
    return {
        "epochs": epochs,
        "lr": recipe.lr,
        "batch_size": recipe.batch_size,
        "finetune_epochs": recipe.finetune_epochs if cfgs else 0,
        "finetune_lr": recipe.finetune_lr,
        "configs": [repr(c) for c in cfgs],
        "distilled": distilled,
        "seconds": round(time.monotonic() - start, 2),
    }


def _space(meta: Mapping[str, Any]) -> SearchSpace:
    from search_spaces import get_search_space, search_space_config

    name = meta["space"]
    return get_search_space(name, search_space_config(name)(**meta["space_cfg"]))


def _train(
    model: Any,
    splits: Splits,
    recipe: Recipe,
    cfgs: list[Any],
    seed: int,
    loss_fn: LossFn | None,
    say: Callable[[str], None],
) -> RecipeResult:
    """:func:`nas.pipeline.train_compressed`, with a progress bar over the epochs."""
    from tqdm.auto import tqdm

    from nas.pipeline import train_compressed

    finetunes = bool(cfgs) and recipe.finetune_epochs > 0
    with tqdm(
        total=recipe.epochs,
        desc="retrain",
        unit="epoch",
        file=sys.stderr,
        disable=recipe.epochs < 3,
    ) as bar:

        def tick(epoch: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if epoch == recipe.epochs - 1:
                bar.close()  # the bar ends with training; fine-tuning follows without one
                if finetunes:
                    say(
                        f"fine-tuning compressed model: {recipe.finetune_epochs} epochs at lr "
                        f"{recipe.finetune_lr:g}"
                    )

        return train_compressed(
            model, splits, recipe, compression=cfgs, seed=seed, loss_fn=loss_fn, on_epoch=tick
        )


def _distillation(
    comp: Mapping[str, Any],
    record: SearchRecord,
    space: SearchSpace,
    meta: Mapping[str, Any],
    splits: Splits,
    out_dir: Path,
    say: Callable[[str], None],
) -> tuple[LossFn | None, dict[str, float] | None]:
    """The distillation loss the search trained the candidate with (None: cross-entropy),
    and its settings for ``metrics.json``."""
    if not comp.get("distill"):
        return None, None
    teacher = _search_teacher(record, space, meta["space_cfg"], splits, out_dir, say)
    if teacher is None:
        say(
            "warning: the candidate was distilled in the search, but the search run has "
            "no config.yaml to rebuild its teacher from; retraining uses cross-entropy"
        )
        return None, None
    from nas.pipeline import distiller

    temperature, alpha = float(comp["distill_temperature"]), float(comp["distill_alpha"])
    say(f"distilling from the search's teacher (T={temperature:g}, alpha={alpha:g})")
    loss_fn = distiller(teacher, temperature=temperature, alpha=alpha)
    return loss_fn, {"temperature": temperature, "alpha": alpha}


def _search_teacher(
    record: SearchRecord,
    space: SearchSpace,
    space_cfg: dict[str, Any],
    splits: Splits,
    out_dir: Path,
    say: Callable[[str], None],
) -> Any:
    """The search's distillation teacher, or None without the search's config.

    It is the one the search used: loaded from the search's teacher cache when that is
    on this machine, else trained the same way (same data, budget and seed) and cached
    under ``out_dir/teachers``.
    """
    if record.config is None:
        return None
    from omegaconf import OmegaConf

    from nas.pipeline import make_teacher

    cfg = OmegaConf.create(record.config)
    searched = Path(str(OmegaConf.select(cfg, "search.output_dir", default="."))).expanduser()
    cache = searched / "outputs" / "teachers"
    if not cache.is_dir():
        cache = out_dir / "teachers"
    source = make_teacher(cfg, space=space, space_cfg=space_cfg, splits=splits, cache_dir=cache)
    if source is None:
        return None
    say(f"teacher: {source.describe()}, cache {cache}")
    return source.get()
