"""## Distillation: two students with and without the teacher (distill.json,
distill_mid.json), and the distilled rows of compress.json."""

from __future__ import annotations

import json
from typing import Any

from ._format import (
    _pct,
    _pm,
    _seq,
    _span,
    _table,
    _template,
)
from ._records import Bench
from ._targets import TARGETS

# Each student's label on the page and its record, in the order they are shown.
_STUDENTS = [("smallest", "distill.json"), ("mid", "distill_mid.json")]


def section(b: Bench) -> list[str]:
    data = {name: b.load(name) for _, name in _STUDENTS}
    small, mid = data["distill.json"], data["distill_mid.json"]
    teacher = small["teacher"]
    small_val_gain = 100 * (small["val"]["distilled"]["mean"] - small["val"]["plain"]["mean"])
    header = ["student", "seeds", "T, alpha (chosen on val)", "plain test", "distilled test",
              "gain (paired)", "wins", "one-sided p"]  # fmt: skip
    return [
        "## Distillation",
        "",
        "    .venv/bin/python scripts/bench_distill.py --out docs/bench/distill.json",
        f"    .venv/bin/python scripts/bench_distill.py --seeds {_seeds_arg(mid['seeds'])} \\",
        f"        --student '{json.dumps(mid['student']['arch'])}' \\",
        "        --out docs/bench/distill_mid.json",
        "",
        _setup(small),
        "",
        *_table(header, [_row(label, data[name]) for label, name in _STUDENTS]),
        "",
        *(x for label, name in _STUDENTS for x in (_verdict(b, label, name, data[name]), "")),
        *_template(
            "distillation_probe",
            small_val_gain=f"{small_val_gain:+.2f}",
            n_seeds=len(small["seeds"]),
            teacher_ratio=f"{teacher['epochs'] / small['epochs']:.0f}",
        ),
        "",
        _in_compression(b.load("compress.json")),
    ]


def _setup(small: dict[str, Any]) -> str:
    """How the students, the teacher and (T, alpha) are chosen."""
    grid = [g for g in small["selection"]["grid"] if g["temperature"] > 0]
    temps = sorted({g["temperature"] for g in grid})
    alphas = sorted({g["alpha"] for g in grid})
    teacher = small["teacher"]
    return (
        f"A student trained {small['epochs']} epochs on `{small['dataset']}` with and without"
        " the search's teacher, with the same initialization and data order per seed. The"
        f" teacher is the largest `{small['space']}` model ({teacher['params'] / 1000:.0f}k"
        " params) trained as a `compress=all` search trains it:"
        f" {teacher['epochs']} epochs, {teacher['epochs'] / small['epochs']:.0f}x the"
        f" students' (`compress.teacher_epochs`), test {teacher['test_accuracy']:.3f}. T and"
        f" alpha are chosen on **val**, as a search would: a {len(temps)} x {len(alphas)} grid"
        f" over the search's ranges (T {_seq(temps, '{:g}')}; alpha {_seq(alphas, '{:g}')}),"
        " each pair scored by its mean val accuracy over"
        f" {len(small['selection']['seeds'])} selection seeds that are not reported. Test"
        " accuracy is only read on the reported seeds. Two students (`--student JSON` picks"
        " one; the default is the space's smallest):"
    )


def _row(label: str, d: dict[str, Any]) -> list[str]:
    """One student's table row; the distilled figures bold where the gain is significant."""
    p = d["paired_t_p_one_sided"]
    sig = p < TARGETS["significance"]

    def bold(text: str) -> str:
        return f"**{text}**" if sig else text

    ties = sum(abs(g) < 1e-9 for g in d["gain_per_seed"])
    return [
        f"{label} ({_arch(d['student'])})",
        str(len(d["seeds"])),
        f"{d['temperature']:g}, {d['alpha']:g}",
        _pm(d["plain"]["mean"], d["plain"]["std"], 4),
        bold(_pm(d["distilled"]["mean"], d["distilled"]["std"], 4)),
        bold(f"{100 * d['gain_mean']:+.2f} ± {100 * d['gain_std']:.2f} pts"),
        f"{d['wins']}" + (f" ({ties} tie{'s' if ties > 1 else ''})" if ties else ""),
        bold(f"{p:.3f}"),
    ]


def _verdict(b: Bench, label: str, name: str, d: dict[str, Any]) -> str:
    """Whether distillation helped this student, on test and on the val grid."""
    alpha_sig = TARGETS["significance"]
    sig = d["paired_t_p_one_sided"] < alpha_sig
    plain_val = next(g for g in d["selection"]["grid"] if g["temperature"] == 0)
    pairs = [g for g in d["selection"]["grid"] if g["temperature"] > 0]
    better = sum(g["val_accuracy"] > plain_val["val_accuracy"] for g in pairs)
    better_txt = f"All {better}" if better == len(pairs) else f"{better} of the {len(pairs)}"
    return (
        f"The {label} student ({b.link(name)}; {d['seconds'] / 60:.0f} minutes): distilled"
        f" beats plain on {d['wins']} of {len(d['seeds'])} seeds,"
        f" {100 * d['gain_mean']:+.2f} points on test, one-sided paired p ="
        f" {d['paired_t_p_one_sided']:.3f}, so the gain"
        f" {'**is established**' if sig else 'is not established'} at the"
        f" {_pct(alpha_sig)} level (val: {d['val']['distilled']['mean']:.4f} against"
        f" {d['val']['plain']['mean']:.4f}). {better_txt} of its (T, alpha) pairs beat plain"
        " training on val"
        f" ({_span([g['val_accuracy'] for g in pairs], '{:.3f}'.format)} against"
        f" {plain_val['val_accuracy']:.3f})."
    )


def _in_compression(compress: dict[str, Any]) -> str:
    """The distilled rows of the compression benchmark against their undistilled ones."""
    rows = compress["rows"]
    pairs = [
        (r, next(q for q in rows if q["model"] == r["model"] and q["method"] == "pruned+quantized"))
        for r in rows
        if r["method"] == "pruned+quantized+distilled"
    ]
    gains = [100 * (r["test_accuracy"] - q["test_accuracy"]) for r, q in pairs]
    within = all(
        abs(r["test_accuracy"] - q["test_accuracy"])
        <= max(r["test_accuracy_std"], q["test_accuracy_std"])
        for r, q in pairs
    )
    return (
        f"In the [compression benchmark](#compression-benchmark), where the student fine-tunes"
        f" for {compress['meta']['finetune_epochs']} epochs from the fp32 model, the distilled"
        f" rows differ from the undistilled ones by {_span(gains, '{:+.1f}'.format)} points of"
        f" test accuracy{' (within one std)' if within else ''}. Distillation is searchable"
        " (`compress=all`) but off in the default search."
    )


def _seeds_arg(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 3:
        return f"$(seq {seeds[0]} {seeds[-1]})"
    return " ".join(map(str, seeds))


def _arch(student: dict[str, Any]) -> str:
    arch = student["arch"]
    return (
        f"w{arch['width_mult']:g}, depths {'-'.join(map(str, arch['depths']))},"
        f" e{max(arch['expansions'])}; {student['params'] / 1000:.1f}k params"
    )
