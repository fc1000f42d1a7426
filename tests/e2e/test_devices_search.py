"""One search, a front per device (``+hw=[mobile,raspi4,mcu]``), checked through what it
wrote: the Optuna study, the artifacts and the MLflow runs a user filters in the UI.

The budgets are set inside the range the ``tiny`` space spans (mobile: 3,000 bytes;
mcu: 1,500 bytes of int8 activations), so the devices disagree on which candidates
are feasible.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient

from nas import compose
from nas.config import ConfigError
from nas.driver import run_search
from nas.export import export_run
from nas.study import Point, hypervolume, keys, make_storage, pareto_front

pytestmark = pytest.mark.slow

DEVICES = ["mobile", "raspi4", "mcu"]
SPLIT = ("devices.mobile.size_budget_bytes=3000", "devices.mcu.peak_memory_budget_bytes=1500")


class Searched:
    """A finished multi-device search: its overrides, config, outcome and records."""

    def __init__(self, out: Path, overrides: list[str], outcome: Any) -> None:
        self.out, self.overrides, self.outcome = out, overrides, outcome
        self.cfg = compose(overrides)
        storage = make_storage(None, outcome.study_name, out)
        self.study = optuna.load_study(study_name=outcome.study_name, storage=storage)
        self.client = MlflowClient(tracking_uri=outcome.tracking_uri)
        parent = self.client.get_run(outcome.parent_run_id)
        self.parent = parent
        self.experiment = self.client.get_experiment(parent.info.experiment_id)
        self.children = {
            int(r.data.tags[keys.TAG_TRIAL]): r
            for r in self.client.search_runs(
                [parent.info.experiment_id],
                filter_string=f"tags.`{keys.TAG_PARENT}` = '{outcome.parent_run_id}'",
            )
        }

    def filtered(self, device: str) -> set[int]:
        """Trial numbers of the runs the README's filter shows for ``device``."""
        runs = self.client.search_runs(
            [self.experiment.experiment_id],
            filter_string=f"tags.`pareto.{device}` = 'true'",
        )
        return {int(r.data.tags[keys.TAG_TRIAL]) for r in runs}


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory, fast) -> Searched:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("devices")
    overrides = fast("+hw=[mobile,raspi4,mcu]", *SPLIT, "sampler=random", "search.n_trials=10",
                     f"search.output_dir={out}")  # fmt: skip
    outcome = run_search(compose(overrides))
    assert outcome.exit_code == 0 and outcome.n_failed == 0
    return Searched(out, overrides, outcome)


def _on(t: optuna.trial.FrozenTrial, device: str) -> bool:
    per = t.user_attrs.get(keys.DEVICE_CONSTRAINTS, {}).get(device)
    return per is not None and all(v <= 0 for v in per.values())


def test_each_candidate_is_trained_once_and_each_device_gets_its_front(searched: Searched) -> None:
    study, outcome = searched.study, searched.outcome
    assert list(outcome.devices) == DEVICES
    trained = [t for t in study.trials if t.user_attrs.get(keys.FEASIBLE)]
    for t in study.trials:
        feasible_somewhere = any(_on(t, d) for d in DEVICES)
        # Trained (one artifact) exactly when feasible on at least one device.
        assert t.user_attrs[keys.FEASIBLE] is feasible_somewhere
        assert ("artifact" in t.user_attrs) is feasible_somewhere
    assert len({t.user_attrs["artifact"] for t in trained}) == len(trained)
    counts = {d: sum(_on(t, d) for t in trained) for d in DEVICES}
    assert len(set(counts.values())) > 1, f"the budgets should split the devices: {counts}"
    floor = 2 / 10
    for d in DEVICES:
        points = [Point(t.number, t.values[0], t.values[1]) for t in trained if _on(t, d)]
        expected = pareto_front([p for p in points if p.accuracy >= floor])
        part = outcome.devices[d]
        assert [r["trial"] for r in part.front] == [p.number for p in expected]
        assert part.hypervolume == pytest.approx(
            hypervolume([p for p in points if p.accuracy >= floor], ref_accuracy=float(
                searched.cfg.dataset.hv_ref_accuracy), ref_size_bytes=float(
                searched.cfg.dataset.hv_ref_size_bytes))
        )  # fmt: skip
        for r in part.front:
            t = study.trials[r["trial"]]
            size = Path(t.user_attrs["artifact"]).stat().st_size
            assert r["size_bytes"] == size
            budget = searched.cfg.devices[d].size_budget_bytes
            assert budget is None or size <= budget
            m = t.user_attrs[keys.METRICS]
            if d != "mcu":  # the mcu profile has no latency model
                assert r["latency_ms"] == m[f"latency_ms.{d}"]
            assert t.params["bits"] in searched.cfg.devices[d].bits


def test_mlflow_shows_each_devices_front_filterable_in_the_ui(searched: Searched) -> None:
    study, outcome = searched.study, searched.outcome
    assert searched.experiment.tags[keys.TAG_EXPERIMENT_KIND] == "custom_model_development"
    for number, run in searched.children.items():
        t = study.trials[number]
        tags, metrics = run.data.tags, run.data.metrics
        for d in DEVICES:
            assert tags[f"feasible.{d}"] == str(t.user_attrs[keys.FEASIBLE] and _on(t, d)).lower()
        if t.user_attrs[keys.FEASIBLE]:
            assert {"latency_ms.mobile", "latency_ms.raspi4"} <= set(metrics)
    for d in DEVICES:
        assert searched.filtered(d) == {r["trial"] for r in outcome.devices[d].front}
    parent = searched.parent
    names = {a.path for a in searched.client.list_artifacts(parent.info.run_id)}
    for d in DEVICES:
        assert {f"pareto_{d}.csv", f"pareto_{d}.png", f"pareto_{d}.html"} <= names
        assert parent.data.metrics[f"final_hypervolume.{d}"] == pytest.approx(
            outcome.devices[d].hypervolume
        )
        assert parent.data.metrics[f"front_size.{d}"] == len(outcome.devices[d].front)
    assert "pareto_devices.png" in names
    assert parent.data.tags[keys.TAG_DEVICES] == "mobile,raspi4,mcu"
    with_front = _with_front(searched)
    csv = (searched.out / "outputs" / outcome.study_name / f"pareto_{with_front}.csv").read_text()
    assert csv.splitlines()[0].startswith("trial,run_id,val_accuracy,test_accuracy,size_bytes")
    assert len(csv.splitlines()) == 1 + len(outcome.devices[with_front].front)


def _with_front(searched: Searched) -> str:
    """A device whose front has members (a tight budget may leave one empty, or below
    the accuracy floor, on a short search)."""
    found = [d for d in DEVICES if searched.outcome.devices[d].front]
    assert found, "no device has a front member"
    return found[0]


def test_export_picks_from_the_devices_front(searched: Searched, tmp_path: Path) -> None:
    outcome, parent_id = searched.outcome, searched.outcome.parent_run_id
    device = _with_front(searched)
    front = outcome.devices[device].front
    best = max(front, key=lambda r: (r["val_accuracy"], -r["size_bytes"]))
    result = export_run(
        parent_id, tmp_path / device, tracking_uri=outcome.tracking_uri, device=device,
        log=lambda _: None,
    )  # fmt: skip
    assert result.metrics["trial"] == best["trial"]
    assert result.metrics["device"] == device and result.metrics["pareto"] is True
    with pytest.raises(ConfigError, match=r"--device NAME for its best \(mobile's front: "):
        export_run(parent_id, tmp_path / "x", tracking_uri=outcome.tracking_uri)
    with pytest.raises(ConfigError, match="--device nosuch is not a device of the search"):
        export_run(parent_id, tmp_path / "x", tracking_uri=outcome.tracking_uri, device="nosuch")
    shared = [
        n for n, run in searched.children.items()
        if sum(run.data.tags.get(f"pareto.{d}") == "true" for d in DEVICES) > 1
    ]  # fmt: skip
    if shared:  # on several fronts: which device is ambiguous
        run_id = searched.children[shared[0]].info.run_id
        with pytest.raises(ConfigError, match="choose with --device"):
            export_run(run_id, tmp_path / "y", tracking_uri=outcome.tracking_uri)


def test_a_resumed_multi_device_search_continues_its_study(searched: Searched, fast) -> None:  # type: ignore[no-untyped-def]
    again = run_search(compose(fast(*searched.overrides, "search.n_trials=12")))
    assert again.study_name == searched.outcome.study_name and again.exit_code == 0
    assert again.n_trials == 12


def test_a_device_no_candidate_can_serve_gets_an_empty_front_and_the_rest_go_on(
    tmp_path: Path, fast
) -> None:  # type: ignore[no-untyped-def]
    cfg = compose(
        fast("+hw=[mobile,mcu]", "devices.mcu.peak_memory_budget_bytes=10", "sampler=random",
             "search.n_trials=3", f"search.output_dir={tmp_path}")
    )  # fmt: skip
    outcome = run_search(cfg)
    assert outcome.exit_code == 0
    mcu = outcome.devices["mcu"]
    assert mcu.front == [] and "devices.mcu.peak_memory_budget_bytes=10 cannot be met" in (
        mcu.why_empty
    )
    assert outcome.devices["mobile"].front
    parent = MlflowClient(outcome.tracking_uri).get_run(outcome.parent_run_id)
    assert parent.data.tags["front_empty.mcu"] == mcu.why_empty


def test_every_device_impossible_exits_3_with_each_devices_nearest(tmp_path: Path, fast) -> None:  # type: ignore[no-untyped-def]
    overrides = fast(
        "+hw=[mobile,mcu]", "devices.mobile.size_budget_bytes=10",
        "devices.mcu.peak_memory_budget_bytes=10", f"search.output_dir={tmp_path}",
    )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "nas.search", *overrides],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    out = proc.stdout
    assert (
        "mobile: front empty: devices.mobile.size_budget_bytes=10 cannot be met: the "
        "smallest candidate of search_space=tiny" in out
    )
    assert "mcu: front empty: devices.mcu.peak_memory_budget_bytes=10 cannot be met" in out
    assert out.strip().splitlines()[-1] == (
        "Relax the budgets named above or widen the search space."
    )
    assert not (tmp_path / "mlflow.db").exists() and not list(tmp_path.glob("*.journal"))
