"""``strategy=supernet`` under ``runner=ray`` on the local multi-node cluster
(scripts/ray_cluster.sh via cluster_fixtures: a head and two worker nodes, 1 CPU each).

One Ray task on a worker trains the supernet once and caches it (shared storage); the
driver prints what it said and loads the cache; the candidates are scored on the
Ray workers, each loading the cached supernet once (its trial context, the strategy
with it, lives as long as the worker process); only the finalists, fine-tuned as Ray
trials, are MLflow child runs and make the front. Checked through what the search
wrote: the study (journal file), the MLflow runs and the supernet cache.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from supernet_configs import assert_finalists_cover_the_sizes, tiny_supernet

from nas.study import keys, make_storage

CLI = [sys.executable, "-m", "nas.search"]
TINY_SUPERNET = tiny_supernet(n_trials=20, warmup_epochs=1)


def _study(out: Path) -> optuna.Study:
    (journal,) = out.glob("*.journal")
    name = journal.stem
    return optuna.load_study(study_name=name, storage=make_storage(None, name, out))


def test_a_supernet_search_scores_on_the_workers_and_finalises_as_ray_trials(
    tmp_path: Path, ray_cluster: Any, fast: Any, mlflow_runs: Any
) -> None:
    args = fast(
        *TINY_SUPERNET,
        "runner=ray",
        "runner.address=auto",
        "runner.max_concurrent=2",
        f"search.output_dir={tmp_path}",
    )
    p = subprocess.run(
        [*CLI, *args],
        cwd=tmp_path,
        env=ray_cluster.environ(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-4000:]

    # The supernet was trained once, by a task on a Ray worker (not the driver), and
    # written once, before any candidate was scored; the workers only loaded it.
    assert p.stderr.count("Trained the supernet") == 1, p.stderr[-4000:]
    assert "] Trained the supernet" in p.stderr and "[Ray node " in p.stderr, p.stderr[-4000:]
    (supernet,) = (tmp_path / "outputs" / "supernets").glob("*.safetensors")
    written = supernet.stat().st_mtime

    study = _study(tmp_path)
    trials = study.get_trials(deepcopy=False)
    finals = [t for t in trials if t.user_attrs.get(keys.PHASE) == "final"]
    scored = [t for t in trials if t.user_attrs.get(keys.PHASE) != "final"]
    assert len(scored) == 20
    assert all(t.state == TrialState.COMPLETE for t in trials), [t.state for t in trials]
    assert written <= min(t.datetime_start.timestamp() for t in scored)  # type: ignore[union-attr]

    # Scoring fanned out: two Ray nodes, each trial in a reused worker process.
    feasible = [t for t in scored if t.user_attrs[keys.FEASIBLE]]
    assert len(feasible) >= 4
    where = [t.user_attrs[keys.WORKER] for t in feasible]
    assert len({w["node"] for w in where}) >= 2, where
    processes = {(w["host"], w["pid"]) for w in where}
    assert 2 <= len(processes) < len(feasible), where
    # Scored candidates are Optuna trials only: no MLflow run.
    assert all(keys.RUN_ID not in t.user_attrs for t in scored)

    # The finalists cover the scored sizes, re-proposed with their scored parameters
    # (enqueued, asked by the Ray searcher), fine-tuned on the workers, recorded as runs.
    assert_finalists_cover_the_sizes(finals, feasible)
    for t in finals:
        assert t.params == study.trials[t.user_attrs[keys.FINALIST_OF]].params
        assert keys.RUN_ID in t.user_attrs and "node" in t.user_attrs[keys.WORKER]
        assert Path(t.user_attrs[keys.ARTIFACT]).is_file()
    children = mlflow_runs(tmp_path, role=keys.ROLE_TRIAL)
    assert sorted(int(r.data.tags[keys.TAG_TRIAL]) for r in children) == sorted(
        t.number for t in finals
    )
    for r in children:
        assert r.info.status == "FINISHED"
        assert (
            r.info.run_id == study.trials[int(r.data.tags[keys.TAG_TRIAL])].user_attrs[keys.RUN_ID]
        )
        assert len(r.data.tags["ray.node_id"]) == 56  # tagged by the Ray searcher
    (parent,) = mlflow_runs(tmp_path, role=keys.ROLE_SEARCH)
    assert parent.info.status == "FINISHED"

    # The front is made of finalists only.
    with open(tmp_path / "outputs" / study.study_name / "pareto.csv") as f:
        front = {int(row["trial"]) for row in csv.DictReader(f)}
    assert front and front <= {t.number for t in finals}
