"""## Several devices, one search: a multi-device search against dedicated ones (devices.json)."""

from __future__ import annotations

from typing import Any

from ._format import (
    _met,
    _not_recorded,
    _num,
    _pct,
    _seq,
    _table,
)
from ._records import Bench

DEVICES_RECORD = "devices.json"
_DEVICES_CMD = ".venv/bin/python scripts/bench_devices.py --jobs 2"


def section(b: Bench) -> list[str]:
    """One multi-device search against one dedicated search per device (issue 15)."""
    d = b.load_optional(DEVICES_RECORD)
    head = [
        "## Several devices, one search",
        "",
        '`"+hw=[mobile,raspi4,mcu]"` searches once and keeps a front per device (the'
        " README's *Several devices in one search*). `scripts/bench_devices.py` runs it"
        " against one dedicated search per device, all with the same fixed trial count and"
        " no time limit, so wall times compare. Each device's hypervolume is that of its"
        " val-selected front at test accuracy (reference 0.90 and the fp32 LeNet-5's"
        " 1,724,320 bytes, as in the search benchmark); ratios are paired per seed, then"
        " averaged. Target: every device's ratio at least 0.95, at most 1.2x the wall time"
        " of one dedicated search.",
        "",
    ]
    if d is None:
        return [*head, *_not_recorded(DEVICES_RECORD, _DEVICES_CMD)]
    devices = d["devices"]
    rows = []
    for r in d["per_seed"]:
        cells = [str(r["seed"])]
        for dev in devices:
            ratio = r[f"hv_ratio_{dev}"]
            cells.append(
                f"{r[f'hv_multi_{dev}']:.4f} / {r[f'hv_dedicated_{dev}']:.4f}"
                + ("" if ratio is None else f" ({ratio:.2f}x)")
            )
        mean_wall = sum(r[f"wall_s_{dev}"] for dev in devices) / len(devices)
        cells.append(f"{r['wall_s_multi']:.0f} / {mean_wall:.0f} ({r['wall_ratio']:.2f}x)")
        rows.append(cells)
    means = ["mean", *(_num(d[f"hv_ratio_{dev}"], "{:.2f}x") for dev in devices)]
    means.append(f"{d['wall_ratio']:.2f}x")
    t = d["target"]
    ratios = ", ".join(f"{dev} " + _num(d[f"hv_ratio_{dev}"], "{:.2f}x") for dev in devices)
    return [
        *head,
        *_table(
            [
                "seed",
                *(f"{dev}: hv multi / dedicated" for dev in devices),
                "wall s: multi / mean dedicated",
            ],
            [*rows, means],
        ),  # fmt: skip
        "",
        f"- Hypervolume ratio at least {t['hv_ratio_min']} on every device:"
        f" **{_met(t['hv_met'])}**"
        f" ({ratios}).",
        f"- Wall time at most {t['wall_ratio_max']}x one dedicated search:"
        f" **{_met(t['wall_met'])}** ({d['wall_ratio']:.2f}x, per seed"
        f" {_seq(d['wall_ratio_per_seed'], '{:.2f}')}); against all"
        f" {len(devices)} dedicated searches together it takes"
        f" {d['wall_ratio_to_all_dedicated']:.2f}x their summed time.",
        f"- {d['n_trials']} trials per search, {d['machine']};"
        f" `search.device_constraint={d.get('device_constraint', 'any')}`.",
        *_device_compared(d.get("compared"), devices),
        "",
        *_device_constraints(d.get("constraints"), devices),
        "Reproduce:",
        "",
        f"    {_DEVICES_CMD} --n-trials {d['n_trials']} --seeds {len(d['seeds'])}"
        f" --device-constraint {d.get('device_constraint', 'any')}",
    ]


def _device_compared(c: dict[str, Any] | None, devices: list[str]) -> list[str]:
    """The same benchmark with the other ``search.device_constraint``, for comparison."""
    if not c:
        return []
    ratios = ", ".join(f"{dev} " + _num(c.get(f"hv_ratio_{dev}"), "{:.2f}x") for dev in devices)
    return [
        f"- With `search.device_constraint={c['device_constraint']}` (the same dedicated"
        f" searches; its multi-device runs at commit {c.get('commit', '?')}): hypervolume"
        f" {ratios}; wall time {c['wall_ratio']:.2f}x.",
    ]


def _device_constraints(c: dict[str, Any] | None, devices: list[str]) -> list[str]:
    """How the devices' constraints are combined for the sampler, measured (proposals only)."""
    if not c:
        return []
    names = {
        "any_device": "feasible on any device (`any`)",
        "every_device": "every device's, separately",
        "round_robin": "one device's, in turn per trial (`round_robin`)",
        "blind": "none (blind sampler)",
    }
    rows = [
        [names.get(setting, setting), _pct(r["feasible_nowhere_share"]),
         *(f"{r['feasible_on'][dev]:.0f} / {r['hypervolume'][dev]:.4f}" for dev in devices)]
        for setting, r in c.items()
        if isinstance(r, dict) and "feasible_on" in r
    ]  # fmt: skip
    return [
        "### How the devices' constraints are combined",
        "",
        f"Proposals only, no training: {c['proposals']} proposals per setting and seed"
        f" (seeds {_seq(c['seeds'])}), with the search's sampler and feasibility check; a"
        " feasible proposal gets the synthetic accuracy of the search benchmark's"
        " feasibility study. Per device: proposals feasible there / hypervolume of their"
        " synthetic front (means over seeds).",
        "",
        *_table(
            [
                "constraint the sampler sees",
                "feasible on no device",
                *(f"{dev}: feasible / hv" for dev in devices),
            ],
            rows,
        ),  # fmt: skip
        "",
    ]
