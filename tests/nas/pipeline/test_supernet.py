"""``strategy=supernet`` below the driver: supernet training (both schedules), the
safetensors cache (keys, covering, corrupt files), the start-up check, BatchNorm
re-estimation, the estimated front, and scoring a candidate by inheritance.

Everything runs on the 8 px ``digits`` images with a narrow mbconv space and one
epoch, so a supernet trains in about a second."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial
from torch import nn

import compress
from nas import compose
from nas.config import ConfigError
from nas.hw import RandomSuggest
from nas.pipeline import (
    CheckpointError,
    SupernetRecipe,
    SupernetStrategy,
    TrialContext,
    TrialTimeout,
    candidate_meta,
    compression_configs,
    estimated_front,
    inherit,
    load_splits,
    propose,
    recalibrate_bn,
    space_from_cfg,
    train_supernet,
)
from nas.pipeline import _supernet_front as supernet_module
from nas.pipeline._supernet_cache import cache_path, covers, find_cached, read_key, save
from nas.study import keys
from search_spaces import SlicedSupernet, get_search_space

SMALL = (
    "strategy=supernet",
    "search_space=mbconv",
    "search_space.width_mults=[0.25,0.5]",
    "search_space.depth_max=2",
    "search_space.expansions=[2,4]",
    "dataset.n_train=200",
    "strategy.epochs=1",
    "strategy.warmup_epochs=0",
    "strategy.bn_calib_images=64",
)
"""A supernet of a narrow space on 200 digits, one epoch (about a second)."""


@pytest.fixture(scope="module")
def cfg(fast: Callable[..., list[str]]) -> DictConfig:
    return compose(fast(*SMALL))


def make_ctx(cfg: DictConfig, out_dir: Path) -> TrialContext:
    """The context a search of ``cfg`` gives its trials (no hw, no evaluator process)."""
    space, space_cfg = space_from_cfg(cfg.search_space)
    return TrialContext(
        space=space,
        space_cfg=space_cfg,
        splits=load_splits(cfg.dataset, seed=0),
        compress_cfg=cfg.compress,
        train_cfg=cfg.train,
        bits=sorted(cfg.compress.bits),
        hw=None,
        hw_cfg=None,
        evaluator=None,
        artifact_dir=out_dir / "outputs" / "study",
        strategy=SupernetStrategy(cfg.strategy),
    )


@pytest.fixture(scope="module")
def trained(cfg: DictConfig, tmp_path_factory: pytest.TempPathFactory) -> TrialContext:
    """A context whose strategy has trained (and cached) its supernet."""
    ctx = make_ctx(cfg, tmp_path_factory.mktemp("trained"))
    assert ctx.strategy is not None
    ctx.strategy.prepare(ctx)
    return ctx


def strategy_of(ctx: TrialContext) -> SupernetStrategy:
    assert isinstance(ctx.strategy, SupernetStrategy)
    return ctx.strategy


# --- training ---------------------------------------------------------------------------


def _recipe(**kw: Any) -> SupernetRecipe:
    base: dict[str, Any] = dict(
        epochs=2, warmup_epochs=1, schedule="sandwich", random_subnets=1, lr=0.05,
        batch_size=100, weight_decay=1e-4, label_smoothing=0.0, distill_temperature=1.0,
        bits=(4, 8, 32), sparsity_max=0.5,
    )  # fmt: skip
    return SupernetRecipe(**{**base, **kw})


@pytest.mark.parametrize("schedule", ["sandwich", "progressive"])
def test_train_supernet_trains_the_shared_weights(
    cfg: DictConfig, tmp_path: Path, schedule: str
) -> None:
    ctx = make_ctx(cfg, tmp_path)
    torch.manual_seed(0)
    supernet = SlicedSupernet(ctx.space, ctx.splits.spec)
    before = {k: v.clone() for k, v in supernet.model.state_dict().items()}
    epochs: list[tuple[int, float]] = []

    stats = train_supernet(
        supernet,
        ctx.splits,
        _recipe(schedule=schedule),
        seed=0,
        on_epoch=lambda e, loss: epochs.append((e, loss)),
    )

    assert stats.steps == 2 * 2  # 200 images in batches of 100, two epochs
    # Epoch 0 is warm-up (the largest alone); epoch 1 adds the smallest and one random.
    assert stats.subnets_trained == 2 * 2
    assert np.isfinite(stats.final_loss)
    assert [e for e, _ in epochs] == [0, 1] and all(np.isfinite(loss) for _, loss in epochs)
    after = supernet.model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "conv_stem.weight" in changed and "classifier.weight" in changed
    assert not supernet.model.training


def test_a_shift_keys_the_supernet_and_no_shift_keeps_the_old_key() -> None:
    assert "shift" not in _recipe().key()  # supernets cached before shifts are reused
    assert _recipe(shift=2).key()["shift"] == 2


def test_train_supernet_with_a_shift_sees_other_images(cfg: DictConfig, tmp_path: Path) -> None:
    ctx = make_ctx(cfg, tmp_path)
    weights = []
    for shift in (0, 0, 2):
        torch.manual_seed(0)
        supernet = SlicedSupernet(ctx.space, ctx.splits.spec)
        train_supernet(supernet, ctx.splits, _recipe(shift=shift), seed=0)
        weights.append(supernet.model.state_dict()["conv_stem.weight"])
    assert torch.equal(weights[0], weights[1])  # seeded: the difference is the shift's
    assert not torch.equal(weights[0], weights[2])


def test_the_strategy_shifts_by_its_fraction_of_the_image_side(
    cfg: DictConfig, tmp_path: Path
) -> None:
    ctx = make_ctx(cfg, tmp_path)
    side = ctx.splits.spec.image_size
    assert strategy_of(ctx).recipe(ctx).shift == round(cfg.strategy.shift * side) > 0
    unshifted = copy.deepcopy(cfg.strategy)
    unshifted.shift = 0.0
    assert SupernetStrategy(unshifted).recipe(ctx).shift == 0


def test_train_supernet_stops_at_its_deadline(cfg: DictConfig, tmp_path: Path) -> None:
    ctx = make_ctx(cfg, tmp_path)
    supernet = SlicedSupernet(ctx.space, ctx.splits.spec)
    with pytest.raises(TrialTimeout, match="deadline"):
        train_supernet(supernet, ctx.splits, _recipe(), seed=0, deadline=0.0)


# --- the cache --------------------------------------------------------------------------


def test_save_then_read_key_round_trips(trained: TrialContext, tmp_path: Path) -> None:
    strategy = strategy_of(trained)
    key = strategy.key(trained)
    path = tmp_path / "s.safetensors"
    size = save(strategy.load(trained), path, key)
    assert size == path.stat().st_size > 0
    assert read_key(path) == key
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_the_cache_holds_the_trained_supernet_under_its_key(trained: TrialContext) -> None:
    strategy = strategy_of(trained)
    key = strategy.key(trained)
    path = cache_path(strategy.cache_dir(trained), key)
    assert path.exists() and read_key(path) == key
    assert key["recipe"]["bits"] == sorted(trained.compress_cfg.bits)
    assert key["recipe"]["sparsity_max"] == trained.compress_cfg.sparsity_max
    # Loading it in a new strategy gives the same weights.
    again = SupernetStrategy(strategy.cfg)
    loaded = again.load(trained).model.state_dict()
    for name, t in strategy.load(trained).model.state_dict().items():
        assert torch.equal(loaded[name], t), name


def _corrupt(path: Path) -> None:
    path.write_bytes(b"\x00garbage, not a safetensors file\xff" * 10)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1000])


@pytest.mark.parametrize("damage", [_corrupt, _truncated], ids=["garbage", "truncated"])
def test_a_damaged_checkpoint_is_refused_in_one_line_and_trained_again(
    cfg: DictConfig,
    trained: TrialContext,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[Path], None],
) -> None:
    ctx = make_ctx(cfg, tmp_path)
    strategy = strategy_of(ctx)
    key = strategy.key(ctx)
    path = cache_path(strategy.cache_dir(ctx), key)
    path.parent.mkdir(parents=True)
    save(strategy_of(trained).load(trained), path, key)
    damage(path)
    if damage is _corrupt:
        with pytest.raises(CheckpointError) as e:
            read_key(path)
        assert "\n" not in str(e.value) and str(path) in str(e.value)
    capsys.readouterr()

    supernet = strategy.load(ctx, train=True)

    err = capsys.readouterr().err
    refusals = [ln for ln in err.splitlines() if "training it again" in ln]
    assert len(refusals) == 1, err
    assert str(path) in refusals[0] and "supernet checkpoint" in refusals[0]
    assert "trained again" not in refusals[0]  # said once, by the cache's user
    assert "Traceback" not in err
    assert read_key(path) == key  # overwritten by the retrained supernet
    fresh = SlicedSupernet(ctx.space, ctx.splits.spec)
    from nas.pipeline._supernet_cache import load_into

    load_into(fresh, path)
    for name, t in supernet.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[name], t), name


def test_load_without_train_refuses_an_empty_cache(cfg: DictConfig, tmp_path: Path) -> None:
    ctx = make_ctx(cfg, tmp_path)
    with pytest.raises(RuntimeError, match="strategy.prepare"):
        strategy_of(ctx).load(ctx)


def _variant(key: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``key`` with ``space_cfg.<k>`` / ``recipe.<k>`` / top-level changes."""
    out = copy.deepcopy(key)
    for name, value in changes.items():
        where, _, field = name.rpartition("__")
        (out[where] if where else out)[field] = value
    return out


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"recipe__bits": [2, 3, 4, 5, 6, 8, 16, 32]}, "bit-widths [5]"),
        ({"space_cfg__width_mults": [0.25, 0.5, 0.75]}, "search_space.width_mults has [0.75]"),
        ({"space_cfg__depth_max": 3}, "search_space.depth_max=3 is above the 2"),
        ({"space_cfg__kernels": [3, 5, 7]}, "search_space.kernels has [7]"),
        ({"space_cfg__num_features": 64}, "search_space.num_features=64 differs"),
        ({"recipe__sparsity_max": 0.95}, "sparsity up to 0.95"),
        ({"data": "0123456789abcdef"}, "another data"),
        ({"seed": 1}, "another seed"),
        ({"space": "fbnet"}, "another space"),
    ],
)
def test_covers_names_what_the_supernet_was_not_trained_for(
    trained: TrialContext, changes: dict[str, Any], needle: str
) -> None:
    have = strategy_of(trained).key(trained)
    why = covers(have, _variant(have, **changes))
    assert why is not None and needle in why, why
    assert "\n" not in why


def test_covers_a_narrower_search(trained: TrialContext) -> None:
    have = strategy_of(trained).key(trained)
    assert covers(have, have) is None
    narrower = _variant(
        have,
        space_cfg__width_mults=[0.25],
        space_cfg__depth_max=1,
        space_cfg__kernels=[3],
        recipe__bits=[4, 8],
        recipe__sparsity_max=0.5,
    )
    assert covers(have, narrower) is None
    # ... and a narrower one does not cover the wider.
    assert covers(narrower, have) is not None


def test_find_cached_finds_a_wider_covering_supernet(trained: TrialContext, tmp_path: Path) -> None:
    supernet = strategy_of(trained).load(trained)
    wide = strategy_of(trained).key(trained)
    wide_path = cache_path(tmp_path, wide)
    save(supernet, wide_path, wide)
    other_budget = _variant(wide, recipe__epochs=7)
    save(supernet, cache_path(tmp_path, other_budget), other_budget)

    narrow = _variant(wide, space_cfg__width_mults=[0.25], recipe__bits=[8, 32])
    assert find_cached(tmp_path, narrow) == (wide_path, wide)
    assert find_cached(tmp_path, wide) == (wide_path, wide)  # the exact key
    assert find_cached(tmp_path, _variant(wide, space_cfg__width_mults=[0.75])) is None
    # A covering supernet of another training budget is not picked up.
    assert find_cached(tmp_path, _variant(narrow, recipe__epochs=3)) is None
    # An unreadable file in the cache is skipped, not fatal.
    _corrupt(tmp_path / "supernet_mbconv_0000000000000000.safetensors")
    assert find_cached(tmp_path, narrow) == (wide_path, wide)


def test_a_narrower_search_scores_with_the_wider_cached_supernet(
    trained: TrialContext,
    fast: Callable[..., list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    narrow_cfg = compose(fast(*SMALL, "search_space.width_mults=[0.25]", "compress.bits=[8,32]"))
    ctx = make_ctx(narrow_cfg, trained.artifact_dir.parent.parent)  # the same cache
    assert strategy_of(ctx).cache_dir(ctx) == strategy_of(trained).cache_dir(trained)
    capsys.readouterr()
    supernet = strategy_of(ctx).load(ctx)  # no training: the wider one covers it
    assert "Using the cached supernet" in capsys.readouterr().err
    assert supernet.space.cfg.width_mults == [0.25, 0.5]  # the file's own space
    proposal = propose(RandomSuggest(np.random.default_rng(0)), ctx, number=0)
    result = strategy_of(ctx).score(proposal, ctx)
    assert 0.0 <= result.metrics["val_accuracy"] <= 1.0


# --- the start-up check -----------------------------------------------------------------


def test_check_refuses_a_checkpoint_that_does_not_cover(
    trained: TrialContext, fast: Callable[..., list[str]], tmp_path: Path
) -> None:
    strategy = strategy_of(trained)
    path = cache_path(strategy.cache_dir(trained), strategy.key(trained))
    wider = compose(fast(*SMALL, "search_space.width_mults=[0.25,0.5,0.75]",
                         f"strategy.checkpoint={path}"))  # fmt: skip
    ctx = make_ctx(wider, tmp_path)
    with pytest.raises(ConfigError) as e:
        strategy_of(ctx).check(ctx)
    msg = str(e.value)
    assert "\n" not in msg
    assert "strategy.checkpoint=" in msg and "does not cover" in msg and "[0.75]" in msg

    # The same checkpoint passes for the search it was trained for, and is used as is.
    same = make_ctx(compose(fast(*SMALL, f"strategy.checkpoint={path}")), tmp_path)
    strategy_of(same).check(same)
    assert strategy_of(same).load(same) is not None
    assert not strategy_of(same).cache_dir(same).exists()  # nothing trained or cached


def test_check_refuses_a_checkpoint_that_is_not_a_supernet(
    fast: Callable[..., list[str]], tmp_path: Path
) -> None:
    path = tmp_path / "bad.safetensors"
    _corrupt(path)
    ctx = make_ctx(compose(fast(*SMALL, f"strategy.checkpoint={path}")), tmp_path)
    with pytest.raises(ConfigError, match="strategy.checkpoint: supernet checkpoint") as e:
        strategy_of(ctx).check(ctx)
    assert "\n" not in str(e.value)
    assert "again" not in str(e.value)  # an explicit checkpoint is refused, never retrained
    missing = make_ctx(
        compose(fast(*SMALL, f"strategy.checkpoint={tmp_path / 'none.safetensors'}")), tmp_path
    )
    with pytest.raises(ConfigError, match="does not exist"):
        strategy_of(missing).check(missing)


def test_check_refuses_a_space_that_does_not_nest(cfg: DictConfig, tmp_path: Path) -> None:
    ctx = make_ctx(cfg, tmp_path)
    ctx.space = get_search_space("tiny")
    with pytest.raises(ConfigError) as e:
        strategy_of(ctx).check(ctx)
    msg = str(e.value)
    assert "search_space=tiny" in msg and "\n" not in msg


# --- BatchNorm re-estimation ------------------------------------------------------------


def test_recalibrate_bn_gives_the_statistics_of_the_images() -> None:
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(9.0)
    model = nn.Sequential(bn)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(40, 3, 4, 4, generator=g) * torch.tensor([1.0, 2.0, 0.5]).view(
        1, 3, 1, 1
    ) + torch.tensor([0.0, -1.0, 3.0]).view(1, 3, 1, 1)

    recalibrate_bn(model, images)

    torch.testing.assert_close(bn.running_mean, images.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(bn.running_var, images.var(dim=(0, 2, 3), unbiased=True))
    assert not model.training
    assert bn.momentum == 0.1

    # Over several batches of equal size: the mean of their statistics.
    recalibrate_bn(model, images, batch_size=10)
    batches = images.split(10)
    torch.testing.assert_close(bn.running_mean, images.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(
        bn.running_var, torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in batches]).mean(0)
    )


# --- the estimated front ----------------------------------------------------------------


def _add(
    study: optuna.Study,
    x: int,
    acc: float,
    size: float,
    *,
    phase: str = "score",
    feasible: bool = True,
    state: TrialState = TrialState.COMPLETE,
) -> int:
    attrs = {
        keys.PHASE: phase,
        keys.FEASIBLE: feasible,
        keys.METRICS: {"val_accuracy": acc, "size_bytes": size},
    }
    study.add_trial(
        create_trial(
            state=state,
            params={"x": x},
            distributions={"x": IntDistribution(0, 100)},
            values=[acc, size] if state == TrialState.COMPLETE else None,
            user_attrs=attrs,
        )
    )
    return len(study.trials) - 1


@pytest.fixture
def population() -> tuple[optuna.Study, dict[str, int]]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    n = {
        "e": _add(study, 1, 0.40, 50),
        "a": _add(study, 2, 0.50, 100),
        "b_worse": _add(study, 3, 0.30, 200),
        "b": _add(study, 3, 0.60, 200),  # the same candidate again, scored higher
        "c": _add(study, 4, 0.55, 300),  # dominated by b
        "tie": _add(study, 5, 0.60, 350),  # as accurate as b, larger
        "d": _add(study, 6, 0.70, 400),
        "f": _add(study, 7, 0.90, 1000),
        # Never on the estimated front:
        "final": _add(study, 8, 1.00, 10, phase="final"),
        "infeasible": _add(study, 9, 0.99, 20, feasible=False),
        "failed": _add(study, 10, 0.0, 0, state=TrialState.FAIL),
    }
    return study, n


def test_estimated_front_is_the_nondominated_scored_candidates(
    population: tuple[optuna.Study, dict[str, int]],
) -> None:
    study, n = population
    assert estimated_front(study, 10) == [n["e"], n["a"], n["b"], n["d"], n["f"]]


@pytest.mark.parametrize(
    ("k", "picks"), [(5, "eabdf"), (3, "ebf"), (2, "ef"), (4, "eadf"), (1, "e")]
)
def test_estimated_front_spreads_k_along_the_size_axis(
    population: tuple[optuna.Study, dict[str, int]], k: int, picks: str
) -> None:
    study, n = population
    front = estimated_front(study, k)
    assert front == [n[p] for p in picks]
    assert len(set(front)) == len(front)


def test_the_strategy_covers_the_sizes_first_and_guarantees_finalists(
    population: tuple[optuna.Study, dict[str, int]], tmp_path: Path, cfg: DictConfig
) -> None:
    """No finalist has landed: two bins over sizes 50-1000, the best of each, the
    largest bin first (candidates below the reference accuracy never)."""
    study, n = population
    strategy = SupernetStrategy(OmegaConf.create({"finalists": 2, "max_finalists": None}))
    ctx = make_ctx(cfg, tmp_path)
    ctx.front_ref = (0.45, 2000.0)
    assert strategy.min_finalists == 2 and strategy.max_finalists is None
    assert strategy.finalists(study, ctx) == [n["f"], n["b"]]


def test_estimated_front_spreads_in_log_size_where_small_models_crowd() -> None:
    """Five members between 10 and 14 bytes and one at 1,000: evenly by index would take
    three of the crowd; evenly in log size takes its two ends and the large one."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    numbers = [
        _add(study, i, 0.5 + 0.05 * i, size) for i, size in enumerate([10, 11, 12, 13, 14, 1000])
    ]
    assert estimated_front(study, 3) == [numbers[0], numbers[4], numbers[5]]


def test_estimated_front_counts_a_candidate_once() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    first = _add(study, 1, 0.8, 100)
    _add(study, 1, 0.7, 100)
    _add(study, 1, 0.8, 100)  # equal: the first stays
    assert estimated_front(study, 5) == [first]
    assert estimated_front(optuna.create_study(directions=["maximize", "minimize"]), 3) == []


def test_record_keys_agree_with_nas_study_keys() -> None:
    assert supernet_module._PHASE == keys.PHASE
    assert supernet_module._FEASIBLE == keys.FEASIBLE
    assert supernet_module._METRICS == keys.METRICS
    assert supernet_module._DEVICE_CONSTRAINTS == keys.DEVICE_CONSTRAINTS


# --- scoring by inheritance -------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_inherits_a_model_of_the_proposals_size(trained: TrialContext, seed: int) -> None:
    strategy = strategy_of(trained)
    proposal = propose(RandomSuggest(np.random.default_rng(seed)), trained, number=seed)

    result = strategy.score(proposal, trained)

    assert result.feasible
    assert 0.0 <= result.metrics["val_accuracy"] <= 1.0
    assert result.metrics["size_bytes"] == proposal.metrics["size_bytes_estimate"]
    assert result.metrics["score_seconds"] >= 0
    cfgs = compression_configs(proposal.compression, trained.input_shape)
    meta = candidate_meta(trained, proposal.arch, proposal.compression)
    supernet = strategy.load(trained)
    estimate = compress.estimate_size_bytes(supernet.extract(proposal.arch), cfgs, meta=meta)
    assert estimate == proposal.metrics["size_bytes_estimate"]
    model = inherit(supernet, proposal, trained, calib_images=64)
    assert compress.stats(model)["params"] == proposal.metrics["params"]
    assert not model.training


def test_score_is_a_deterministic_estimate(trained: TrialContext) -> None:
    strategy = strategy_of(trained)
    proposal = propose(RandomSuggest(np.random.default_rng(5)), trained, number=5)
    first = strategy.score(proposal, trained).metrics["val_accuracy"]
    assert strategy.score(proposal, trained).metrics["val_accuracy"] == first


@pytest.mark.parametrize(
    ("epoch", "elastic"),
    [
        (1, {"kernels"}),
        (2, {"kernels", "depths"}),
        (3, {"kernels", "depths", "expansions"}),
        (4, {"kernels", "depths", "expansions", "width_mult"}),
    ],
)
def test_progressive_shrinking_frees_one_dimension_per_phase(
    cfg: DictConfig, tmp_path: Path, epoch: int, elastic: set[str]
) -> None:
    from nas.pipeline._supernet_train import _step_archs

    ctx = make_ctx(cfg, tmp_path)
    supernet = SlicedSupernet(ctx.space, ctx.splits.spec)
    recipe = _recipe(schedule="progressive", epochs=5, warmup_epochs=1, random_subnets=20)
    archs = _step_archs(supernet, recipe, np.random.default_rng(epoch), epoch)
    assert len(archs) == 21
    for arch in archs:
        for name in set(arch) - elastic:
            assert arch[name] == supernet.largest[name], (name, arch)
    assert archs[0] == {
        k: supernet.smallest[k] if k in elastic else supernet.largest[k] for k in archs[0]
    }
    varied = {k for k in supernet.largest if any(a[k] != supernet.largest[k] for a in archs)}
    assert varied == elastic


def test_sandwich_trains_the_smallest_and_random_subnetworks(
    cfg: DictConfig, tmp_path: Path
) -> None:
    from nas.pipeline._supernet_train import _step_archs

    ctx = make_ctx(cfg, tmp_path)
    supernet = SlicedSupernet(ctx.space, ctx.splits.spec)
    archs = _step_archs(supernet, _recipe(random_subnets=3), np.random.default_rng(0), 1)
    assert len(archs) == 4 and archs[0] == supernet.smallest
