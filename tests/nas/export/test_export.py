"""`python -m nas.export` on the front of a real (tiny) search, checked from outside.

The refusals of bad input that need no search are in ``test_export_inputs.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from nas import compose
from nas.driver import run_search

FAST = [
    "dataset=digits",
    "search_space=tiny",
    "train.epochs=1",
    "train.threads=1",
    "compress.finetune_epochs=1",
    "search.progress=false",
    "search.timeout_s=null",
    "search.n_trials=3",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_ENABLE_ASYNC_LOGGING": "false"}


class Search:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=self.uri)
        exp = self.client.get_experiment_by_name("downsize")
        assert exp is not None
        self.trials = self.client.search_runs(
            [exp.experiment_id], filter_string="tags.`nas.role` = 'trial'", max_results=100
        )
        self.parent_id = self.trials[0].data.tags["mlflow.parentRunId"]

    def front(self) -> list[Any]:
        return [r for r in self.trials if r.data.tags.get("pareto") == "true"]


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> Search:
    root = tmp_path_factory.mktemp("search")
    outcome = run_search(compose([*FAST, f"search.output_dir={root}"]))
    assert outcome.exit_code == 0 and outcome.front
    return Search(root)


def _export(search: Search, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nas.export", *args, "--tracking-uri", search.uri, "--threads", "1"],
        capture_output=True, text=True, env=ENV, cwd=cwd or search.root, timeout=300,
    )  # fmt: skip


def _fresh_process_check(out: Path) -> dict[str, float]:
    """Load model.dsz in a new process; its test accuracy and the ONNX models' agreement."""
    code = textwrap.dedent(
        f"""
        import json, numpy as np, onnxruntime as ort, torch
        from nas.config import DatasetConfig
        from nas.pipeline import load_splits
        from nas.pipeline import load_artifact
        from nas.pipeline import predict
        m = json.load(open({str(out / "metrics.json")!r}))
        splits = load_splits(DatasetConfig(**m["dataset"]), seed=m["seed"])
        pred = predict(load_artifact({str(out / "model.dsz")!r}), splits.x_test)
        res = {{"test_accuracy": float((pred == splits.y_test).float().mean())}}
        for name, f in (("fp32", "onnx/fp32/model.onnx"), ("int8", "onnx/int8/model.onnx"),
                        ("chosen", "model.onnx")):
            sess = ort.InferenceSession({str(out)!r} + "/" + f, providers=["CPUExecutionProvider"])
            x = splits.x_test.numpy()
            p = [int(sess.run(None, {{"input": x[i:i+1]}})[0].argmax()) for i in range(len(x))]
            res[name] = float((torch.tensor(p) == pred).float().mean())
        print(json.dumps(res))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_search_logs_its_resolved_config(search: Search) -> None:
    names = {a.path for a in search.client.list_artifacts(search.parent_id)}
    assert "config.yaml" in names


def test_export_front_member(search: Search, tmp_path: Path) -> None:
    run = min(search.front(), key=lambda r: r.data.metrics["size_bytes"])
    rid, m = run.info.run_id, run.data.metrics
    out = tmp_path / "export"
    done = _export(search, rid, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "not on the search's Pareto front" not in done.stderr

    for name in ("model.dsz", "model.onnx", "README.md", "metrics.json",
                 "onnx/fp32/model.onnx", "onnx/int8/model.onnx"):  # fmt: skip
        assert (out / name).is_file(), name
    # The artifact is the one the search measured, byte for byte.
    assert (out / "model.dsz").stat().st_size == int(m["size_bytes"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run_id"] == rid and metrics["config_source"] == "config.yaml"
    assert metrics["dsz"]["test_accuracy"] == pytest.approx(m["test_accuracy"], abs=1e-6)
    assert metrics["dsz"]["val_accuracy"] == pytest.approx(m["val_accuracy"], abs=1e-6)

    onnx = metrics["onnx"]
    fp32, int8 = onnx["variants"]["fp32"], onnx["variants"]["int8"]
    assert fp32["agreement_with_dsz"] >= 0.99
    assert 0.0 <= int8["agreement_with_dsz"] <= 1.0 and 0.0 <= int8["int8_mac_share"] <= 1.0
    assert fp32["latency_ms"] > 0 and int8["latency_ms"] > 0
    faster = "int8" if int8["latency_ms"] < fp32["latency_ms"] else "fp32"
    assert onnx["chosen"] == faster
    assert onnx["size_bytes"] == (out / "model.onnx").stat().st_size
    assert (out / "model.onnx").read_bytes() == (out / "onnx" / faster / "model.onnx").read_bytes()

    fresh = _fresh_process_check(out)
    assert fresh["test_accuracy"] == pytest.approx(m["test_accuracy"], abs=1e-6)
    assert fresh["fp32"] >= 0.99
    assert fresh["int8"] == pytest.approx(int8["agreement_with_dsz"], abs=1e-6)
    assert fresh["chosen"] == pytest.approx(onnx["variants"][faster]["agreement_with_dsz"])

    readme = (out / "README.md").read_text()
    for text in (rid, search.parent_id, metrics["study_name"], f"{int(m['size_bytes']):,}",
                 f"{m['test_accuracy']:.4f}", f"{m['val_accuracy']:.4f}",
                 f"{fp32['size_bytes']:,}", f"{fp32['latency_ms']:.4f}",
                 f"{int8['latency_ms']:.4f}", f"**{faster}**", json.dumps(metrics["arch"]),
                 json.dumps(metrics["compression"])):  # fmt: skip
        assert text in readme, text


def test_non_front_member_exports_with_a_warning(search: Search, tmp_path: Path) -> None:
    others = [r for r in search.trials if r.data.tags.get("pareto") == "false"
              and r.data.tags.get("feasible") == "true"]  # fmt: skip
    if not others:
        pytest.skip("every trained trial of this search is on the front")
    run = others[0]
    from nas.export import export_run

    lines: list[str] = []
    result = export_run(
        run.info.run_id, tmp_path / "x", tracking_uri=search.uri, threads=1, log=lines.append
    )
    assert [line for line in lines if "not on the search's Pareto front" in line]
    # Never logged to MLflow (it was never on the front): taken from the search's outputs.
    assert result.metrics["artifact_source"].endswith(".dsz")
    assert not result.metrics["artifact_source"].startswith("mlflow:")
    size = (tmp_path / "x" / "model.dsz").stat().st_size
    assert size == int(run.data.metrics["size_bytes"])


@pytest.mark.slow  # about 20 s: a retraining, an export and ONNX checks in a subprocess
def test_export_with_retraining(search: Search, tmp_path: Path) -> None:
    run = search.front()[0]
    out = tmp_path / "retrained"
    done = _export(search, run.info.run_id, "--out", str(out), "--retrain-epochs", "1")
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    t = metrics["retrain"]
    assert t["epochs"] == 1
    assert t["before"]["test_accuracy"] == pytest.approx(run.data.metrics["test_accuracy"])
    assert t["after"]["test_accuracy"] == metrics["dsz"]["test_accuracy"]
    assert (out / "searched.dsz").stat().st_size == int(run.data.metrics["size_bytes"])
    assert (out / "model.dsz").stat().st_size == t["size_bytes_after"]
    assert metrics["onnx"]["variants"]["fp32"]["agreement_with_dsz"] >= 0.99
    readme = (out / "README.md").read_text()
    assert "## Retrained" in readme
    assert f"{t['before']['test_accuracy']:.4f}" in readme
    assert f"{t['after']['test_accuracy']:.4f}" in readme


@pytest.mark.parametrize(
    ("args", "message", "in_subprocess"),
    [
        (["0123456789abcdef0123456789abcdef"], "not found", True),
        (["PARENT"], "--trial N", False),
        (["PARENT", "--trial", "99"], "has no trial 99", False),
        (["FRONT", "--tracking-uri", "http://127.0.0.1:9"], "unreachable", False),
        (["FRONT", "--out", "UNDER_A_FILE"], "not a folder", False),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    search: Search,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
    in_subprocess: bool,
) -> None:
    (tmp_path / "file").write_text("")
    out = tmp_path / ("file/out" if "UNDER_A_FILE" in args else "out")
    names = {"PARENT": search.parent_id, "FRONT": search.front()[0].info.run_id,
             "UNDER_A_FILE": str(out)}  # fmt: skip
    args = [names.get(a, a) for a in args]
    if "--out" not in args:
        args += ["--out", str(out)]
    if "--tracking-uri" not in args:
        args += ["--tracking-uri", search.uri]
    if in_subprocess:  # the real command line: no traceback, nothing else on stderr
        done = subprocess.run(
            [sys.executable, "-m", "nas.export", *args],
            capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        code, err = done.returncode, done.stderr
    else:
        from nas.export.__main__ import main

        code, err = main(args), capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not out.exists()


def test_missing_tracking_database_is_not_created(tmp_path: Path) -> None:
    run_id = "0123456789abcdef0123456789abcdef"
    done = subprocess.run(
        [sys.executable, "-m", "nas.export", run_id, "--out", str(tmp_path / "o")],
        capture_output=True, text=True, env={**ENV, "MLFLOW_TRACKING_URI": ""}, cwd=tmp_path,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "no MLflow database" in done.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow  # about 40 s: a distilled search, then a retraining with its teacher
def test_retraining_a_distilled_candidate_uses_the_search_teacher(tmp_path: Path) -> None:
    root = tmp_path / "search"
    outcome = run_search(
        compose([*FAST, "compress=all", "compress.distill=[true]", "search.n_trials=2",
                 f"search.output_dir={root}"])
    )  # fmt: skip
    assert outcome.exit_code == 0 and outcome.front
    search = Search(root)
    run = search.front()[0]
    params = run.data.params
    assert params["distill"] == "True"
    out = tmp_path / "retrained"
    done = _export(search, run.info.run_id, "--out", str(out), "--retrain-epochs", "1")
    assert done.returncode == 0, done.stderr
    assert "(cached)" in done.stderr  # the search's own teacher, not a new one
    t = json.loads((out / "metrics.json").read_text())["retrain"]
    # the artifact keeps T and alpha rounded to 3 decimals; MLflow has the sampled values
    assert t["distilled"] == {
        "temperature": pytest.approx(float(params["distill_temperature"]), abs=5e-4),
        "alpha": pytest.approx(float(params["distill_alpha"]), abs=5e-4),
    }
    assert not (out / "teachers").exists()
