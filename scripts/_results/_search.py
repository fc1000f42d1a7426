"""## Search strategies at equal compute: hypervolume per strategy, and what it shows
against the targets (search.json, search_long.json, compress.json)."""

from __future__ import annotations

from typing import Any

from ._format import (
    _int,
    _met,
    _pct,
    _pm,
    _seq,
    _span,
    _table,
)
from ._records import Bench
from ._targets import TARGETS

_SAMPLER = {"joint": "TPE", "joint_tpe": "TPE", "joint_nsga2": "NSGA-II", "joint_gp": "GP"}


def _command(record: dict[str, Any], fallback: str) -> str:
    """The command that wrote ``record``, as the harness recorded it (a record from before
    the harness: the command documented for it)."""
    cmd = str(record.get("command") or f"python {fallback}")
    words = (".venv/bin/" + cmd if cmd.startswith("python ") else cmd).split(" ")
    lines = ["   "]
    for w in words:  # continued with a backslash past 88 columns, as a shell reads it
        if len(lines[-1]) + 1 + len(w) > 88 and lines[-1].strip():
            lines[-1] += " \\"
            lines.append("       ")
        lines[-1] += " " + w
    return "\n".join(lines)


def section(b: Bench) -> list[str]:
    s, long = b.load("search.json"), b.load("search_long.json")
    lt = long["strategies"]
    top = s["budget_s"]
    rows, long_rows = _rows(s), _long_rows(lt)
    ref = s["reference"]
    overrides = ", ".join(f"`{o}`" for o in long["overrides"]) or "none"
    long_trials = [t for v in lt.values() for t in v["trials"]]
    return [
        "## Search strategies at equal compute",
        "",
        _command(s, "scripts/bench_search.py --out docs/bench/search.json"),
        "    .venv/bin/python scripts/bench_search.py --quick",
        _command(
            long,
            f"scripts/bench_search.py --strategies joint,random --budget-s {long['budget_s']:.0f}"
            " --jobs 2 --proposals 0 --out docs/bench/search_long.json",
        ),
        "",
        f"Each strategy searches `mnist5k` for the same wall-clock budget per seed,"
        f" {len(s['seeds'])} seeds (`--workdir DIR` keeps the runs, and rerunning with it"
        " resumes). The score is the hypervolume of the **test**-set front: the front is"
        " selected on val accuracy and each member placed at its test accuracy, on (test"
        f" accuracy, log10 size_bytes) above accuracy {ref['accuracy']} and below the fp32"
        f" Caffe LeNet-5's {_int(ref['size_bytes'])} bytes. `two_stage` is what users do today:"
        " an fp32 architecture search for half the budget, then a grid of sparsity x bits"
        " over its most accurate architectures.",
        "",
        f"At {top:.0f} s per run (the default config; {s['machine']}):",
        "",
        *_table(
            ["strategy", "hypervolume (mean ± std)", "trained per seed", "stopped early"], rows
        ),
        "",
        f"At {long['budget_s']:.0f} s per run, runs side by side (`--jobs`; overrides: {overrides};"
        f" {_span(long_trials, str)} trials per run; {long['machine']}):",
        "",
        *_table(
            ["strategy", "hypervolume (mean ± std)", "per seed", "trained per seed"], long_rows
        ),
        "",
        "![Fronts at an equal budget](bench/search_fronts.png)",
        "",
        f"({long['budget_s']:.0f} s fronts:"
        " [search_long_fronts.png](bench/search_long_fronts.png).)",
        "",
        "What this shows, against the targets:",
        "",
        *_search_findings(s, long, b.load("compress.json")["rows"]),
    ]


def _rows(s: dict[str, Any]) -> list[list[str]]:
    """The short runs' table: every strategy that is not the same as another."""
    top = s["budget_s"]

    def label(name: str, v: dict[str, Any]) -> str:
        if name == "joint":
            return "**joint** (default: TPE, no early stopping)"
        if "moasha" in name:
            half = "" if v["budget_s"] == top else f", {v['budget_s']:.0f} s"
            return f"{name} (MO-ASHA{half})"
        return name

    rows = [
        [
            label(k, v),
            _pm(v["hypervolume_mean"], v["hypervolume_std"], 3),
            _seq(v["trials"]),
            _seq(v["pruned"]) if any(v["pruned"]) else "-",
        ]
        for k, v in s["strategies"].items()
        if "same_as" not in v
    ]
    return rows


def _long_rows(lt: dict[str, Any]) -> list[list[str]]:
    return [
        [
            f"**{k}**" if k == "joint" else k,
            _pm(v["hypervolume_mean"], v["hypervolume_std"], 3),
            _seq(v["hypervolumes"], "{:.3f}"),
            _seq(v["trials"]),
        ]
        for k, v in lt.items()
    ]


def _search_findings(
    s: dict[str, Any], long: dict[str, Any], compress_rows: list[dict[str, Any]]
) -> list[str]:
    st = s["strategies"]
    half_met = st["joint_moasha_half"]["hypervolume_mean"] >= st["joint"]["hypervolume_mean"]
    return [
        _vs_two_stage(st),
        _vs_random(s, long),
        _early_stopping(st),
        _lenet5_ratio(s, long, compress_rows),
        *_constraint_aware(s["feasibility"]),
        "",
        "**Defaults, from these runs:** `sampler=tpe` (while every sampler is still in its"
        f" random start-up the model-based ones are {_close(st)} of it, and once guided it"
        f" beats random sampling on {_guided_wins(long)}), `early_stop=none`"
        + (" (MO-ASHA did not buy the same front for less compute here)" if not half_met else "")
        + ", and the constraint model on (`sampler.feasibility_candidates`). The reasons are"
        " recorded in `conf/config.yaml` and `conf/sampler/tpe.yaml`.",
    ]


def _vs_two_stage(st: dict[str, Any]) -> str:
    joint, two = st["joint"], st["two_stage"]
    hv, hv_two = joint["hypervolume_mean"], two["hypervolume_mean"]
    gap = hv - hv_two
    beyond = gap > max(joint["hypervolume_std"], two["hypervolume_std"])

    def fronts(v: dict[str, Any]) -> str:
        sizes = [f["size_bytes"] / 1000 for r in v["runs"] for f in r["front"]]
        tests = [f["test_accuracy"] for r in v["runs"] for f in r["front"]]
        return f"{_span(sizes, '{:.0f}'.format)} KB (test {_span(tests, '{:.2f}'.format)})"

    return (
        f"- **joint vs two_stage: {hv / hv_two:.2f}x** ({hv:.3f}"
        f" against {hv_two:.3f}, a gap of {gap:.3f},"
        f" {'more than one std of either' if beyond else 'within one std'}). Compressing the"
        f" most accurate fp32 architectures leaves the front at larger sizes: two_stage's fronts"
        f" span {fronts(two)}, joint's {fronts(joint)}."
    )


def _vs_random(s: dict[str, Any], long: dict[str, Any]) -> str:
    st, lt = s["strategies"], long["strategies"]
    top, top_long = s["budget_s"], long["budget_s"]
    joint = st["joint"]
    t_rand = TARGETS["joint_vs_random"]
    r_short = joint["hypervolume_mean"] / st["random"]["hypervolume_mean"]
    r_long = lt["joint"]["hypervolume_mean"] / lt["random"]["hypervolume_mean"]
    ties = ", ".join(
        f"{_SAMPLER.get(k, k)}'s on {_same(st[k], joint)}"
        for k in ("joint_nsga2", "joint_gp")
        if k in st
    )
    diffs = [
        a - b
        for a, b in zip(lt["joint"]["hypervolumes"], lt["random"]["hypervolumes"], strict=True)
    ]
    hvs = lt["joint"]["hypervolumes"]
    spread = max(hvs) - min(hvs)
    return (
        f"- **joint vs random: {r_short:.2f}x at {top:.0f} s, {r_long:.2f}x at {top_long:.0f} s**"
        f" (target {t_rand}x, {_met(max(r_short, r_long) >= t_rand)}). At {top:.0f} s a run"
        f" trains {_span(joint['trials'], str)} candidates, all inside the samplers' random"
        " start-up trials (TPE's and GP's, and NSGA-II's first generation), so on the same seed"
        f" they train the same first candidates: random's hypervolume equals joint's on"
        f" {_same(st['random'], joint)} of {len(joint['hypervolumes'])} seeds, {ties}. At"
        f" {top_long:.0f} s TPE's guided trials win on {_guided_wins(long)}, by"
        f" {_span(diffs, '{:.3f}'.format)} in hypervolume, "
        + ("more" if min(diffs) > spread else "less")
        + f" than the spread between seeds ({_span(hvs, '{:.3f}'.format)} for joint)."
        + (
            ""
            if min(diffs) > spread
            else " In this space most of the front's area comes from the compression choices"
            " (low bit-widths, high sparsity), which random sampling covers well; the"
            " model-based samplers would need many more trials to pull ahead by more."
        )
    )


def _guided_wins(long: dict[str, Any]) -> str:
    """On how many seeds joint beat random in the long runs, where TPE is guided."""
    lt = long["strategies"]
    pairs = list(zip(lt["joint"]["hypervolumes"], lt["random"]["hypervolumes"], strict=True))
    wins = sum(a - b > 0 for a, b in pairs)
    return "every seed" if wins == len(pairs) else f"{wins} of {len(pairs)} seeds"


def _close(st: dict[str, Any]) -> str:
    """Whether the model-based samplers are within one std of TPE's hypervolume."""
    joint = st["joint"]
    ok = all(
        abs(st[k]["hypervolume_mean"] - joint["hypervolume_mean"])
        <= max(st[k]["hypervolume_std"], joint["hypervolume_std"])
        for k in ("joint_nsga2", "joint_gp")
        if k in st
    )
    return "within one std" if ok else "not all within one std"


def _early_stopping(st: dict[str, Any]) -> str:
    joint, moasha, half = st["joint"], st["joint_moasha"], st["joint_moasha_half"]
    hv = {k: v["hypervolume_mean"] for k, v in st.items()}
    stopped = sum(moasha["pruned"])
    tried = stopped + sum(moasha["trials"])
    joint_tried = sum(joint["trials"]) + sum(joint["pruned"])
    within = abs(hv["joint_moasha"] - hv["joint"]) <= max(
        moasha["hypervolume_std"], joint["hypervolume_std"]
    )
    half_verdict = (
        "met"
        if hv["joint_moasha_half"] >= hv["joint"]
        else f"missed by {_pct(1 - hv['joint_moasha_half'] / hv['joint'])}"
    )
    return (
        f"- **Early stopping** (MO-ASHA, `early_stop=moasha`): at the full budget it stopped"
        f" {stopped} of {tried} candidates early and tried {tried / joint_tried:.1f}x as many"
        f" candidates as joint, for a hypervolume of"
        f" {_pm(hv['joint_moasha'], moasha['hypervolume_std'], 3)} against"
        f" {_pm(hv['joint'], joint['hypervolume_std'], 3)}"
        f"{' (within one std)' if within else ''}. With half the budget it reached"
        f" {_pm(hv['joint_moasha_half'], half['hypervolume_std'], 3)}: the target (the same"
        f" hypervolume at half the compute) is {half_verdict}."
    )


def _lenet5_ratio(
    s: dict[str, Any], long: dict[str, Any], compress_rows: list[dict[str, Any]]
) -> str:
    t_lenet = TARGETS["lenet5_ratio"]
    r150, r600 = s["best_ratio_at_lenet5_accuracy"], long["best_ratio_at_lenet5_accuracy"]
    matches = [m for x in (s, long) for m in x["best_ratio_at_lenet5_accuracy_per_seed"] if m]
    lenet_val = list(s["lenet5_val_accuracy"].values()) + list(long["lenet5_val_accuracy"].values())
    lenet5 = max((r for r in compress_rows if r["model"] == "LeNet-5"), key=lambda r: r["ratio"])
    return (
        f"- **best_ratio_at_lenet5_accuracy: {r150:.0f}x at {s['budget_s']:.0f} s, {r600:.0f}x"
        f" at {long['budget_s']:.0f} s** (target {t_lenet:.0f}x,"
        f" {_met(max(r150, r600) >= t_lenet)}; per seed {_ratios(s)} and {_ratios(long)})."
        " The fp32 LeNet-5 trained with the search's own loop reaches val"
        f" {_span(lenet_val, '{:.3f}'.format)}; the smallest joint front models that match it"
        f" are {_span([m['size_bytes'] / 1000 for m in matches], '{:.0f}'.format)} KB (test"
        f" {_span([m['test_accuracy'] for m in matches], '{:.3f}'.format)}). With"
        f" {lenet5['epochs']} epochs of dense training and fine-tuning, `bench_compress.py`"
        f" takes LeNet-5 itself to {lenet5['ratio']:.0f}x ([compression"
        " benchmark](#compression-benchmark)): the search's short per-trial budget, not the"
        " compression, is what limits this."
    )


def _constraint_aware(f: dict[str, Any]) -> list[str]:
    rand_inf, blind, opt, model = (
        f[k] for k in ("random", "tpe_blind", "tpe_optuna_constraints", "tpe_constraint_model")
    )
    optuna_txt = (
        "with Optuna's own constraint handling or without: the same"
        if opt["infeasible_share"] == blind["infeasible_share"]
        else f"{_pct(opt['infeasible_share'])} with Optuna's own constraint handling"
    )
    return [
        f"- **Constraint-aware sampling** (`+hw={f['hw']}`, {f['proposals']} proposals each,"
        f" proposals only): infeasible proposals are {_pct(rand_inf['infeasible_share'])} for"
        f" random sampling, {_pct(blind['infeasible_share'])} for TPE ({optuna_txt}), and"
        f" **{_pct(model['infeasible_share'])}** with the constraint model"
        " (`sampler.feasibility_candidates`)"
        + (
            ", none of them after the start-up trials."
            if model["infeasible_share_after_startup"] == 0
            else "."
        ),
        "",
        *_table(
            ["sampler", "infeasible", "after the start-up trials"],
            [
                [k, _pct(v["infeasible_share"]), _pct(v["infeasible_share_after_startup"])]
                for k, v in f.items()
                if isinstance(v, dict)
            ],
        ),
        "",
        f"> How the proposals are scored: {f['method']}",
    ]


def _ratios(s: dict[str, Any]) -> str:
    return ", ".join(
        f"{m['ratio']:.0f}x" if m else "none" for m in s["best_ratio_at_lenet5_accuracy_per_seed"]
    )


def _same(a: dict[str, Any], b: dict[str, Any]) -> int:
    """On how many seeds two strategies reached exactly the same hypervolume."""
    return sum(x == y for x, y in zip(a["hypervolumes"], b["hypervolumes"], strict=True))
