"""### Ranking fidelity, scoring time and sampler cost of the Supernet section
(supernet.json, issue 14)."""

from __future__ import annotations

from typing import Any

from ._format import (
    _int,
    _met,
    _num,
    _ok,
    _opt,
    _seq,
    _sig,
    _table,
    _tau,
)
from ._targets import TARGETS

SUPERNET_CMD = ".venv/bin/python scripts/bench_supernet.py --out docs/bench/supernet.json"


def fidelity(d: dict[str, Any]) -> list[str]:
    f = d["fidelity"]
    default, best = d["default_schedule"], d["best_schedule"]
    train_s = d.get("supernet_train_seconds", {})
    t_tau = TARGETS["supernet_kendall_tau"]
    # The feasible +hw=mobile set's tau (issue 14); a record with a uniform set
    # (bench_fidelity.py) holds that one at the top level.
    own = f["schedules"][default] if d.get("fidelity_set") else d
    tau, tau_ci = own["kendall_tau"], own["kendall_tau_ci"]
    quick = (
        " This is a `--quick` run (tiny budgets): a check that the benchmark runs, not a"
        " measurement."
        if d.get("quick")
        else ""
    )
    overrides = ", ".join(f"`{o}`" for o in d.get("overrides", []))
    rows = [
        [
            f"**{name}** (default)" if name == default else name,
            _opt(train_s.get(name), lambda x: f"{x:.0f} s"),
            _tau(v["kendall_tau"], v["kendall_tau_ci"]),
            _num(v["inherited_mean"], "{:.3f}"),
            _num(v["standalone_mean"], "{:.3f}"),
            f"{f['kept']} of {f['drawn']}",
        ]
        for name, v in f["schedules"].items()
    ]
    better = (
        f" `{best}` ranked better (tau {_num(f['schedules'][best]['kendall_tau'], '{:.2f}')})."
        if best != default
        else ""
    )
    return [
        "### Ranking fidelity on the feasible set (issue 14)",
        "",
        "    " + SUPERNET_CMD + (" --quick" if d.get("quick") else ""),
        "",
        "On `mnist5k` with `+hw=mobile`, seed 0"
        + (f", overrides {overrides}" if overrides else "")
        + ": candidates are drawn as the search draws them (feasible under the budgets), each"
        " is trained standalone with a scratch trial's budget and scored from its artifact,"
        " and each supernet, one per training schedule with the same budget, scores it by"
        f" inheritance. Candidates below {d['min_standalone']:g} standalone val accuracy are"
        " left out (they rank noise). Kendall's tau is between the inherited and the"
        f" standalone val accuracy, with a bootstrap 95% interval.{quick} This set is"
        " biased: under `+hw=mobile` no candidate is wider than `width_mult` 0.5, weak"
        " ones are dropped, and standalone trainings collapse above 0.8 sparsity where"
        " inherited weights do far better"
        + ("; the uniform set above is the honest figure." if d.get("fidelity_set") else "."),
        "",
        *_table(
            [
                "schedule",
                "supernet training",
                "Kendall tau",
                "inherited val (mean)",
                "standalone val (mean)",
                "candidates kept of drawn",
            ],
            rows,
        ),
        "",
        f"Kendall tau >= {t_tau:g} (schedule `{default}`):"
        f" **{_met(_ok(tau, lambda t: t >= t_tau))}**, {_tau(tau, tau_ci)}.{better}",
        "",
        *_supernet_costs(d),
    ]


def _supernet_costs(d: dict[str, Any]) -> list[str]:
    sc = d["score_seconds"]
    t_score = TARGETS["supernet_score_median_s"]
    samplers = d["sampler_seconds_per_proposal"]
    sizes = sorted({int(n) for v in samplers.values() for n in v})
    lines = [
        "### Scoring time and sampler cost",
        "",
        "One inherited-weight evaluation (extract the sub-network, compress it, re-estimate"
        f" BatchNorm, val accuracy), over {sc['n']} candidates: median {_sig(sc['median'])} s,"
        f" p90 {_sig(sc['p90'])} s, max {_sig(sc['max'])} s (target median < {t_score:g} s,"
        f" **{_met(sc['median'] < t_score)}**). Proposing a candidate (sampling and the budget"
        f" checks, `nas.pipeline.propose`) takes median {_sig(1000 * sc['propose_median'])} ms.",
        "",
        "Each sampler's own time per proposal (`ask` and the `suggest` calls, behind the"
        " search's constraint-model wrapper, with a synthetic objective), mean over the"
        " last 50 proposals before the study reaches each size:",
        "",
        *_table(
            ["sampler", *(f"{n:,} trials" for n in sizes)],
            [
                [name, *(_opt(v.get(str(n)), lambda x: f"{_sig(1000 * x)} ms") for n in sizes)]
                for name, v in samplers.items()
            ],
        ),
        "",
    ]
    u = d.get("reuse")
    if u is None:
        lines.append("Reuse was not measured (`--reuse-n 0`).")
    else:
        retrained = (
            "it trained a new supernet" if u["retrained"] else "it reused the cached supernet"
        )
        lines.append(
            f"Reuse: a second search with `+hw={u['hw']}`, after the one above: {retrained}"
            f" and completed {_int(u['candidates'])} candidate trials, of them"
            f" {_int(u['feasible_scored'])} feasible and scored by inheritance, in"
            f" {_sig(u['seconds_to_score'])} s; the whole search, finalists included, took"
            f" {_sig(u['wall_seconds'])} s."
        )
    lines += _sampler_quality(d.get("sampler_quality"))
    lines += _finalised(d.get("finalised"))
    if d.get("conditions"):
        lines += ["", f"Conditions: {d['conditions']}"]
    minutes, seconds = divmod(round(d["wall_seconds"]), 60)
    lines += ["", f"The benchmark took {minutes} min {seconds} s."]
    return lines


def _finalised(fin: dict[str, Any] | None) -> list[str]:
    """What each schedule's candidates give once finalised, when that was measured."""
    if fin is None:
        return []
    names = list(fin["val_accuracy_mean"])
    return [
        "",
        "What each schedule gives once a candidate is finalised (fine-tuned with its"
        " compression and distillation from the largest sub-network, exported, scored"
        " from its artifact), on the same candidates (val accuracy, estimate -> final):",
        "",
        *_table(
            ["candidate", "bits", "sparsity", *names],
            [
                [
                    str(r["number"]),
                    str(r["compression"].get("bits")),
                    f"{r['compression'].get('sparsity', 0):.2f}",
                    *(_final_cell(r[n]) for n in names),
                ]
                for r in fin["candidates"]
            ],
        ),  # fmt: skip
        "",
        "Mean finalised val accuracy: "
        + ", ".join(
            f"{n} {'none finished' if v is None else f'{v:.3f}'}"
            for n, v in fin["val_accuracy_mean"].items()
        )
        + (
            " (failed finalists left out)."
            if any("failed" in r[n] for r in fin["candidates"] for n in names)
            else "."
        ),  # fmt: skip
    ]


def _final_cell(c: dict[str, Any]) -> str:
    """estimate -> finalised (bytes); a finalist that failed (overran its trial time)."""
    if "failed" in c:
        return f"{c['estimated_val_accuracy']:.3f} -> failed ({c['failed'].split(':')[0]})"
    return (f"{c['estimated_val_accuracy']:.3f} -> {c['val_accuracy']:.3f}"
            f" ({_int(c['size_bytes'])} B)")  # fmt: skip


def _sampler_quality(q: dict[str, Any] | None) -> list[str]:
    """Whole searches per sampler over one cached supernet: what each finds per second."""
    if q is None:
        return []
    samplers = q["samplers"]
    checkpoints = [str(c) for c in q["checkpoints"]]
    best = max(samplers, key=lambda n: samplers[n]["hypervolume_mean_at"][checkpoints[-1]])
    return [
        "",
        f"Which sampler finds more: one search per sampler and seed ({_seq(q['seeds'], '{}')}),"
        f" {_int(q['n'])} proposals each, over the same cached supernet; the hypervolume of"
        " the estimated front (inherited val accuracy against estimated size, the search's"
        " reference point), mean over the seeds, as the study grows, and the time of the"
        " whole search"
        + (f" ({q['jobs']} searches side by side, one thread each)" if q.get("jobs", 1) > 1 else "")
        + ":",
        "",
        *_table(
            ["sampler", *(f"after {int(c):,} trials" for c in checkpoints), "scored", "search"],
            [
                [
                    f"**{n}**" if n == best else n,
                    *(f"{v['hypervolume_mean_at'][c]:.4f}" for c in checkpoints),
                    f"{v['n_scored_mean']:.0f}",
                    f"{v['seconds_mean']:.0f} s",
                ]
                for n, v in samplers.items()
            ],
        ),
    ]


RECIPES_CMD = (
    ".venv/bin/python scripts/bench_fidelity.py --sections recipes --out docs/bench/supernet.json"
)
# Under this many points of mean test accuracy over a scratch trial (two test images in
# 1,000), an inherited start is said to buy nothing.
RECIPE_NOISE_POINTS = 0.2


def recipes(r: dict[str, Any] | None) -> list[str]:
    """Issue 24: finalising recipes from inherited weights against a scratch trial."""
    if not r or not r.get("summary"):
        return []
    s, m, scratch = r["summary"], r["measured"], r["scratch"]
    d = r["defaults"]
    base = s[scratch]
    rows = [
        [name, f"{v['test_accuracy_mean']:.4f}", f"{v['val_accuracy_mean']:.4f}",
         f"{v['seconds']:,.0f}", f"{v['seconds'] / base['seconds']:.2f}x"]
        for name, v in s.items()
    ]  # fmt: skip
    gain = 100 * (s["default"]["test_accuracy_mean"] - base["test_accuracy_mean"])
    cost = s["default"]["seconds"] / base["seconds"]
    verdict = (
        "so on this task the inherited start buys a finalist nothing that a scratch trial"
        " does not: what the supernet gives a search is its ranking of thousands of"
        " candidates, not a head start."
        if gain < RECIPE_NOISE_POINTS and cost >= 1.0
        else "."
    )
    return [
        f"**Does the inherited start pay?** (measured at commit {m['commit']}, {m['date']};"
        f" {'a `--quick` run, ' if m.get('quick') else ''}one thread)",
        "",
        f"    {RECIPES_CMD}",
        "",
        f"{r['compared_on']} candidates ({r['draw']}), each finalised from its inherited"
        f" weights by the default recipe (`finetune_lr` {d['finetune_lr']:g},"
        f" `finetune_patience` {d['finetune_patience']}, at most {d['finetune_epochs']}"
        " epochs) and three variants, and trained once as a scratch trial (from random"
        " weights, with its compression): mean accuracy of the artifacts, and the seconds"
        " all of them took:",
        "",
        *_table(["recipe", "test (mean)", "val (mean)", "seconds", "over scratch"], rows),
        "",
        f"The default recipe gives {gain:+.1f} points of test accuracy over a scratch trial"
        f" at {cost:.2f}x its time{',' if verdict != '.' else ''}"
        + (f" {verdict}" if verdict != "." else "."),
        "",
    ]
