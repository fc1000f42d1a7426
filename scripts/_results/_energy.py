"""## Energy per inference: the modelled energy of a front against fp32 LeNet-5 (energy.json)."""

from __future__ import annotations

from typing import Any

from ._format import (
    _int,
    _pct,
    _span,
    _table,
)
from ._records import Bench


def section(b: Bench) -> list[str]:
    """Issue 26: the modelled energy of a default front's members against fp32 LeNet-5's."""
    d = b.load("energy.json")
    m, base, front = d["model"], d["lenet5"], d["front"]
    parts = ("compute_uj", "weights_uj", "activations_uj")

    def row(name: str, r: dict[str, Any], acc: str, ratio: str) -> list[str]:
        return [name, acc, str(r["bits"]), f"{r['energy_uj']:.3f}",
                *(f"{r[k]:.3f}" for k in parts), r["weight_memory"], ratio]  # fmt: skip

    rows = [row("fp32 LeNet-5", base, "", "1x")]
    rows += [row(f"trial {r['trial']}", r, f"{r['val_accuracy']:.3f}",
                 f"{r['lenet5_over_member']:.0f}x") for r in front]  # fmt: skip
    header = ["", "val_accuracy", "bits", "energy_uj", "compute", "weights", "activations",
              "weights from", "LeNet-5 / it"]  # fmt: skip
    return [
        "## Energy per inference",
        "",
        "    .venv/bin/python scripts/bench_energy.py DIR --out docs/bench/energy.json",
        "",
        f"**Modelled, not measured**: `nas.hw`'s energy model with the `{m['table']}` table"
        f" ({m['source']}) on the `+hw={m['profile']}` profile ({m['activation_bytes']}-byte"
        f" activations, sparse_speedup {str(m['sparse_speedup']).lower()}), input"
        f" {'x'.join(map(str, m['input']))}. One MAC costs {m['mac_pj']['32']:.2f} pJ at"
        f" fp32, {m['mac_pj']['16']:.2f} at fp16, {m['mac_pj']['8']:.2f} at int8 and"
        f" {m['mac_pj']['2']:.3f} at 2 bits (below 8 bits scaled from the 8-bit entries:"
        " multiply ~ bits², add ~ bits). The README says what is counted. The front of"
        f" `{d['command']}` (study `{d['study_name']}`{'; ' + d['note'] if 'note' in d else ''}),"
        f" each member against the fp32 LeNet-5 ({_int(base['params'])} parameters), in µJ"
        " per inference:",
        "",
        *_table(header, rows),
        "",
        *_energy_findings(base, front),
    ]


def _energy_findings(base: dict[str, Any], front: list[dict[str, Any]]) -> list[str]:
    """What the table says: how far below LeNet-5, and what each side spends on."""
    ratios = _span([r["lenet5_over_member"] for r in front], "{:.0f}x".format)
    shares = {
        k: _span([r[f"{k}_uj"] / r["energy_uj"] for r in front], _pct)
        for k in ("activations", "weights", "compute")
    }
    memories = " or ".join(sorted({r["weight_memory"] for r in front}))
    return [
        f"In this model the members spend {ratios} less than the fp32 LeNet-5, whose"
        f" {_int(base['weight_bytes'])} bytes of weights are read from"
        f" {base['weight_memory']}: {_pct(base['weights_uj'] / base['energy_uj'])} of its"
        f" energy. The members' weights are read from {memories}; of their energy,"
        f" moving activations takes {shares['activations']}, weights {shares['weights']}"
        f" and arithmetic {shares['compute']}.",
    ]
