"""Distillation."""

from __future__ import annotations

import json
from typing import Any

from ._format import (
    _pct,
    _pm,
    _seq,
    _span,
    _table,
)
from ._records import Bench
from ._targets import TARGETS


def section(b: Bench) -> list[str]:
    students = [("smallest", "distill.json"), ("mid", "distill_mid.json")]
    data = {name: b.load(name) for _, name in students}
    small, mid = data["distill.json"], data["distill_mid.json"]
    grid = [g for g in small["selection"]["grid"] if g["temperature"] > 0]
    temps = sorted({g["temperature"] for g in grid})
    alphas = sorted({g["alpha"] for g in grid})
    teacher = small["teacher"]
    alpha_sig = TARGETS["significance"]
    rows = []
    for label, name in students:
        d = data[name]
        p = d["paired_t_p_one_sided"]
        sig = p < alpha_sig

        def bold(text: str, sig: bool = sig) -> str:
            return f"**{text}**" if sig else text

        ties = sum(abs(g) < 1e-9 for g in d["gain_per_seed"])
        rows.append(
            [
                f"{label} ({_arch(d['student'])})",
                str(len(d["seeds"])),
                f"{d['temperature']:g}, {d['alpha']:g}",
                _pm(d["plain"]["mean"], d["plain"]["std"], 4),
                bold(_pm(d["distilled"]["mean"], d["distilled"]["std"], 4)),
                bold(f"{100 * d['gain_mean']:+.2f} ± {100 * d['gain_std']:.2f} pts"),
                f"{d['wins']}" + (f" ({ties} tie{'s' if ties > 1 else ''})" if ties else ""),
                bold(f"{p:.3f}"),
            ]
        )
    paragraphs = []
    for label, name in students:
        d = data[name]
        sig = d["paired_t_p_one_sided"] < alpha_sig
        plain_val = next(g for g in d["selection"]["grid"] if g["temperature"] == 0)
        pairs = [g for g in d["selection"]["grid"] if g["temperature"] > 0]
        better = sum(g["val_accuracy"] > plain_val["val_accuracy"] for g in pairs)
        better_txt = f"All {better}" if better == len(pairs) else f"{better} of the {len(pairs)}"
        paragraphs += [
            f"The {label} student ({b.link(name)}; {d['seconds'] / 60:.0f} minutes): distilled"
            f" beats plain on {d['wins']} of {len(d['seeds'])} seeds,"
            f" {100 * d['gain_mean']:+.2f} points on test, one-sided paired p ="
            f" {d['paired_t_p_one_sided']:.3f}, so the gain"
            f" {'**is established**' if sig else 'is not established'} at the"
            f" {_pct(alpha_sig)} level (val: {d['val']['distilled']['mean']:.4f} against"
            f" {d['val']['plain']['mean']:.4f}). {better_txt} of its (T, alpha) pairs beat plain"
            " training on val"
            f" ({_span([g['val_accuracy'] for g in pairs], '{:.3f}'.format)} against"
            f" {plain_val['val_accuracy']:.3f}).",
            "",
        ]
    small_val_gain = 100 * (small["val"]["distilled"]["mean"] - small["val"]["plain"]["mean"])
    rows_c = b.load("compress.json")["rows"]
    dist_gain = {
        r["model"]: (
            r,
            next(
                q for q in rows_c if q["model"] == r["model"] and q["method"] == "pruned+quantized"
            ),
        )
        for r in rows_c
        if r["method"] == "pruned+quantized+distilled"
    }
    gains = [100 * (r["test_accuracy"] - q["test_accuracy"]) for r, q in dist_gain.values()]
    within = all(
        abs(r["test_accuracy"] - q["test_accuracy"])
        <= max(r["test_accuracy_std"], q["test_accuracy_std"])
        for r, q in dist_gain.values()
    )
    finetune = b.load("compress.json")["meta"]["finetune_epochs"]
    return [
        "## Distillation",
        "",
        "    .venv/bin/python scripts/bench_distill.py --out docs/bench/distill.json",
        f"    .venv/bin/python scripts/bench_distill.py --seeds {_seeds_arg(mid['seeds'])} \\",
        f"        --student '{json.dumps(mid['student']['arch'])}' \\",
        "        --out docs/bench/distill_mid.json",
        "",
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
        " one; the default is the space's smallest):",
        "",
        *_table(
            [
                "student",
                "seeds",
                "T, alpha (chosen on val)",
                "plain test",
                "distilled test",
                "gain (paired)",
                "wins",
                "one-sided p",
            ],
            rows,
        ),
        "",
        *paragraphs,
        "How the mid student was picked: after the smallest, a short val-only probe on a few"
        " unreported seeds compared students of several sizes; the mid one was then run on fresh"
        " seeds, with the seeds and the test (one-sided paired t) fixed in advance. Such a"
        " probe is noisy: it overstated the smallest student's gain, which came to"
        f" {small_val_gain:+.2f} val points over its {len(small['seeds'])} reported seeds, and"
        " the largest probed student, already near the teacher without it, had little to gain."
        f" The teacher's budget matters too: the {teacher['epochs'] / small['epochs']:.0f}x"
        " default was chosen because a teacher trained only as long as the students helped"
        " less (an earlier run, not recorded in a JSON).",
        "",
        f"In the [compression benchmark](#compression-benchmark), where the student fine-tunes"
        f" for {finetune} epochs from the fp32 model, the distilled rows differ from the"
        f" undistilled ones by {_span(gains, '{:+.1f}'.format)} points of test accuracy"
        f"{' (within one std)' if within else ''}. Distillation is searchable (`compress=all`)"
        " but off in the default search.",
    ]


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
