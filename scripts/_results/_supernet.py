"""## Supernet: how honest the inherited estimates are (supernet.json), then the
fidelity and search subsections of _supernet_fidelity and _supernet_search."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ._format import (
    _int,
    _met,
    _not_recorded,
    _rel,
    _seq,
    _table,
    _tau,
)
from ._records import Bench
from ._supernet_fidelity import SUPERNET_CMD, fidelity, recipes
from ._supernet_search import SEARCH_SUPERNET, search_against_scratch, search_supernet_cmd
from ._targets import TARGETS

SUPERNET = "supernet.json"
SHIFT = "supernet_shift.json"
SHIFT_HEADER = ["recipe", "`strategy.shift`", "epochs", "largest by width", "inherited",
                "finalised", "finalised gain, points"]  # fmt: skip
SHIFT_CMD = ".venv/bin/python scripts/bench_supernet_shift.py --jobs 2 --workdir /tmp/shift"


def section(b: Bench) -> list[str]:
    """strategy=supernet: ranking fidelity and costs, then a search against scratch."""
    d, s = b.load_optional(SUPERNET), b.load_optional(SEARCH_SUPERNET)
    return [
        "## Supernet",
        "",
        "`strategy=supernet` trains one weight-sharing network and scores candidates with"
        " its inherited weights (the README's `strategy=supernet` section). Two records:"
        f" `{SUPERNET}` (how well inherited weights rank candidates, and what scoring"
        f" costs) and `{SEARCH_SUPERNET}` (a supernet search against a scratch search at"
        " equal compute).",
        "",
        *(_supernet_honest(b, d) if d is not None and d.get("fidelity_set") else []),
        *(fidelity(d) if d is not None else _not_recorded(SUPERNET, SUPERNET_CMD)),
        "",
        *_shift(b, b.load_optional(SHIFT)),
        *(
            search_against_scratch(b, s)
            if s is not None
            else _not_recorded(SEARCH_SUPERNET, search_supernet_cmd(None))
        ),
    ]


_FIDELITY_CMD = ".venv/bin/python scripts/bench_fidelity.py --out docs/bench/supernet.json"


def _supernet_honest(b: Bench, d: dict[str, Any]) -> list[str]:
    """Issue 23: tau on a uniform set against finalised test accuracy, and inherited
    against standalone accuracy by width (mnist5k) and on the colour folder."""
    u = d["fidelity_uniform"]
    m = u["measured"]
    quick = " A `--quick` run: a check that it runs, not a measurement." if m["quick"] else ""
    out = [
        "### How honest the estimates are",
        "",
        "    " + _FIDELITY_CMD + (" --quick" if m["quick"] else ""),
        "",
        f"Measured at commit {m['commit']}, {m['date']}.{quick} On `mnist5k`, seed 0, no"
        f" `+hw` budget: {d['fidelity_set_size']} candidates drawn uniformly over the whole"
        " space and compression (every width, depth, kernel, expansion, bit-width and"
        " sparsity), none left out. Each one's raw estimate (inherited val accuracy)"
        " against its *finalised* test accuracy (trained from its inherited weights"
        + _finalise_recipe(u.get("finalise"))
        + ", exported, scored from the artifact): Kendall tau"
        f" **{_tau(d['kendall_tau'], d['kendall_tau_ci'])}**"
        f" (target >= {TARGETS['supernet_kendall_tau']:g}:"
        f" {_met(d['kendall_tau'] >= TARGETS['supernet_kendall_tau'])})."
        + _top_band(u.get("candidates", []))
        + _ceiling(u)
        + _predicted_tau(d),
        "",
        *_levers(d.get("inherited_by_width_levers")),
        *recipes(d.get("finalise_recipes")),
    ]
    out += _by_width(b, d.get("inherited_by_width") or [])
    if "largest_child_gap_folder" in d:
        f = d["folder"]
        out += [
            "**The colour task.** A folder of `scripts/make_imagefolder.py --n 6000 --size 32"
            " --seed 0`, searched with "
            + ", ".join(f"`{o}`" for o in f["overrides"][2:])
            + f": the largest network inherits {f['inherited_val']:.4f} val accuracy and"
            f" trains alone to {d['standalone_val_folder']:.4f}"
            f" ({_seq(f['standalone_vals'], '{:.4f}')}), a gap of"
            f" **{d['largest_child_gap_folder']:.1f} points**.",
            "",
        ]
    return out


def _shift(b: Bench, r: dict[str, Any] | None) -> list[str]:
    """Issue 24: the supernet's training recipe, shifted images and epochs."""
    if r is None:
        return _not_recorded(SHIFT, SHIFT_CMD) + [""]
    rows = [
        [f"`{name}`", f"{v['shift']:g}", str(v["epochs"]),
         f"{r['summary'][name]['largest_test_mean']:.4f}",
         f"{r['summary'][name]['inherited_test_mean']:.4f}",
         f"{r['summary'][name]['finalised_test_mean']:.4f}",
         f"{r['summary'][name].get('finalised_gain_points', 0):+.2f}"
         + (f" ({r['summary'][name]['finalised_higher']} higher)"
            if "finalised_higher" in r["summary"][name] else "")]
        for name, v in r["variants"].items()
    ]  # fmt: skip
    first = next(iter(r["variants"].values()))
    out = [
        "### The supernet's training: shifted images, and epochs",
        "",
        "    " + SHIFT_CMD,
        "",
        f"On `mnist5k`, seed 0, one training thread: a supernet per recipe, then the"
        f" largest child of each width and {len(first['uniform_inherited'])} uniform"
        f" candidates inherited, and the first {len(first['finalised'])} of them finalised"
        " (the same draw for each, so the finalists pair up). Mean test accuracy:",
        "",
        *_table(SHIFT_HEADER, rows),
        "",
    ]
    if (f := r.get("finetune_shift")) is not None:
        out += [
            f"Shifting the finalists' fine-tuning too: {f['gain_points']:+.2f} points"
            f" ({f['higher']} higher) at {f['seconds_ratio']:.2f}x the time, so they"
            " fine-tune on the images as they are.",
            "",
        ]
    if r.get("dirty"):
        out += [
            "The record is marked dirty: measured on a working tree with uncommitted"
            " changes (each variant's `note` says which).",
            "",
        ]
    return out + [b.source(SHIFT), ""]


def _by_width(b: Bench, rows: list[dict[str, Any]]) -> list[str]:
    """Issue 23: the largest child per width, inherited against trained alone."""
    out: list[str] = []
    if rows:
        out += [
            "**Inherited accuracy by width.** The largest child at each `width_mult`"
            " (deepest, widest kernel and expansion), its weights inherited and its"
            " BatchNorm re-estimated, against the same architecture trained alone for the"
            f" supernet's {rows[0]['epochs']} epochs at the same batch size (the scratch"
            " recipe's optimiser; mean of seeds 0 and 1), val accuracy on `mnist5k`:",
            "",
            *_table(
                ["width_mult", "parameters", "inherited val", "standalone val", "gap (points)"],
                [
                    [
                        f"{r['width_mult']:g}",
                        _int(r["params"]),
                        f"{r['inherited_val']:.4f}",
                        f"{r['standalone_val']:.4f}" + f" ({_seq(r['standalone_vals'], '{:.4f}')})",
                        f"{100 * (r['standalone_val'] - r['inherited_val']):+.1f}",
                    ]
                    for r in rows
                ],
            ),  # fmt: skip
            "",
        ]
    if rows:
        gaps = [100 * (r["standalone_val"] - r["inherited_val"]) for r in rows]
        spread = max(100 * (max(r["standalone_vals"]) - min(r["standalone_vals"])) for r in rows)
        out += [
            f"The gap goes from {gaps[0]:+.1f} points at the narrowest width to"
            f" {gaps[-1]:+.1f} at the widest, while two seeds of one standalone training"
            f" differ by up to {spread:.1f} points: the inherited curve is"
            + (" not flat, and the wide children are no further behind than the narrow"
               " ones." if gaps[-1] <= gaps[0] else " further behind where it is wider.")
            + " [Below](#supernet-search-against-scratch-at-equal-compute), how the search"
            " compares with scratch.",
            "",
        ]  # fmt: skip
    plot = b.dir / (Path(SUPERNET).stem + "_by_width.png")
    if rows and plot.exists():
        out += [f"![Inherited against standalone by width]({_rel(b, plot)})", ""]
    return out


def _finalise_recipe(f: dict[str, Any] | None) -> str:
    if not f or f.get("finetune_patience") is None:
        return f" for {f['finetune_epochs']} epochs" if f else ""
    return (
        f" until its val accuracy stopped improving, at most {f['finetune_epochs']} epochs,"
        f" patience {f['finetune_patience']}"
    )


def _predicted_tau(d: dict[str, Any]) -> str:
    if "kendall_tau_predicted" not in d:
        return ""
    return (
        " The search's predictor of finalised accuracy (what it now chooses finalists by),"
        " fitted on the other candidates of the set and predicting each in turn (leave one"
        f" out): tau {_tau(d['kendall_tau_predicted'], d['kendall_tau_predicted_ci'])}."
    )


LEVER_NOISE = 0.006  # three of 500 val images: a gain below it is not measurable


def _levers(lev: dict[str, Any] | None) -> list[str]:
    """Issue 24: the inherited-by-width curve under the levers tried on it."""
    if not lev:
        return []
    widths = lev["widths"]
    rows = [
        [f"BatchNorm re-estimated on {int(n):,} images"
         + (" (default)" if n == "500" else ""), *(f"{v:.3f}" for v in vals)]
        for n, vals in lev["bn_calib_images"].items()
    ] + [
        [f"supernet lr {lr} (default {lev['default_lr']:g}), 500 images",
         *(f"{v:.3f}" for v in vals)]
        for lr, vals in lev["lr"].items()
    ]  # fmt: skip
    base = lev["bn_calib_images"]["500"]
    others = [v for n, v in lev["bn_calib_images"].items() if n != "500"] + list(lev["lr"].values())
    moves = [a - b for vals in others for a, b in zip(vals, base, strict=True)]
    gain, loss = max(moves, default=0.0), min(moves, default=0.0)
    m = lev["measured"]
    return [
        "**Levers on the largest children** (measured at commit"
        f" {m['commit']}, {m['date']}). The largest child's inherited val accuracy by"
        " `width_mult`, on the default seed-0 supernet with BatchNorm re-estimated on more"
        " images, and on a supernet trained with a lower learning rate:",
        "",
        *_table(["lever", *(f"{w:g}" for w in widths)], rows),
        "",
        f"Against the default, the levers gain at most {100 * gain:+.1f} points at any"
        f" width and lose up to {100 * loss:+.1f} (one val image is 0.2)"
        + (
            ": none lifts the wide children beyond three val images, so the defaults"
            " stay; what the search needed was elsewhere (the finalists, below)."
            if gain <= LEVER_NOISE
            else "."
        ),
        "",
    ]


def _ceiling(u: dict[str, Any]) -> str:
    """How well the finalised network's own val accuracy ranks its test accuracy: the
    most an estimate on the same 500 val images can be expected to reach."""
    if "kendall_tau_final_val" not in u:
        return ""
    return (
        " The noise of the figures bounds it: each finalised network's own val accuracy"
        " ranks its test accuracy at tau"
        f" {_tau(u['kendall_tau_final_val'], u['kendall_tau_final_val_ci'])}."
    )


def _top_band(rows: list[dict[str, Any]], floor: float = 0.95) -> str:
    """Tau among the candidates a front is made of (finalised test accuracy >= floor):
    a uniform set spans 2-bit, 90%-sparse candidates that any estimate ranks last."""
    top = [r for r in rows if r["final_test"] >= floor]
    if len(top) < 3:
        return ""
    # Concordant pairs less discordant ones (ties count neither).
    concordant = sum(
        math.copysign(1, p) if (p := (a["estimate"] - b["estimate"])
                                * (a["final_test"] - b["final_test"])) else 0
        for i, a in enumerate(top) for b in top[i + 1 :]
    )  # fmt: skip
    pairs = len(top) * (len(top) - 1) / 2
    return (
        f" Part of it is easy ranking: the set spans 2-bit and very sparse candidates"
        f" that any estimate ranks last. Among the {len(top)} whose finalised test"
        f" accuracy is at least {floor:g}, the pairs agree by {concordant / pairs:.2f}"
        " (Kendall's tau-a)."
    )
