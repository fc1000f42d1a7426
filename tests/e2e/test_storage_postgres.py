"""The Optuna study in PostgreSQL (what a multi-node search uses instead of the journal
file): a real server from `cluster_fixtures.postgres_server` (this folder's conftest),
skipped only when PostgreSQL is not installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import optuna

WRITER = textwrap.dedent(
    """
    import sys, time
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    study = optuna.load_study(study_name=name, storage=url)
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for i in range(n):
        trial = study.ask()
        trial.set_user_attr("writer", name + ":" + sys.argv[4])
        x = trial.suggest_float("x", 0.0, 1.0)
        time.sleep(0.02)
        study.tell(trial, x)
    """
)


def test_two_processes_share_one_study(postgres_server) -> None:
    url = postgres_server.new_database()
    name = "shared"
    optuna.create_study(study_name=name, storage=url, direction="minimize")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, name, "6", str(k)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:  # both released at once: their trials interleave
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.stdin.close()
        assert p.wait(timeout=120) == 0

    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 12
    assert sorted(t.number for t in trials) == list(range(12))  # no number given twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    writers = [t.user_attrs["writer"] for t in trials]
    assert writers.count("shared:0") == 6 and writers.count("shared:1") == 6


def _search(
    overrides: list[str], url: str, out: Path, n_trials: int
) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "nas.search", *overrides, "search.study_name=pg",
        f"search.n_trials={n_trials}", f"search.storage={url}", f"search.output_dir={out}",
    ]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=out)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def test_search_stores_its_study_in_postgres_and_resumes(
    postgres_server, tmp_path: Path, fast
) -> None:
    url = postgres_server.new_database()
    _search(fast(), url, tmp_path, 3)
    assert not list(tmp_path.glob("*.journal"))  # the study went to Postgres only
    study = optuna.load_study(study_name="pg", storage=url)
    first = [(t.number, t.state, t.values, t.params) for t in study.trials]
    assert len(first) == 3
    assert all(s == optuna.trial.TrialState.COMPLETE for _, s, _, _ in first)

    _search(fast(), url, tmp_path, 4)  # a second run resumes: one more trial, not four
    study = optuna.load_study(study_name="pg", storage=url)
    assert len(study.trials) == 4
    assert [(t.number, t.state, t.values, t.params) for t in study.trials[:3]] == first
    assert study.trials[3].state == optuna.trial.TrialState.COMPLETE
