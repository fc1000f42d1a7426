"""``python -m nas.search`` as a Hydra app: refusals, Hydra's flags, where outputs go,
sweeps and SIGTERM."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import nas.driver
from nas.search import main

TINY = [
    "dataset=digits",
    "search_space=tiny",
    "train.epochs=1",
    "compress.finetune_epochs=0",
    "search.timeout_s=null",
    "search.progress=false",
]

# (id, argv, words the one line must contain)
BAD = [
    ("type", ["search.n_trials=abc"], ["search.n_trials=abc", "an integer", ">= 1"]),
    ("range", ["compress.sparsity_max=1.5"], ["compress.sparsity_max=1.5", "[0, 1)"]),
    ("no-plus", ["hw=mobile"], ["hw=mobile", "+hw=mobile"]),
    ("option", ["dataset=nosuch"], ["dataset=nosuch", "digits, imagefolder, mnist5k"]),
    ("key", ["search.n_trail=3"], ["search.n_trail", "n_trials, timeout_s"]),
    ("added-key", ["+search.foo=1"], ["search.foo", "n_trials"]),
    ("hw-key", ["hw.latency_budget_ms=3"], ["hw.latency_budget_ms=3", "+hw="]),
    ("sweep-without-m", ["search.seed=0,1"], ["search.seed=0,1", "--multirun"]),
    ("parse", ["compress.bits=[4"], ["compress.bits=[4", "key=value"]),
    ("sweep-job", ["-m", "+hw=mobile,nosuch"], ["+hw=nosuch", "mcu, mobile"]),
    ("sweep-range", ["-m", "search.seed=0,1", "search.n_trials=0"], ["n_trials=0", ">= 1"]),
    ("cfg", ["--cfg", "job", "train.epochs=x"], ["train.epochs=x", "an integer"]),
    ("flag", ["--no-such-flag"], ["--no-such-flag", "--help"]),
    ("plugin", ["--plugin", "no_such_plugin_mod"], ["--plugin no_such_plugin_mod"]),
    ("config-dir", ["-cd", "/no/such/dir"], ["/no/such/dir"]),
]

# Every case in one fresh interpreter: each main() call's stderr, exit code and time,
# and at the end whether anything imported torch.
PROBE = """
import contextlib, io, json, sys, time
from nas.search import main
out = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stderr(err):
        rc = main(argv)
    out.append({"rc": rc, "stderr": err.getvalue(), "s": time.monotonic() - start})
print(json.dumps({"cases": out, "torch": "torch" in sys.modules}))
"""


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cwd = tmp_path_factory.mktemp("refusals")
    r = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([argv for _, argv, _ in BAD])],
        capture_output=True, text=True, timeout=300, cwd=cwd,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.splitlines()[-1])
    result["cwd"] = cwd
    return result


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_one_line_before_torch(refusals: dict[str, Any], case) -> None:
    name, _, words = case
    got = refusals["cases"][[c[0] for c in BAD].index(name)]
    lines = [ln for ln in got["stderr"].splitlines() if ln.strip()]
    assert got["rc"] == 2, got
    assert len(lines) == 1 and lines[0].startswith("error: "), got["stderr"]
    for word in words:
        assert word in lines[0]
    assert not refusals["torch"]
    # Nothing written: no Hydra run dir, no study, no store.
    assert not any(refusals["cwd"].iterdir())


def test_a_refusal_takes_about_a_second(tmp_path: Path) -> None:
    start = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "nas.search", "search.n_trials=abc"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert r.returncode == 2 and r.stderr.startswith("error: search.n_trials=abc")
    assert elapsed < 10, f"refusal took {elapsed:.1f} s; torch must not be imported first"


def test_cfg_job_prints_the_composed_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cfg", "job", "dataset=digits", "+hw=mcu"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["dataset"]["name"] == "digits" and cfg["hw"]["name"] == "mcu"
    assert main(["--cfg"]) == 0  # bare --cfg, as before: the job's config
    assert yaml.safe_load(capsys.readouterr().out)["search"]["n_trials"] >= 1


def test_cfg_hydra_shows_our_run_and_sweep_dirs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cfg", "hydra"]) == 0
    hydra = yaml.safe_load(capsys.readouterr().out)["hydra"]
    assert hydra["run"]["dir"].startswith("outputs/hydra/")
    assert hydra["sweep"]["dir"].startswith("outputs/hydra/multirun/")
    assert hydra["job"]["chdir"] is False


def test_help_lists_groups_and_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for word in ("+hw=custom|gpu|host|mcu|mobile|raspi4", "dataset=", "--multirun", "--cfg"):
        assert word in text


def test_config_dir_adds_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "few_digits.yaml").write_text(
        "defaults:\n  - dataset_schema\nname: digits\nn_test: 100\nn_val: 50\n"
    )
    assert main(["-cd", str(tmp_path), "dataset=few_digits", "--cfg", "job"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["dataset"]["n_test"] == 100
    assert main(["-cd", str(tmp_path), "dataset=nosuch"]) == 2
    assert "few_digits, imagefolder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--info", "defaults"], ["dataset/digits", "search_space/mbconv"]),
        (["--info", "searchpath"], ["structured://"]),
        (["--shell-completion", "install=bash"], ["complete"]),
        (["--version"], ["Hydra 1."]),
    ],
    ids=["info-defaults", "info-searchpath", "shell-completion", "version"],
)
def test_hydra_flags(tmp_path: Path, argv: list[str], words: list[str]) -> None:
    extra = ["dataset=digits"] if argv[0] == "--info" else []
    r = subprocess.run(
        [sys.executable, "-m", "nas.search", *argv, *extra],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    for word in words:
        assert word in r.stdout + r.stderr


# -- where outputs go (the search itself replaced by a stand-in) ---------------------------


@pytest.fixture
def searched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[Any]]:
    """Run main() in tmp_path with run_search recording each job's config instead."""
    from nas.study import SearchOutcome

    seen: list[Any] = []

    def fake_run_search(cfg: Any, *, plugins: Any = ()) -> SearchOutcome:
        seen.append(cfg)
        return SearchOutcome(study_name="s", parent_run_id="p", tracking_uri="sqlite://")

    monkeypatch.setattr(nas.driver, "run_search", fake_run_search, raising=False)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield seen
    # Hydra configured logging for the job (a file in its run dir): put it back.
    for h in root.handlers:
        if h not in handlers:
            h.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_outputs_stay_in_the_launch_dir(searched: list[Any], tmp_path: Path) -> None:
    assert main([*TINY]) == 0
    (cfg,) = searched
    assert cfg.search.output_dir is None  # the driver then writes to the cwd
    (hydra_dir,) = (tmp_path / "outputs" / "hydra").glob("*/*")
    assert (hydra_dir / ".hydra" / "config.yaml").is_file()
    assert (hydra_dir / "search.log").is_file()


def test_hydra_run_dir_is_the_output_dir(searched: list[Any], tmp_path: Path) -> None:
    assert main([*TINY, "hydra.run.dir=run"]) == 0
    assert main([*TINY, "hydra.run.dir=run2", f"search.output_dir={tmp_path / 'mine'}"]) == 0
    first, second = searched
    assert first.search.output_dir == str(tmp_path / "run")
    assert (tmp_path / "run" / ".hydra" / "overrides.yaml").is_file()
    assert second.search.output_dir == str(tmp_path / "mine")  # an explicit one wins


def test_sweep_jobs_share_the_output_dir(searched: list[Any], tmp_path: Path) -> None:
    assert main(["-m", *TINY, "search.seed=0,1"]) == 0
    assert main(["-m", *TINY, "search.seed=2,3", "hydra.sweep.dir=sweep"]) == 0
    assert [c.search.seed for c in searched] == [0, 1, 2, 3]
    assert [c.search.output_dir for c in searched[:2]] == [None, None]
    assert {c.search.output_dir for c in searched[2:]} == {str(tmp_path / "sweep")}
    assert (tmp_path / "sweep" / "0" / ".hydra").is_dir()
    assert (tmp_path / "sweep" / "1" / ".hydra").is_dir()


# -- end to end --------------------------------------------------------------------------


def _parent_runs(db: Path) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    (exp,) = [e for e in client.search_experiments() if e.name != "Default"]
    return client.search_runs([exp.experiment_id], filter_string="tags.`nas.role` = 'search'")


@pytest.mark.slow
def test_multirun_sweep_is_four_studies_in_one_experiment(tmp_path: Path) -> None:
    # Two axes of two: the sweep is their product, one study and parent run per job.
    r = subprocess.run(
        [sys.executable, "-m", "nas.search", "-m", "+hw=mobile,mcu", "search.seed=0,1",
         *TINY, "search.n_trials=1"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode in (0, 3), r.stderr[-3000:]  # 3: a job found nothing within budget
    parents = _parent_runs(tmp_path / "mlflow.db")
    assert len(parents) == 4 and all(p.info.status == "FINISHED" for p in parents)
    assert len({p.data.tags["nas.study_name"] for p in parents}) == 4
    assert len(list(tmp_path.glob("*.journal"))) == 4
    (sweep,) = (tmp_path / "outputs" / "hydra" / "multirun").glob("*/*")
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
