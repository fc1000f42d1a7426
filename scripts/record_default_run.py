"""Record a finished search as docs/bench/default_run.json, for scripts/make_results.py.

    python scripts/record_default_run.py DIR --command "python -m nas.search +hw=mobile"
        [--study NAME] [--wall-seconds S] [--machine TEXT] [--out FILE]

DIR is the directory the search ran in: it holds ``mlflow.db`` and
``outputs/<study>/pareto.csv``. The counts and the hypervolume come from the study's
parent run in MLflow (metrics ``final_hypervolume``, ``n_trials``, ``n_infeasible``,
``n_failed``; params ``study_name``, ``hv.ref_*`` and the config the search logged),
the front from ``pareto.csv``, the commit from ``git rev-parse --short HEAD`` and the
date is today's. The wall time is the parent run's start to end, unless
``--wall-seconds`` gives the one the search printed. Then run
``python scripts/make_results.py``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "bench" / "default_run.json"
FRONT_COLUMNS = ("val_accuracy", "test_accuracy", "size_bytes", "latency_ms", "bits", "sparsity")


class UserError(Exception):
    """Bad input from the user: reported as one line, exit 2."""


def record(
    run_dir: Path,
    *,
    command: str,
    study: str | None = None,
    wall_seconds: float | None = None,
    machine: str | None = None,
    where: str | None = None,
) -> dict[str, Any]:
    """The default-run record of the search that ran in ``run_dir``."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a directory")
    study = study or _only_study(run_dir)
    pareto = run_dir / "outputs" / study / "pareto.csv"
    if not pareto.is_file():
        raise UserError(f"{pareto} does not exist; is {run_dir} a finished search's directory?")
    run = _parent_run(run_dir, study)
    metrics, params = run.data.metrics, run.data.params
    commit = _git_commit()
    wall_seconds = _checked(run, study, wall_seconds, commit)
    out: dict[str, Any] = {
        "source": f"scripts/record_default_run.py, study {study}, MLflow run {run.info.run_id}",
        "command": command,
        "commit": commit,
        "date": datetime.date.today().isoformat(),
        "machine": machine or f"{os.cpu_count()} CPUs",
        **({"where": where} if where else {}),
        "study_name": params.get("study_name", study),
        "wall_seconds": round(wall_seconds, 1),
    }
    for key, param in (
        ("dataset", "dataset.name"),
        ("timeout_s", "search.timeout_s"),
        ("train_epochs", "train.epochs"),
        ("finetune_epochs", "compress.finetune_epochs"),
    ):
        value = _param(params, param)
        if value is not None:
            out[key] = value
    out.update(
        {
            "n_trials": int(metrics["n_trials"]),
            "n_infeasible": int(metrics["n_infeasible"]),
            "n_failed": int(metrics["n_failed"]),
            "hypervolume": metrics["final_hypervolume"],
        }
    )
    if "hv.ref_accuracy" in params and "hv.ref_size_bytes" in params:
        out["hv_reference"] = {
            "accuracy": float(params["hv.ref_accuracy"]),
            "size_bytes": int(float(params["hv.ref_size_bytes"])),
        }
    hw = {k: _param(params, f"hw.{k}") for k in ("name", "latency", "predictor")}
    if hw["name"] is not None:
        out["hw"] = {k: v for k, v in hw.items() if v is not None}
    out["front"] = _front(pareto)
    return out


def _checked(run: Any, study: str, wall_seconds: float | None, commit: str) -> float:
    """The search's wall seconds, once its parent run is known finished; a warning when
    it ran at another commit than ``commit`` (HEAD's)."""
    metrics = run.data.metrics
    missing = [
        k for k in ("final_hypervolume", "n_trials", "n_infeasible", "n_failed") if k not in metrics
    ]
    if missing:
        raise UserError(
            f"the parent run of {study} lacks metrics {missing}; did the search finish?"
        )
    if wall_seconds is None:
        if not run.info.end_time:
            raise UserError(f"the parent run of {study} has no end time; pass --wall-seconds")
        wall_seconds = (run.info.end_time - run.info.start_time) / 1000
    run_commit = run.data.tags.get("git.commit", "")
    if run_commit not in ("", "unknown") and not run_commit.startswith(commit):
        print(
            f"record_default_run.py: warning: the search ran at {run_commit}, HEAD is {commit}",
            file=sys.stderr,
        )
    return float(wall_seconds)


def _only_study(run_dir: Path) -> str:
    studies = sorted(p.parent.name for p in (run_dir / "outputs").glob("*/pareto.csv"))
    if len(studies) != 1:
        found = ", ".join(studies) or "none"
        raise UserError(f"{run_dir}/outputs holds {len(studies)} studies ({found}); pass --study")
    return studies[0]


def _parent_run(run_dir: Path, study: str) -> Any:
    db = run_dir / "mlflow.db"
    if not db.is_file():  # MlflowClient would create an empty database
        raise UserError(f"{db} does not exist; is {run_dir} a finished search's directory?")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db.resolve()}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        experiments,
        filter_string=f"tags.`nas.role` = 'search' and tags.`nas.study_name` = '{study}'",
    )
    if len(runs) != 1:
        raise UserError(f"{db} has {len(runs)} parent runs for study {study}, not one")
    return runs[0]


def _front(pareto: Path) -> list[dict[str, Any]]:
    with open(pareto, newline="") as f:
        rows = list(csv.DictReader(f))
    front = []
    for row in rows:
        entry: dict[str, Any] = {"trial": int(row["trial"])}
        for key in FRONT_COLUMNS:
            entry[key] = _number(row.get(key))
        front.append(entry)
    return sorted(front, key=lambda r: r["size_bytes"])


def _number(text: str | None) -> float | int | None:
    """A CSV cell as a number: ints stay ints; empty (a parameter not drawn) is None."""
    if text is None or text.strip() in ("", "None"):
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _param(params: dict[str, str], key: str) -> Any:
    """A logged config value, parsed back from MLflow's string; None when absent or null."""
    if key not in params or params[key] in ("None", "null"):
        return None
    try:
        value = json.loads(params[key])
    except json.JSONDecodeError:
        return params[key]
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _git_commit() -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, metavar="DIR", help="where the search ran")
    p.add_argument("--command", required=True, help="the search command, as it was run")
    p.add_argument("--study", help="the study, when DIR/outputs holds several")
    p.add_argument("--wall-seconds", type=float, help="the wall time the search printed")
    p.add_argument("--machine", help="what it ran on (default: this machine's CPU count)")
    p.add_argument("--where", help="where it was launched from (default: an empty directory)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    try:
        data = record(
            args.run_dir,
            command=args.command,
            study=args.study,
            wall_seconds=args.wall_seconds,
            machine=args.machine,
            where=args.where,
        )
    except UserError as e:
        print(f"record_default_run.py: error: {e}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(
        f"record_default_run.py: wrote {args.out} ({len(data['front'])} on the front);"
        " now run python scripts/make_results.py"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
