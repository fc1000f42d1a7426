"""Config composition: every group option composes; bad input gives one clear line."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from nas import compose
from nas.config import ConfigError, conf_dir

GROUPS = ["dataset", "search_space", "sampler", "train", "compress", "runner"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in _options(g)], ids=lambda v: str(v)
)
def test_every_group_option_composes(group: str, option: str, tmp_path) -> None:
    extra = [f"dataset.root={tmp_path}"] if option in ("cifar10", "imagefolder") else []
    cfg = compose([f"{group}={option}", *extra])
    assert cfg[group].get("name", option) == option
    assert cfg.hw is None


@pytest.mark.parametrize("profile", _options("hw"))
def test_every_hw_profile_composes(profile: str) -> None:
    cfg = compose([f"+hw={profile}"])
    assert cfg.hw.name == profile
    assert cfg.hw.latency in ("measure", "predict", "none")


def test_defaults() -> None:
    cfg = compose([])
    assert cfg.dataset.name == "mnist5k"
    assert (cfg.dataset.n_test, cfg.dataset.n_val) == (1000, 500)
    assert cfg.search_space.name == "mbconv"
    assert cfg.runner.name == "local"
    assert cfg.mlflow.tracking_uri is None


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["+hw=nosuch"], "hw=nosuch"),
        (["dataset=nosuch"], "dataset=nosuch"),
        (["search_space=nosuch"], "search_space=nosuch"),
        (["search.n_trail=3"], "search.n_trail"),
        (["compress.bits=[5]"], "5"),
        (["compress.sparsity_max=1.5"], "1.5"),
        (["search.n_trials=0"], "n_trials=0"),
        (["dataset=imagefolder", "dataset.root=/no/such/dir"], "/no/such/dir"),
        (["train.epochs=abc"], "train.epochs"),
        (["search.n_trials=abc"], "search.n_trials=abc: expected an integer; search.n_trials "
         "must be an integer >= 1"),
        (["compress.bits=[a]"], "expected a list of integers; compress.bits contains a,"),
        (["search.progress=maybe"], "expected true or false"),
        (["hw=mobile"], "add it with +hw=mobile"),
        (["hw.latency_budget_ms=3"], "no hw is selected; add one first: +hw=NAME"),
        (["+search.foo=1"], "unknown config key 'search.foo'; search has: n_trials"),
        (["search.seed=0,1"], "add -m/--multirun"),
        (["compress.bits=[4"], "'compress.bits=[4' is not an override"),
        (["+hw=mobile", "+hw=mcu"], "hw is selected twice"),
        (["compress.prune_kinds=[filter]"], "'filter'"),
        (["compress.channel_ratio_max=1.0"], "channel_ratio_max=1.0"),
        (["compress.rank_ratios=[0.0]"], "rank_ratios has 0.0"),
        (["compress.distill_alpha_max=1.5"], "1.5"),
        (["compress.teacher=resnet"], "compress.teacher='resnet'"),
        (
            ["compress.teacher=timm:resnet18", "compress.distill=[true]"],
            "compress.teacher_checkpoint=None",
        ),
        (["search.cost=latency"], "search.cost='latency'; allowed size_bytes, energy_uj"),
        (["search.cost=energy_uj"], "search.cost=energy_uj needs a device"),
        (["+hw=[mobile,mcu]", "search.cost=energy_uj"], "takes one device; +hw=[mobile,mcu]"),
        (["+hw=mobile", "search.cost=energy_uj", "strategy=supernet"],
         "strategy=supernet chooses its finalists by size"),
        (["+hw=mobile", "hw.energy_budget_uj=0"], "hw.energy_budget_uj=0.0 must be > 0 or null"),
        (["+hw=mobile", "hw.energy_table=/no/such.json"],
         "hw.energy_table='/no/such.json': no such file"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        compose(overrides)
    msg = str(e.value)
    assert needle in msg
    assert "\n" not in msg


def test_cli_rejects_bad_input_fast_without_traceback() -> None:
    start = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "nas.search", "compress.sparsity_max=1.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - start
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == ["error: compress.sparsity_max=1.5 is outside [0, 1)"]
    assert elapsed < 10, f"config error took {elapsed:.1f} s; torch must not be imported first"
    # The same refusal in-process: it exits before anything imports torch.
    code = (
        "import runpy, sys\n"
        "sys.argv = ['nas.search', 'compress.sparsity_max=1.5']\n"
        "try:\n"
        "    runpy.run_module('nas.search', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    print(e.code, 'torch' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["2", "False"], r.stdout + r.stderr


def test_teacher_epochs_default_to_three_times_the_students() -> None:
    from nas.pipeline import teacher_epochs

    assert teacher_epochs(compose(["compress=all", "train.epochs=4"])) == 12
    assert teacher_epochs(compose(["compress=all", "compress.teacher_epochs=7"])) == 7
