"""``+hw=[a,b,...]``: several devices in one search, each its own ``devices.<name>``
profile, never merged into one; bad forms refused with one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nas import compose
from nas.config import (
    ConfigError,
    device_profiles,
    expand_device_list,
    is_multi_device,
    min_accuracy,
    search_hash,
)
from nas.driver import study_name_of


def test_a_device_list_gives_each_device_its_own_profile() -> None:
    cfg = compose(["+hw=[mobile,raspi4,mcu]"])
    assert cfg.hw is None and is_multi_device(cfg)
    profiles = device_profiles(cfg)
    assert list(profiles) == ["mobile", "raspi4", "mcu"]
    # Each keeps its own budgets and kernels: nothing of one leaks into another.
    single = {name: compose([f"+hw={name}"]).hw for name in profiles}
    for name, profile in profiles.items():
        assert profile == single[name]
    assert profiles["mcu"].latency_budget_ms is None
    assert list(profiles["raspi4"].bits) == [8, 32]


def test_hydras_package_form_is_the_same_search() -> None:
    listed = compose(["+hw=[mobile,mcu]"])
    by_hand = compose(["+hw@devices.mobile=mobile", "+hw@devices.mcu=mcu"])
    assert search_hash(listed) == search_hash(by_hand)


def test_a_device_key_is_set_per_device() -> None:
    cfg = compose(["+hw=[mobile,mcu]", "devices.mobile.latency_budget_ms=0.5"])
    assert cfg.devices.mobile.latency_budget_ms == 0.5
    assert compose(["+hw=mobile"]).hw.latency_budget_ms != 0.5


def test_single_device_searches_keep_their_study_names() -> None:
    """A one-element list is ``+hw=NAME``; the devices node is hashed only when set, so a
    single-device study made before devices existed resumes."""
    one = compose(["+hw=mobile"])
    assert not is_multi_device(one) and list(device_profiles(one)) == ["mobile"]
    assert search_hash(compose(["+hw=[mobile]"])) == search_hash(one)
    assert expand_device_list(["+hw=mobile", "train.epochs=2"]) == ["+hw=mobile", "train.epochs=2"]
    several = compose(["+hw=[mobile,raspi4]"])
    assert search_hash(several) != search_hash(one)
    # What the samplers see is part of a multi-device study, not of a single-device one.
    anyone = compose(["+hw=[mobile,raspi4]", "search.device_constraint=any"])
    assert search_hash(anyone) != search_hash(several)
    assert search_hash(compose(["+hw=mobile", "search.device_constraint=any"])) == (
        search_hash(one)
    )
    assert "-mobile+raspi4-" in study_name_of(several)
    assert "-mobile-" in study_name_of(one)
    assert device_profiles(compose([])) == {}


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["+hw=[mobile,mobile]"], "+hw=[mobile,mobile] names mobile twice; name each device once"),
        (["+hw=[mobile,nosuch]"], "device 'nosuch' of +hw=[...] is not a known hw option; "
         "choose from: custom, gpu, host, mcu, mobile, raspi4"),
        (["hw=[mobile,mcu]"], "hw=[mobile,mcu]: hw has no default; add the devices with "
         "+hw=[mobile,mcu]"),
        (["+hw=[]"], "+hw=[] names no device"),
        (["+hw=[mobile,mcu]", "hw.threads=2"], "set it per device: devices.<name>.threads=2"),
        (["+hw=mobile", "+hw=[mcu,raspi4]"], "hw is selected twice (+hw=mobile and "
         "+hw=[mcu,raspi4])"),
        (["+hw=[mobile,mcu]", "devices.mcu.latency_budget_ms=-1"],
         "devices.mcu.latency_budget_ms=-1.0 must be > 0 or null"),
        (["+hw=[mobile,mcu]", "devices.mcu.nosuch=1"], "unknown config key 'devices.mcu.nosuch'"),
        (["+hw=[mobile,mcu]", "compress.bits=[16]", "devices.mcu.bits=[8]"],
         "compress.bits=[16] and devices.mcu.bits=[8] share no bit-width"),
        (["search.min_accuracy=1.5"], "search.min_accuracy=1.5 is outside [0, 1) or null"),
        (["search.device_constraint=all"],
         "search.device_constraint='all'; allowed any, round_robin"),
    ],
)  # fmt: skip
def test_bad_device_lists_are_refused_with_one_line(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        compose(overrides)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_a_sweep_over_device_lists_is_refused_and_single_devices_still_sweep() -> None:
    with pytest.raises(ConfigError, match="a sweep over device lists is not supported"):
        expand_device_list(["+hw=[mobile,mcu],[raspi4]"])
    assert expand_device_list(["+hw=mobile,mcu"]) == ["+hw=mobile,mcu"]


def test_the_command_line_refuses_a_device_named_twice_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nas.search", "+hw=[mobile,raspi4,mobile]"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: +hw=[mobile,raspi4,mobile] names mobile twice; name each device once"
    ]


def test_the_command_line_composes_a_device_list() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nas.search", "+hw=[mobile,mcu]", "--cfg", "job"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "devices:\n  mobile:\n    name: mobile" in proc.stdout
    assert "\nhw: null" in proc.stdout


def test_the_front_floor_defaults_to_twice_chance() -> None:
    cfg = compose([])
    assert min_accuracy(cfg, num_classes=10) == pytest.approx(0.2)
    assert min_accuracy(cfg, num_classes=100) == pytest.approx(0.02)
    assert min_accuracy(compose(["search.min_accuracy=0.5"]), num_classes=10) == 0.5
    assert min_accuracy(compose(["search.min_accuracy=0"]), num_classes=10) == 0.0
