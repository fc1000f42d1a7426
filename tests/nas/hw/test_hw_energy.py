"""The energy model: it reproduces its table's ratios, counts what it says it counts,
and takes a profile's own table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from nas import compose
from nas.config import DEFAULT_ENERGY_TABLE, conf_dir, hw_profile_path
from nas.hw import HardwareModel, energy_breakdown, read_energy_table

HOROWITZ = read_energy_table(hw_profile_path(DEFAULT_ENERGY_TABLE))


def test_the_table_is_horowitz_as_published() -> None:
    t = HOROWITZ
    assert t.name == "horowitz45" and "ISSCC 2014" in t.source
    assert dict(t.int_add) == {8: 0.03, 16: 0.05, 32: 0.1}
    assert dict(t.int_mult) == {8: 0.2, 32: 3.1}
    assert (dict(t.float_add), dict(t.float_mult)) == ({16: 0.4, 32: 0.9}, {16: 1.1, 32: 3.7})
    assert dict(t.sram_read_64bit) == {8192: 10.0, 32768: 20.0, 1048576: 100.0}
    assert t.dram_64bit == 1300.0


def test_the_model_reproduces_its_tables_ratios() -> None:
    t = HOROWITZ
    # int8 against fp32 multiply-add: (0.2 + 0.03) / (3.7 + 0.9) = 1/20.
    assert t.mac_pj(8) / t.mac_pj(32) == pytest.approx(0.05)
    assert t.mac_pj(16) / t.mac_pj(32) == pytest.approx((1.1 + 0.4) / 4.6)
    # Below 8 bits: multiply ~ bits^2, add ~ bits, from the 8-bit entries.
    assert t.mac_pj(4) == pytest.approx(0.2 / 4 + 0.03 / 2)
    assert t.mac_pj(2) == pytest.approx(0.2 / 16 + 0.03 / 4)
    # Memory: SRAM by the smallest array that holds the footprint, DRAM above 1 MB.
    assert t.access_pj_per_byte(8192) == (10 / 8, "SRAM 8 KB")
    assert t.access_pj_per_byte(8193) == (20 / 8, "SRAM 32 KB")
    assert t.access_pj_per_byte(2**20 + 1) == (1300 / 8, "DRAM")
    with pytest.raises(ValueError, match="bits=12"):
        t.mac_pj(12)


def _linear() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64, bias=False))


def test_a_layer_costs_its_macs_weights_and_activations() -> None:
    fp32 = energy_breakdown(_linear(), (1, 64), table=HOROWITZ, bits=32)
    int8 = energy_breakdown(_linear(), (1, 64), table=HOROWITZ, bits=8)
    assert fp32.macs == int8.macs == 64 * 64
    assert int8.compute_uj / fp32.compute_uj == pytest.approx(0.05)
    assert fp32.compute_uj == pytest.approx(4096 * 4.6e-6)
    # 16 KB of fp32 weights sit in the 32 KB SRAM, 4 KB of int8 ones in the 8 KB one.
    assert (fp32.weight_bytes, int8.weight_bytes) == (4 * 4096, 4096)
    assert fp32.weights_uj == pytest.approx(4 * 4096 / 8 * 20e-6)
    assert int8.weights_uj == pytest.approx(4096 / 8 * 10e-6)
    # Input read and output written once, at 4 bytes an element.
    assert fp32.activation_traffic_bytes == int8.activation_traffic_bytes == (64 + 64) * 4
    assert fp32.total_uj == pytest.approx(fp32.compute_uj + fp32.weights_uj + fp32.activations_uj)


def test_pruned_weights_are_skipped_only_where_kernels_skip_zeros() -> None:
    def at(sparse_speedup: bool) -> float:
        return energy_breakdown(
            _linear(), (1, 64), table=HOROWITZ, bits=8, sparsity=0.75,
            sparse_speedup=sparse_speedup,
        ).compute_uj  # fmt: skip

    dense = energy_breakdown(_linear(), (1, 64), table=HOROWITZ, bits=8).compute_uj
    assert at(False) == pytest.approx(dense)
    assert at(True) == pytest.approx(dense / 4)


def _profiles() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "hw").glob("*.yaml"))


@pytest.mark.parametrize("profile", _profiles())
def test_every_profile_models_energy(profile: str) -> None:
    hw = HardwareModel(compose([f"+hw={profile}"]).hw)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 26 * 26, 10))
    fp32 = hw.energy(model, (1, 1, 28, 28), bits=32).total_uj
    int8 = hw.energy(model, (1, 1, 28, 28), bits=8).total_uj
    assert 0 < int8 < fp32


def test_a_profile_brings_its_own_table(tmp_path: Path) -> None:
    data = json.loads(hw_profile_path(DEFAULT_ENERGY_TABLE).read_text())
    data["int_mult"]["8"], data["int_add"]["8"] = 0.4, 0.06  # twice the default's
    own = tmp_path / "table.json"
    own.write_text(json.dumps(data))
    cfg = compose(["+hw=mobile", f"hw.energy_table={own}"])
    base = compose(["+hw=mobile"])
    e = HardwareModel(cfg.hw).energy(_linear(), (1, 64), bits=8)
    e0 = HardwareModel(base.hw).energy(_linear(), (1, 64), bits=8)
    assert e.compute_uj == pytest.approx(2 * e0.compute_uj)


def test_a_bad_table_names_the_file_and_what_is_missing(tmp_path: Path) -> None:
    data = json.loads(hw_profile_path(DEFAULT_ENERGY_TABLE).read_text())
    del data["float_mult"]["16"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"bad.json: float_mult has no entry for \[16\] bits"):
        read_energy_table(bad)
