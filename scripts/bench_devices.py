"""One multi-device search against one dedicated search per device (issue 15).

For each seed, four searches on mnist5k with the same fixed trial count and no time
limit (``search.timeout_s=null``), so their wall times compare:

- ``multi``: ``+hw=[mobile,raspi4,mcu]``, one search with a front per device;
- ``mobile``, ``raspi4``, ``mcu``: ``+hw=<device>``, the search a team runs today for
  each device.

Each device's score is the hypervolume of its test-set front: the front is selected on
val accuracy (the search's own, with its ``search.min_accuracy`` floor; test is never
selected on) and each member is placed at its test accuracy; the area is on (test
accuracy, log10 size_bytes) above 0.90 and below the fp32 LeNet-5's 1,724,320 bytes,
as in ``scripts/bench_search.py``. The comparison is paired: per seed,
``hv_ratio_<device>`` = multi's hypervolume on that device / the dedicated search's,
and ``wall_ratio`` = multi's wall time / the mean wall time of the three dedicated
searches; the reported figures are the means over seeds. Target: every
``hv_ratio_<device>`` >= 0.95 at ``wall_ratio`` <= 1.2.

A second, proposal-only section (``--constraints N``, no training) measures how the
devices' constraints are best combined for the sampler: ``any_device`` (what the
search does: one constraint, <= 0 when some device's constraints all are), every
device's constraints given separately (Optuna then calls a trial feasible only when it
fits every device), each trial aimed at one device in turn (``round_robin``: its
constraint is that device's worst violation), or none (the sampler is blind;
infeasible proposals are still rejected). Each setting proposes N candidates per seed
with the search's own sampler and feasibility check; a feasible one gets the synthetic
accuracy of
``scripts/bench_search.py``'s feasibility study instead of training. Reported per
setting: the share of proposals feasible on no device, the proposals feasible on each
device, and each device's hypervolume of the synthetic front.

    python scripts/bench_devices.py --quick                    # ~3 min: it all runs
    python scripts/bench_devices.py --jobs 2                   # ~60 min on 2 cores
    python scripts/bench_devices.py --workdir /tmp/bd          # resumable

Writes docs/bench/devices.json and .md (the table).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from _bench import Bench, add_unit_args, run_units, write_json  # noqa: E402

DEVICES = ("mobile", "raspi4", "mcu")
LENET5_BYTES = 1_724_320
REF_ACCURACY = 0.90
HV_TARGET, WALL_TARGET = 0.95, 1.2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None, help="default docs/bench/devices.json")
    p.add_argument("--seeds", type=int, default=None, help="default 3 (1 with --quick)")
    p.add_argument("--n-trials", type=int, default=None, help="per search (default 27)")
    p.add_argument("--devices", default=",".join(DEVICES))
    p.add_argument("--quick", action="store_true", help="1 seed, 4 trials, 1 epoch")
    add_unit_args(p)
    p.add_argument(
        "--constraints", type=int, default=None, metavar="N",
        help="proposals per setting and seed of the constraint study (default 200; "
        "20 with --quick; 0: skip it)",
    )  # fmt: skip
    p.add_argument(
        "--device-constraint", default="round_robin", choices=("any", "round_robin"),
        help="the multi-device search's search.device_constraint (default round_robin, "
        "the search's); each is kept apart in the workdir, so the dedicated runs are reused",
    )  # fmt: skip
    p.add_argument(
        "--compare", type=Path, default=None, metavar="JSON",
        help="a record of this script with the other --device-constraint, kept in the "
        "new one's 'compared' section",
    )  # fmt: skip
    p.add_argument(
        "--only-constraints", action="store_true",
        help="run the constraint study alone and add it to an existing --out record",
    )  # fmt: skip
    return p


def main() -> int:
    p = _parser()
    args = p.parse_args()
    bench = Bench(__file__)
    devices = [d for d in args.devices.split(",") if d]
    if len(devices) < 2 or len(set(devices)) != len(devices):
        p.error(f"--devices={args.devices!r}: give two or more distinct hw profiles")
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    n_trials = args.n_trials or (4 if args.quick else 27)
    out = args.out or Path(
        "docs/bench/devices_quick.json" if args.quick else "docs/bench/devices.json"
    )
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_devices_"))
    extra = [f"search.n_trials={n_trials}", "search.timeout_s=null", "search.progress=false"]
    if args.quick:
        extra.append("train.epochs=1")
    if args.jobs > 1:  # one core per search, so searches side by side get the same compute
        extra.append("train.threads=1")
    n_constraints = args.constraints if args.constraints is not None else (
        20 if args.quick else 200
    )  # fmt: skip
    if args.only_constraints:
        return _only_constraints(out, devices, n_constraints, seeds)
    multi = f"multi_{args.device_constraint}"
    names = [multi, *devices]
    # Seed-major: the searches side by side are the same seed's, loaded alike.
    units = [(name, seed) for seed in seeds for name in names]
    more = [f"search.device_constraint={args.device_constraint}"]
    unit = functools.partial(run_unit, work=work, devices=devices, extra=extra,
                             multi=multi, multi_extra=more)  # fmt: skip
    results = run_units(
        unit,
        units,
        lambda u: work / u[0] / f"seed{u[1]}" / "summary.json",
        jobs=args.jobs,
        threads=1 if args.jobs > 1 else None,
    )
    for (name, seed), run in results.items():
        hvs = ", ".join(f"{d} {h:.4f}" for d, h in run["hypervolume"].items())
        print(f"{name:<7} seed {seed}: {run['wall_s']:.0f} s, {run['trained']} trained, "
              f"{run['infeasible']} infeasible; hv {hvs}", file=sys.stderr)  # fmt: skip
    results = {("multi" if n == multi else n, seed): r for (n, seed), r in results.items()}
    report = summarize(results, devices, seeds)
    report["device_constraint"] = args.device_constraint
    if args.compare is not None:
        report["compared"] = _compared(args.compare, devices)
    if n_constraints > 0:
        report["constraints"] = constraint_study(devices, n_constraints, seeds=seeds[:2])
    report.update(
        n_trials=n_trials,
        overrides=extra,
        reference={"accuracy": REF_ACCURACY, "size_bytes": LENET5_BYTES},
        machine=f"{os.cpu_count()} CPUs; searches side by side: {args.jobs}",
        wall_s=bench.seconds(),
    )
    bench.overrides = extra
    table = markdown(report)
    bench.write(report, out, markdown=table, default=float)
    print(table)
    print(f"wrote {out} and {out.with_suffix('.md')}; runs in {work}")
    return 0


def _only_constraints(out: Path, devices: list[str], n: int, seeds: list[int]) -> int:
    """The constraint study alone, added to the record at ``out``; the record's own
    provenance stays, as only its constraint study is new."""
    report = json.loads(out.read_text())
    report["constraints"] = constraint_study(devices, n, seeds=seeds[:2])
    table = markdown(report)
    write_json(out, report, default=float)
    out.with_suffix(".md").write_text(table)
    print(table)
    return 0


def _compared(path: Path, devices: list[str]) -> dict[str, Any]:
    """The figures of a record made with the other ``--device-constraint``."""
    other = json.loads(path.read_text())
    keep = ("device_constraint", "per_seed", "wall_ratio", "wall_ratio_per_seed",
            *(f"hv_ratio_{d}" for d in devices), "commit", "date")  # fmt: skip
    return {k: other.get(k, "any" if k == "device_constraint" else None) for k in keep}


def run_unit(
    name: str,
    seed: int,
    *,
    work: Path,
    devices: list[str],
    extra: list[str],
    multi: str,
    multi_extra: list[str],
) -> dict[str, Any]:
    """One search, from scratch; its per-device fronts and wall time (the harness keeps
    it in the workdir, so a rerun resumes)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out = work / name / f"seed{seed}"
    if out.exists():  # an interrupted search: start it again, its wall time is void
        shutil.rmtree(out)
    hw = f"+hw=[{','.join(devices)}]" if name == multi else f"+hw={name}"
    more = multi_extra if name == multi else []
    return search(out, [hw, *extra, *more, f"search.seed={seed}", f"search.output_dir={out}"])


def search(out: Path, overrides: list[str]) -> dict[str, Any]:
    from nas import compose
    from nas.driver import run_search

    cfg = compose([*overrides, "search.study_name=bench"])
    t0 = time.monotonic()
    outcome = run_search(cfg)
    wall = time.monotonic() - t0
    if outcome.devices:
        fronts = {d: p.front for d, p in outcome.devices.items()}
    else:
        fronts = {str(cfg.hw.name): outcome.front}
    return {
        "wall_s": round(wall, 1),
        "exit_code": outcome.exit_code,
        "trained": outcome.n_trials - outcome.n_infeasible - outcome.n_failed,
        "infeasible": outcome.n_infeasible,
        "failed": outcome.n_failed,
        "below_floor": outcome.n_below_floor,
        "val_hypervolume": (
            {d: p.hypervolume for d, p in outcome.devices.items()}
            if outcome.devices
            else {str(cfg.hw.name): outcome.hypervolume}
        ),
        "hypervolume": {d: test_hypervolume(rows) for d, rows in fronts.items()},
        "fronts": {
            d: [
                {
                    k: r.get(k)
                    for k in (
                        "trial",
                        "val_accuracy",
                        "test_accuracy",
                        "size_bytes",
                        "latency_ms",
                        "bits",
                    )
                }  # fmt: skip
                for r in rows
            ]
            for d, rows in fronts.items()
        },
    }


def test_hypervolume(rows: list[dict[str, Any]]) -> float:
    """The val-selected front's members at their test accuracy: its hypervolume."""
    from nas.study import Point, hypervolume

    at_test = [Point(int(r["trial"]), float(r["test_accuracy"]), float(r["size_bytes"]))
               for r in rows if r.get("test_accuracy") is not None]  # fmt: skip
    return hypervolume(at_test, ref_accuracy=REF_ACCURACY, ref_size_bytes=LENET5_BYTES)


def summarize(
    results: dict[tuple[str, int], dict[str, Any]], devices: list[str], seeds: list[int]
) -> dict[str, Any]:
    """Paired per seed, then the mean over seeds."""
    per_seed: list[dict[str, Any]] = []
    for seed in seeds:
        multi = results["multi", seed]
        dedicated = {d: results[d, seed] for d in devices}
        row: dict[str, Any] = {"seed": seed, "wall_s_multi": multi["wall_s"]}
        for d in devices:
            mine, theirs = multi["hypervolume"][d], dedicated[d]["hypervolume"][d]
            row[f"hv_multi_{d}"], row[f"hv_dedicated_{d}"] = mine, theirs
            row[f"hv_ratio_{d}"] = mine / theirs if theirs > 0 else None
            row[f"wall_s_{d}"] = dedicated[d]["wall_s"]
        walls = [dedicated[d]["wall_s"] for d in devices]
        row["wall_ratio"] = multi["wall_s"] / statistics.mean(walls)
        row["wall_ratio_to_all_dedicated"] = multi["wall_s"] / sum(walls)
        per_seed.append(row)
    report: dict[str, Any] = {"devices": devices, "seeds": seeds, "per_seed": per_seed}
    for d in devices:
        ratios = [r[f"hv_ratio_{d}"] for r in per_seed if r[f"hv_ratio_{d}"] is not None]
        report[f"hv_ratio_{d}"] = statistics.mean(ratios) if ratios else None
        report[f"hv_ratio_{d}_per_seed"] = [r[f"hv_ratio_{d}"] for r in per_seed]
    report["wall_ratio"] = statistics.mean(r["wall_ratio"] for r in per_seed)
    report["wall_ratio_per_seed"] = [r["wall_ratio"] for r in per_seed]
    report["wall_ratio_to_all_dedicated"] = statistics.mean(
        r["wall_ratio_to_all_dedicated"] for r in per_seed
    )
    hv_ok = all(report[f"hv_ratio_{d}"] is not None and report[f"hv_ratio_{d}"] >= HV_TARGET
                for d in devices)  # fmt: skip
    report["target"] = {
        "hv_ratio_min": HV_TARGET,
        "wall_ratio_max": WALL_TARGET,
        "hv_met": hv_ok,
        "wall_met": report["wall_ratio"] <= WALL_TARGET,
    }
    report["runs"] = {f"{name}/seed{seed}": run for (name, seed), run in results.items()}
    return report


CONSTRAINT_SETTINGS = ("any_device", "every_device", "round_robin", "blind")


def constraint_study(devices: list[str], n: int, *, seeds: list[int]) -> dict[str, Any]:
    """How to combine the devices' constraints for the sampler (proposals only)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out: dict[str, Any] = {"proposals": n, "seeds": seeds}
    for setting in CONSTRAINT_SETTINGS:
        per_seed = [_constraint_run(setting, devices, n, seed) for seed in seeds]
        out[setting] = {
            "per_seed": per_seed,
            "feasible_nowhere_share": statistics.mean(
                r["feasible_nowhere_share"] for r in per_seed
            ),
            "feasible_on": {
                d: statistics.mean(r["feasible_on"][d] for r in per_seed) for d in devices
            },
            "hypervolume": {
                d: statistics.mean(r["hypervolume"][d] for r in per_seed) for d in devices
            },
        }
    return out


def _constraint_run(setting: str, devices: list[str], n: int, seed: int) -> dict[str, Any]:
    """``n`` proposals of one seed, each told the constraint as ``setting`` combines it
    and a synthetic accuracy: the points feasible on each device, and their hypervolume."""
    import random

    import optuna

    from nas import compose
    from nas.pipeline import propose
    from nas.runners import make_context
    from nas.study import Point, hypervolume, make_sampler

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    # Its constraint-blind trial proxy: each setting tells the constraint itself.
    from _search_report import Blind as _Blind
    from _search_report import synthetic_accuracy as _synthetic_accuracy

    cfg = compose([f"+hw=[{','.join(devices)}]", f"search.seed={seed}"])
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(cfg, out_dir=Path(tmp), study_name="c", evaluator=False)
        study = optuna.create_study(
            directions=["maximize", "minimize"], sampler=make_sampler(cfg.sampler, seed)
        )
        rng = random.Random(seed)
        points: dict[str, list[Any]] = {d: [] for d in devices}
        nowhere = 0
        t0 = time.monotonic()
        for _ in range(n):
            trial = study.ask()
            p = propose(_Blind(trial), ctx, number=trial.number)
            _tell_constraint(trial, setting, p.device_constraints, devices)
            size = p.metrics["size_bytes_estimate"]
            acc = _synthetic_accuracy(p.metrics["params"], p.compression, rng)
            study.tell(trial, [acc if p.feasible else 0.0, size])
            nowhere += not p.feasible
            for d in p.feasible_on:
                points[d].append(Point(trial.number, acc, size))
    print(f"constraints {setting} seed {seed}: {nowhere}/{n} feasible nowhere",
          file=sys.stderr)  # fmt: skip
    return {
        "feasible_nowhere_share": nowhere / n,
        "feasible_on": {d: len(v) for d, v in points.items()},
        "hypervolume": {
            d: hypervolume(v, ref_accuracy=REF_ACCURACY, ref_size_bytes=LENET5_BYTES)
            for d, v in points.items()
        },
        "seconds_per_proposal": (time.monotonic() - t0) / n,
    }


def _tell_constraint(
    trial: Any, setting: str, constraints: dict[str, dict[str, float]], devices: list[str]
) -> None:
    from nas.pipeline import ANY_DEVICE, any_device_constraint

    if setting == "any_device":
        trial.set_constraint(ANY_DEVICE, any_device_constraint(constraints))
    elif setting == "every_device":
        for d, cons in constraints.items():
            for k, v in cons.items():
                trial.set_constraint(f"{d}.{k}", v)
    elif setting == "round_robin":  # each trial aimed at one device in turn
        aimed = constraints[devices[trial.number % len(devices)]]
        trial.set_constraint(ANY_DEVICE, max(aimed.values()))


def markdown(report: dict[str, Any]) -> str:
    devices = report["devices"]
    head = ["seed", *[f"hv {d} multi/dedicated" for d in devices], "wall multi/dedicated (s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["per_seed"]:
        cells = [str(r["seed"])]
        for d in devices:
            ratio = r[f"hv_ratio_{d}"]
            shown = "-" if ratio is None else f"{ratio:.2f}x"
            cells.append(f"{r[f'hv_multi_{d}']:.4f} / {r[f'hv_dedicated_{d}']:.4f} ({shown})")
        walls = statistics.mean(r[f"wall_s_{d}"] for d in devices)
        cells.append(f"{r['wall_s_multi']:.0f} / {walls:.0f} ({r['wall_ratio']:.2f}x)")
        lines.append("| " + " | ".join(cells) + " |")
    means = ["mean"]
    for d in devices:
        v = report[f"hv_ratio_{d}"]
        means.append("-" if v is None else f"{v:.2f}x")
    means.append(f"{report['wall_ratio']:.2f}x")
    lines.append("| " + " | ".join(means) + " |")
    t = report["target"]
    hv_met, wall_met = ("met" if t[k] else "MISSED" for k in ("hv_met", "wall_met"))
    lines.append("")
    lines.append(
        f"Target: hv ratio >= {t['hv_ratio_min']} on every device ({hv_met}), "
        f"wall ratio <= {t['wall_ratio_max']} ({wall_met}); "
        f"{report['n_trials']} trials per search; multi against all three dedicated "
        f"searches together: {report['wall_ratio_to_all_dedicated']:.2f}x the wall time."
    )
    c = report.get("constraints")
    if c:
        lines += ["", f"Constraint study: {c['proposals']} proposals per setting and seed "
                  f"(seeds {c['seeds']}), synthetic accuracy.", ""]  # fmt: skip
        head = ["setting", "feasible nowhere", *[f"{d}: feasible / hv" for d in devices]]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for setting in CONSTRAINT_SETTINGS:
            r = c[setting]
            cells = [setting, f"{r['feasible_nowhere_share']:.0%}"]
            cells += [f"{r['feasible_on'][d]:.0f} / {r['hypervolume'][d]:.4f}" for d in devices]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
