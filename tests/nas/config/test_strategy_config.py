"""The ``strategy`` group: ``strategy=supernet``'s schema and budget, what it refuses
(one line naming the value, before torch is imported), and that the default
``scratch`` config hashes to the same study as before strategies existed."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import open_dict

from nas import compose
from nas.config import ConfigError, search_hash

SUPERNET = "strategy=supernet"


def test_supernet_composes_with_its_schema_and_budget() -> None:
    cfg = compose([SUPERNET])
    s = cfg.strategy
    assert s.name == "supernet"
    assert (s.epochs, s.warmup_epochs, s.schedule, s.finalists) == (30, 3, "sandwich", 6)
    assert s.shift == 0.07
    assert s.checkpoint is None and s.lr is None and s.sparsity_max is None
    # The strategy's own file sets the budget of a search of cheap candidates.
    assert cfg.search.n_trials == 2000
    assert cfg.search.timeout_s == 900


def test_command_line_search_budget_wins_over_the_strategys() -> None:
    cfg = compose([SUPERNET, "search.n_trials=5", "search.timeout_s=60"])
    assert cfg.search.n_trials == 5
    assert cfg.search.timeout_s == 60
    # ... in either order on the command line.
    assert compose(["search.n_trials=5", SUPERNET]).search.n_trials == 5


def test_scratch_keeps_the_default_budget() -> None:
    cfg = compose([])
    assert cfg.strategy.name == "scratch"
    assert cfg.search.n_trials == 27


def test_an_unknown_supernet_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="strategy.epoch") as e:
        compose([SUPERNET, "strategy.epoch=3"])
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["strategy.epochs=0"], "strategy.epochs=0 must be >= 1"),
        (["strategy.bn_calib_images=0"], "strategy.bn_calib_images=0 must be >= 1"),
        (["strategy.finalists=0"], "strategy.finalists=0 must be >= 1"),
        (["strategy.warmup_epochs=-1"], "strategy.warmup_epochs=-1 must be >= 0"),
        (["strategy.random_subnets=-1"], "strategy.random_subnets=-1 must be >= 0"),
        (["strategy.finetune_epochs=-1"], "strategy.finetune_epochs=-1 must be >= 0"),
        (
            ["strategy.epochs=3", "strategy.warmup_epochs=5"],
            "strategy.warmup_epochs=5 must be <= strategy.epochs=3",
        ),
        (["strategy.schedule=zigzag"], "strategy.schedule='zigzag' is not one of sandwich"),
        (["strategy.lr=0"], "strategy.lr=0"),
        (["strategy.distill_temperature=-1"], "strategy.distill_temperature=-1"),
        (["strategy.finetune_lr=0"], "strategy.finetune_lr=0"),
        (["strategy.sparsity_max=1.0"], "strategy.sparsity_max=1.0 must be in [0, 1)"),
        (["strategy.sparsity_max=-0.1"], "strategy.sparsity_max=-0.1"),
        (["strategy.shift=0.5"], "strategy.shift=0.5 must be in [0, 0.5)"),
        (["strategy.shift=-0.1"], "strategy.shift=-0.1"),
        (["search_space=tiny"], "search_space=tiny has none"),
        (["search_space=fbnet"], "search_space=fbnet has none"),
        (["early_stop=moasha"], "early_stop=moasha"),
        (["sampler=gp"], "sampler=gp"),
        (["compress=all"], "compress.prune_kinds=['unstructured', 'structured']"),
        (["compress=all"], "compress.rank_ratios=[0.25, 0.5, 1.0]"),
        (["compress=all"], "compress.distill=[False, True]"),
        (["compress.prune_kinds=[structured]"], "compress.prune_kinds=['structured']"),
        (["compress.rank_ratios=[0.5,1.0]"], "compress.rank_ratios=[0.5, 1.0]"),
        (["compress.distill=[true]"], "compress.distill=[True]"),
    ],
)  # fmt: skip
def test_supernet_refuses_in_one_line(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        compose([SUPERNET, *overrides])
    msg = str(e.value)
    assert needle in msg, msg
    assert "\n" not in msg


def test_compress_all_names_only_what_it_cannot_honour() -> None:
    with pytest.raises(ConfigError) as e:
        compose(
            [SUPERNET, "compress=all", "compress.distill=[false]", "compress.rank_ratios=[1.0]"]
        )
    msg = str(e.value)
    assert "compress.prune_kinds" in msg
    assert "rank_ratios" not in msg and "distill=" not in msg


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["strategy.warmup_epochs=0", "strategy.epochs=1", "strategy.schedule=progressive"],
        ["sampler=nsga2", "strategy.sparsity_max=0.5", "strategy.lr=0.1"],
        ["compress=all", "compress.prune_kinds=[unstructured]", "compress.rank_ratios=[1.0]",
         "compress.distill=[false]"],
    ],
)  # fmt: skip
def test_supernet_accepts_what_it_can_honour(overrides: list[str]) -> None:
    assert compose([SUPERNET, *overrides]).strategy.name == "supernet"


def test_scratch_refuses_none_of_it() -> None:
    cfg = compose(["search_space=tiny", "early_stop=moasha", "sampler=gp", "compress=all"])
    assert cfg.strategy.name == "scratch"


# --- the study hash ---------------------------------------------------------------------


def test_the_scratch_study_hash_is_that_of_a_config_without_strategies() -> None:
    cfg = compose([])
    before_strategies = cfg.copy()
    with open_dict(before_strategies):
        del before_strategies["strategy"]
    assert "strategy" not in before_strategies
    assert search_hash(cfg) == search_hash(before_strategies)


def test_a_supernet_search_is_a_study_of_its_own() -> None:
    scratch, supernet = compose([]), compose([SUPERNET])
    assert search_hash(supernet) != search_hash(scratch)
    # What the supernet trains changes the study; the search budget does not.
    assert search_hash(compose([SUPERNET, "strategy.epochs=5"])) != search_hash(supernet)
    assert search_hash(compose([SUPERNET, "search.n_trials=5"])) == search_hash(supernet)


def test_the_cli_refuses_before_importing_torch() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "nas.search", SUPERNET, "sampler=gp"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: sampler=gp"), r.stderr
