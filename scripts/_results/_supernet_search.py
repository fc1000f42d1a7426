"""### Supernet search against scratch at equal compute (search_supernet.json, and
search_supernet_proxy.json when recorded), judged against the targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._format import (
    _met,
    _opt,
    _pm,
    _rel,
    _seq,
    _span,
    _table,
)
from ._records import Bench
from ._targets import TARGETS

SEARCH_SUPERNET = "search_supernet.json"


def search_supernet_cmd(s: dict[str, Any] | None) -> str:
    names = "joint,supernet"
    extra = ""
    if s is not None:
        names = ",".join(s["strategies"])
        extra = f" --budget-s {s['budget_s']:.0f} --seeds {len(s['seeds'])}"
        if s.get("jobs", 1) > 1:
            extra += f" --jobs {s['jobs']}"
        if s.get("hw"):
            extra += f" --hw {s['hw']}"
    return (
        f".venv/bin/python scripts/bench_search.py --strategies {names}{extra} \\\n"
        "    --proposals 0 --out docs/bench/search_supernet.json"
    )


def search_against_scratch(b: Bench, s: dict[str, Any]) -> list[str]:
    st = {k: v for k, v in s["strategies"].items() if "same_as" not in v}
    lenet_val = list(s["lenet5_val_accuracy"].values())
    overrides = ", ".join(f"`{o}`" for o in s.get("overrides", [])) or "none"

    def ratios(v: dict[str, Any]) -> str:
        per_seed = [r["lenet5_match"] for r in v["runs"]]
        each = ", ".join(f"{m['ratio']:.0f}x" if m else "none" for m in per_seed)
        return f"{_opt(v['best_ratio_at_lenet5_accuracy'], '{:.0f}x'.format)} ({each})"

    rows = [
        [
            f"**{k}**" if k.startswith("supernet") else k,
            _pm(v["hypervolume_mean"], v["hypervolume_std"], 3),
            _seq(v["hypervolume_per_seed"], "{:.3f}"),
            _seq(v["candidates_scored"], "{:,}"),
            ratios(v),
            _seq(v["best_val_accuracy_per_seed"], "{:.3f}")
            if v.get("best_val_accuracy_per_seed")
            else "-",
            ", ".join(_opt(_front_gap(r.get("front", [])), "{:.1f}") for r in v["runs"]),
        ]
        for k, v in st.items()
    ]
    plot = b.dir / (Path(SEARCH_SUPERNET).stem + "_fronts.png")
    figure = [f"![Fronts of the seed-0 runs]({_rel(b, plot)})", ""] if plot.exists() else []
    return [
        "### Supernet search against scratch at equal compute",
        "",
        *(f"    {line}" for line in search_supernet_cmd(s).splitlines()),
        "",
        f"Each strategy searches `mnist5k` for {s['budget_s']:.0f} s per seed,"
        f" {len(s['seeds'])} seeds (overrides: {overrides}; {s['machine']}), scored as in"
        " [search strategies at equal compute](#search-strategies-at-equal-compute): the"
        " hypervolume of the val-selected front at test accuracy. `joint` trains every"
        " candidate from scratch; a supernet strategy trains its supernet, scores"
        " candidates by inheritance and fine-tunes its finalists inside the same budget,"
        " and its front is the finalised artifacts only (the inherited-weight estimates"
        " count as candidates scored). Best ratio at LeNet-5 accuracy: the fp32 LeNet-5's"
        " size over the smallest front member at its val accuracy"
        f" ({_span(lenet_val, '{:.3f}'.format)}, trained with the search's loop per seed)"
        " whose test accuracy is within 1 point of LeNet-5's; mean over seeds, a seed"
        " without one counting 0:",
        "",
        *_table(
            [
                "strategy",
                "hypervolume (mean ± std)",
                "per seed",
                "candidates scored per seed",
                "best ratio at LeNet-5 accuracy (per seed)",
                "most accurate front member, val (per seed)",
                "front's val less test, points (per seed)",
            ],
            rows,
        ),
        "",
        *figure,
        *_supernet_targets(st),
        *_supernet_proxy(b.load_optional(SEARCH_SUPERNET_PROXY)),
    ]


def _front_gap(front: list[dict[str, Any]]) -> float | None:
    """Mean val less test accuracy over a front's members, in points: how far the val
    figures the front was selected by overstate what it does on held-out data (None:
    no front recorded)."""
    gaps = [m["val_accuracy"] - m["test_accuracy"] for m in front]
    return 100 * sum(gaps) / len(gaps) if gaps else None


SEARCH_SUPERNET_PROXY = "search_supernet_proxy.json"


def _supernet_proxy(p: dict[str, Any] | None) -> list[str]:
    """The short proxy the defaults were checked on before the full benchmark."""
    if p is None:
        return []
    st = p["strategies"]
    cells = "; ".join(
        f"`{k}` hypervolume {_seq(v['hypervolume_per_seed'], '{:.3f}')}, "
        f"{_seq(v['candidates_scored'], '{:,}')} candidates"
        + (
            f" ({_seq(v['trials'], '{:,}')} finalised)"
            if k.startswith("supernet") and v.get("trials")
            else ""
        )  # fmt: skip
        for k, v in st.items()
    )
    return [
        "",
        f"**The tuning proxy** ([`{SEARCH_SUPERNET_PROXY}`](bench/{SEARCH_SUPERNET_PROXY});"
        f" commit {p['commit']}, {p['date']}): {p['budget_s']:.0f} s, seed"
        f" {_seq(p['seeds'], '{}')}, the same command otherwise: {cells}. {p.get('note', '')}",
    ]


def _supernet_targets(st: dict[str, Any]) -> list[str]:
    names = [k for k in st if k.startswith("supernet")]
    if not names:
        return ["The record has no supernet strategy, so its targets are not judged."]
    joint = st.get("joint")
    t_hv, t_lenet = TARGETS["supernet_vs_joint_hypervolume"], TARGETS["lenet5_ratio"]
    t_n = TARGETS["supernet_candidates_scored"]

    def vs_joint(v: dict[str, Any]) -> str:
        if joint is None:
            return "no `joint` in the record"
        if joint["hypervolume_mean"] <= 0:
            ok = v["hypervolume_mean"] > 0
            return f"{v['hypervolume_mean']:.3f} against 0 ({_met(ok)})"
        r = v["hypervolume_mean"] / joint["hypervolume_mean"]
        return f"{r:.2f}x ({_met(r >= t_hv)})"

    def every_seed(v: dict[str, Any]) -> str:
        if joint is None:
            return "no `joint` in the record"
        pairs = list(zip(v["hypervolume_per_seed"], joint["hypervolume_per_seed"], strict=True))
        wins = sum(a > j for a, j in pairs)
        return f"{wins} of {len(pairs)} seeds ({_met(wins == len(pairs))})"

    def lenet(v: dict[str, Any]) -> str:
        r = v["best_ratio_at_lenet5_accuracy"]
        return "-" if r is None else f"{r:.0f}x ({_met(r >= t_lenet)})"

    def scored(v: dict[str, Any]) -> str:
        n = min(v["candidates_scored"])
        return f"at least {n:,} ({_met(n >= t_n)})"

    def most_accurate(v: dict[str, Any]) -> str:
        mine, theirs = (
            v.get("best_val_accuracy_per_seed"),
            (joint or {}).get("best_val_accuracy_per_seed"),
        )
        if not mine or not theirs:
            return "not recorded"
        pairs = list(zip(mine, theirs, strict=True))
        wins = sum(a is not None and (j is None or a >= j) for a, j in pairs)
        return f"{wins} of {len(pairs)} seeds ({_met(wins == len(pairs))})"

    targets = [
        (f"hypervolume mean >= {t_hv:g}x joint's", vs_joint),
        ("hypervolume above joint's on every seed", every_seed),
        (f"best ratio at LeNet-5 accuracy >= {t_lenet:.0f}x (mean over seeds)", lenet),
        (f"candidates scored >= {t_n:,} per search (every seed)", scored),
        ("most accurate front member (val) at least joint's, every seed", most_accurate),
    ]
    return [
        "Against the targets:",
        "",
        *_table(["target", *names], [[t, *(fn(st[k]) for k in names)] for t, fn in targets]),
    ]
