"""The searches of ``scripts/bench_search.py``: its strategies, how one runs, and its summary.

Imported as ``from _search_runs import ...`` (``scripts/`` is first on ``sys.path``).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

LENET5_BYTES = 1_724_320  # fp32 Caffe LeNet-5: 431,080 params x 4 bytes
REF_ACCURACY = 0.90
STRATEGIES = (
    "joint",
    "two_stage",
    "random",
    "joint_tpe",
    "joint_nsga2",
    "joint_gp",
    "joint_moasha",
    "joint_moasha_half",
    "supernet",
    "supernet_nsga2",
)
# The default comparison: the supernet strategies are left out, as their supernet cannot
# train within the default 150 s (the search refuses such a budget with one line); they
# are compared at 1,800 s in docs/bench/search_supernet.json (--strategies joint,supernet).
DEFAULT_STRATEGIES = tuple(s for s in STRATEGIES if not s.startswith("supernet"))
HALF = ("joint_moasha_half",)
OVERRIDES: dict[str, list[str]] = {
    "joint": [],
    "joint_moasha": ["early_stop=moasha"],
    "joint_moasha_half": ["early_stop=moasha"],
    "random": ["sampler=random", "early_stop=none"],
    "joint_tpe": ["sampler=tpe", "early_stop=none"],
    "joint_nsga2": ["sampler=nsga2", "early_stop=none"],
    "joint_gp": ["sampler=gp", "early_stop=none"],
    # Supernet training, scoring and the finalists' fine-tuning all within the budget.
    "supernet": ["strategy=supernet"],
    "supernet_nsga2": ["strategy=supernet", "sampler=nsga2"],
}
STAGE1 = [
    "compress.bits=[32]",
    "compress.sparsity_min=0",
    "compress.sparsity_max=0",
    "compress.prune_scopes=[global]",
    "compress.finetune_epochs=0",
    "early_stop=none",
]
GRID_BITS = (8, 4, 2)
GRID_SPARSITY = (0.5, 0.75, 0.9)
TOP_ARCHS = 3


def compose(overrides: list[str]) -> Any:
    from nas import compose as nas_compose

    return nas_compose(overrides)


def run_strategy(out: Path, seed: int, budget: float, overrides: list[str]) -> list[dict[str, Any]]:
    """One search through run_search; its trained, feasible trials as rows (a supernet
    search's inherited-weight estimates are rows with ``scored`` set)."""
    from nas.driver import run_search

    cfg = compose(
        [
            *overrides,
            f"search.seed={seed}",
            f"search.timeout_s={budget}",
            "search.n_trials=10000",
            "search.progress=false",
            "search.study_name=bench",
            f"search.output_dir={out}",
        ]
    )
    outcome = run_search(cfg)
    return study_rows(out, outcome.study_name)


def study_rows(out: Path, study_name: str) -> list[dict[str, Any]]:
    import optuna
    from optuna.trial import TrialState

    from nas.study import make_storage

    study = optuna.load_study(study_name=study_name, storage=make_storage(None, study_name, out))
    rows = []
    for t in study.trials:
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        if t.state == TrialState.COMPLETE:
            row["feasible"] = bool(t.user_attrs.get("feasible"))
            if row["feasible"] and "test_accuracy" not in t.user_attrs:
                row["scored"] = True  # an inherited-weight estimate, not an artifact
            elif row["feasible"]:
                row.update(
                    val_accuracy=float(t.values[0]),
                    size_bytes=float(t.values[1]),
                    test_accuracy=float(t.user_attrs["test_accuracy"]),
                    params={k: v for k, v in t.params.items()},
                )
            metrics = t.user_attrs.get("metrics") or {}
            if "finetune_epochs" in metrics:  # a supernet search's finalist
                row["finetune"] = [metrics["finetune_epochs"], metrics["finetune_best_epoch"]]
                if "inherited_val_accuracy" in metrics:  # recorded since the bias fix
                    row["inherited_val"] = float(metrics["inherited_val_accuracy"])
                if "finetune_cut" in metrics:  # recorded since finalists stop at the budget
                    row["cut"] = bool(metrics["finetune_cut"])
        rows.append(row)
    return rows


def finalists(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A supernet search's finalists: how long each trained (the epochs before its val
    accuracy stopped improving, and the epoch kept), their widths, and the mean val-test
    gap of the feasible ones with the mean val of their inherited weights (what they were
    chosen by, biased upward by the choice), and how many the search's end stopped."""
    done = [r for r in rows if "finetune" in r]
    if not done:
        return None
    widths = [r["params"].get("width_mult") for r in done if "params" in r]
    return {
        "n": len(done),
        "epochs": [r["finetune"][0] for r in done],
        "best_epochs": [r["finetune"][1] for r in done],
        "by_width": {str(w): widths.count(w) for w in sorted(set(widths))},
        **({"cut": sum(r["cut"] for r in done)} if any("cut" in r for r in done) else {}),
        **_gaps(done),
    }


def _gaps(done: list[dict[str, Any]]) -> dict[str, float]:
    tested = [r for r in done if "test_accuracy" in r]
    if not tested:
        return {}
    gaps = [r["val_accuracy"] - r["test_accuracy"] for r in tested]
    out = {"val_test_gap_mean": round(statistics.mean(gaps), 4)}
    inherited = [r for r in tested if "inherited_val" in r]
    if inherited:
        out["inherited_val_mean"] = round(statistics.mean(r["inherited_val"] for r in inherited), 4)
        out["val_mean"] = round(statistics.mean(r["val_accuracy"] for r in inherited), 4)
    return out


def run_two_stage(out: Path, seed: int, budget: float, extra: list[str]) -> list[dict[str, Any]]:
    """Stage 1: fp32 architecture search (half the budget); stage 2: compress a grid."""
    import optuna

    from nas.pipeline import propose, train_proposal
    from nas.runners import make_context

    start = time.monotonic()
    rows = run_strategy(out, seed, budget / 2, [*STAGE1, *extra])
    trained = sorted(
        (r for r in rows if r.get("feasible")), key=lambda r: (-r["val_accuracy"], r["size_bytes"])
    )
    archs = [r["params"] for r in trained[:TOP_ARCHS]]
    cfg = compose(
        [
            *extra,
            "early_stop=none",
            "compress.prune_scopes=[global]",
            f"search.seed={seed}",
            f"search.output_dir={out}",
        ]
    )
    ctx = make_context(cfg, out_dir=out, study_name="stage2", evaluator=True)
    grid = [(b, s) for b in GRID_BITS for s in GRID_SPARSITY]
    durations: list[float] = []
    number = 10_000
    try:
        for bits, sparsity in grid:
            for arch in archs:
                typical = statistics.median(durations) if durations else 0.0
                if time.monotonic() + typical > start + budget:
                    return rows
                t0 = time.monotonic()
                fixed = dict(arch, bits=bits, sparsity=sparsity, prune_scope="global")
                # Optuna's own fixed-value trial: the grid point, as a Suggest.
                proposal = propose(optuna.trial.FixedTrial(fixed), ctx, number=number)
                number += 1
                if not proposal.feasible:
                    rows.append({"number": number, "state": "COMPLETE", "feasible": False})
                    continue
                result = train_proposal(proposal, ctx)
                durations.append(time.monotonic() - t0)
                rows.append(
                    {
                        "number": number,
                        "state": "COMPLETE",
                        "feasible": True,
                        "val_accuracy": result.metrics["val_accuracy"],
                        "size_bytes": result.metrics["size_bytes"],
                        "test_accuracy": result.test_accuracy,
                        "params": fixed,
                    }
                )
    finally:
        if ctx.evaluator is not None:
            ctx.evaluator.close()
    return rows


def summarize(rows: list[dict[str, Any]], lenet: dict[str, float]) -> dict[str, Any]:
    """Hypervolume of the val-selected front at test accuracy, and the LeNet-5 match: the
    smallest front member (selected on val) at LeNet-5's val accuracy or above, whose
    test accuracy is within 1 point of LeNet-5's."""
    from nas.study import Point, hypervolume, pareto_front

    points = [
        Point(r["number"], r["val_accuracy"], r["size_bytes"], {"test": r["test_accuracy"]})
        for r in rows
        if r.get("feasible") and not r.get("scored")
    ]
    front = pareto_front(points)  # selected on val
    at_test = [Point(p.number, p.extra["test"], p.size_bytes) for p in front]
    hv = hypervolume(at_test, ref_accuracy=REF_ACCURACY, ref_size_bytes=LENET5_BYTES)
    lenet_val, lenet_test = lenet["val"], lenet["test"]
    match = next(
        (p for p in front if p.accuracy >= lenet_val and p.extra["test"] >= lenet_test - 0.01),
        None,
    )
    return {
        "hypervolume": hv,
        "candidates_scored": sum(1 for r in rows if r.get("scored")) or len(points),
        "front_candidates_seen": len(points),
        "trained": len(points),
        "pruned": sum(1 for r in rows if r["state"] == "PRUNED"),
        "infeasible": sum(1 for r in rows if r.get("feasible") is False),
        "failed": sum(1 for r in rows if r["state"] == "FAIL"),
        "front": [
            {
                "trial": p.number,
                "val_accuracy": p.accuracy,
                "test_accuracy": p.extra["test"],
                "size_bytes": p.size_bytes,
            }
            for p in front
        ],
        "lenet5_match": None
        if match is None
        else {
            "trial": match.number,
            "size_bytes": match.size_bytes,
            "val_accuracy": match.accuracy,
            "test_accuracy": match.extra["test"],
            "lenet5_val_accuracy": lenet_val,
            "lenet5_test_accuracy": lenet_test,
            "ratio": LENET5_BYTES / match.size_bytes,
        },
    }


def lenet5_accuracy(seed: int) -> dict[str, float]:
    """Val and test accuracy of the fp32 LeNet-5, trained like scripts/baseline_lenet.py,
    on the split of ``seed``."""
    import torch
    from _common import train_uncompressed

    from nas.pipeline import Recipe, accuracy, load_splits
    from search_spaces import LENET5, get_search_space

    cfg = compose(["search_space=tiny", f"search.seed={seed}"])
    torch.set_num_threads(int(cfg.train.threads))
    splits = load_splits(cfg.dataset, seed=seed)
    space = get_search_space("tiny")
    recipe = Recipe.from_config(cfg.train, cfg.compress, default_lr=space.default_lr)
    model = train_uncompressed(space, LENET5, splits, recipe, seed=seed)
    return {
        "val": accuracy(model, splits.x_val, splits.y_val),
        "test": accuracy(model, splits.x_test, splits.y_test),
    }


def same_as(strategies: list[str], extra: list[str]) -> dict[str, str]:
    """Strategies whose composed config equals an earlier one's (run once, reported twice)."""
    from omegaconf import OmegaConf

    seen: dict[str, str] = {}
    same: dict[str, str] = {}
    for name in strategies:
        if name not in OVERRIDES:
            continue
        key = OmegaConf.to_yaml(compose([*OVERRIDES[name], *extra])) + str(name in HALF)
        if key in seen:
            same[name] = seen[key]
        else:
            seen[key] = name
    return same


def run_commit(out: Path) -> str | None:
    """The commit a finished search ran at: its MLflow parent run's ``git.commit`` tag."""
    from mlflow.tracking import MlflowClient

    from nas.study import keys

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, filter_string=f"tags.`{keys.TAG_ROLE}` = '{keys.ROLE_SEARCH}'")
    tag = runs[0].data.tags.get("git.commit") if runs else None
    if tag is None or tag == "unknown":
        return tag
    return tag[:7] + ("-dirty" if tag.endswith("-dirty") else "")  # as git_commit() writes it
