"""A whole (tiny) ``strategy=supernet`` search: the supernet trains once and is cached,
scored candidates are Optuna trials and the parent run's population table, only the
finalists are child runs and make the front; resuming trains and finalises nothing
again, and a search for another device reuses the cached supernet."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from supernet_configs import assert_finalists_cover_the_sizes, tiny_supernet

from nas import compose
from nas.driver import run_search
from nas.pipeline import feasible_on
from nas.study import keys, make_storage

TINY_SUPERNET = tiny_supernet(n_trials=25, warmup_epochs=0)
TRAINED = "Trained the supernet"


class Search:
    """Searches of the tiny supernet config in one output folder."""

    def __init__(self, out: Path, fast: Callable[..., list[str]]) -> None:
        self.out, self.fast = out, fast

    def run(self, *overrides: str) -> Any:
        cfg = compose(self.fast(*TINY_SUPERNET, f"search.output_dir={self.out}", *overrides))
        outcome = run_search(cfg)
        assert outcome.exit_code == 0 and outcome.n_failed == 0
        return outcome

    def study(self, name: str) -> optuna.Study:
        return optuna.load_study(study_name=name, storage=make_storage(None, name, self.out))

    def supernets(self) -> dict[Path, int]:
        """The cached supernet files and their modification times (ns)."""
        return {p: p.stat().st_mtime_ns for p in (self.out / "outputs" / "supernets").glob("*")
                if p.suffix == ".safetensors"}  # fmt: skip


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory, fast: Callable[..., list[str]]) -> Search:
    return Search(tmp_path_factory.mktemp("supernet_search"), fast)


@pytest.fixture(scope="module")
def first(search: Search) -> Any:
    """The first search (+hw=mobile): it trains and caches the supernet."""
    return search.run("+hw=mobile")


def _finals(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(keys.PHASE) == "final"]


def _children(outcome: Any) -> list[Any]:
    client = MlflowClient(tracking_uri=outcome.tracking_uri)
    experiment = client.get_run(outcome.parent_run_id).info.experiment_id
    return list(
        client.search_runs(
            [experiment], filter_string=f"tags.`{keys.TAG_PARENT}` = '{outcome.parent_run_id}'"
        )
    )


def test_a_supernet_search_scores_in_the_study_and_finalises_the_front(
    search: Search, first: Any
) -> None:
    supernets = search.supernets()
    assert len(supernets) == 1
    assert next(iter(supernets)).name.startswith("supernet_mbconv_")

    study = search.study(first.study_name)
    trials = study.get_trials(deepcopy=False)
    finals = _finals(study)
    scored = [t for t in trials if t.user_attrs.get(keys.PHASE) != "final"]
    assert len(scored) == 25
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(keys.RUN_ID not in t.user_attrs for t in scored)  # scores are not runs
    feasible = [t for t in scored if t.user_attrs[keys.FEASIBLE]]
    assert feasible
    for t in feasible:
        m = t.user_attrs[keys.METRICS]
        assert 0.0 <= m["val_accuracy"] <= 1.0
        assert m["size_bytes"] == m["size_bytes_estimate"]
    # The finalists cover the scored sizes; each re-proposed and trained for real.
    assert_finalists_cover_the_sizes(finals, feasible)
    for t in finals:
        assert t.state == TrialState.COMPLETE and keys.RUN_ID in t.user_attrs
        assert t.params == study.trials[t.user_attrs[keys.FINALIST_OF]].params
        artifact = Path(t.user_attrs[keys.ARTIFACT])
        assert artifact.stat().st_size == t.user_attrs[keys.METRICS]["size_bytes"]

    # Only the finalists are child runs, and only they make the front.
    children = _children(first)
    assert sorted(int(r.data.tags[keys.TAG_TRIAL]) for r in children) == sorted(
        t.number for t in finals
    )
    assert {r.info.status for r in children} == {"FINISHED"}
    assert first.front and {row["trial"] for row in first.front} <= {t.number for t in finals}

    # The parent run holds the population.
    client = MlflowClient(tracking_uri=first.tracking_uri)
    parent = client.get_run(first.parent_run_id)
    names = {a.path for a in client.list_artifacts(first.parent_run_id)}
    assert {"population.csv", "population.png", "pareto.csv"} <= names
    metrics = parent.data.metrics
    assert metrics["n_scored"] == len(feasible) == first.population["n_scored"]
    assert metrics["n_finalised"] == len(finals)
    tau = first.population["kendall_tau_finalists"]
    if math.isfinite(tau):
        assert metrics["kendall_tau_finalists"] == pytest.approx(tau)
    else:  # nan (fewer than two finalists, or ties) is not logged
        assert "kendall_tau_finalists" not in metrics
    csv = search.out / "outputs" / first.study_name / "population.csv"
    assert len(csv.read_text().strip().splitlines()) == 1 + len(scored)


def test_a_resumed_search_trains_and_finalises_nothing_again(
    search: Search, first: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = search.supernets()
    finals_before = [t.number for t in _finals(search.study(first.study_name))]
    capsys.readouterr()

    again = search.run("+hw=mobile")

    assert again.study_name == first.study_name
    assert TRAINED not in capsys.readouterr().err
    assert search.supernets() == before  # the same file, untouched
    study = search.study(again.study_name)
    assert [t.number for t in _finals(study)] == finals_before
    assert len(study.trials) == 25 + len(finals_before)
    assert len(_children(again)) == len(finals_before)


def test_a_search_for_another_device_reuses_the_cached_supernet(
    search: Search, first: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = search.supernets()
    capsys.readouterr()

    # Another device narrows the bit-widths (raspi4: 8 and 32) and the budgets; the
    # finalists and the trial budget are not part of what the supernet trained.
    other = search.run("+hw=raspi4", "search.n_trials=6", "strategy.finalists=1")

    assert other.study_name != first.study_name
    assert TRAINED not in capsys.readouterr().err
    assert search.supernets() == before  # no new supernet file, the old one untouched
    study = search.study(other.study_name)
    scored = [t for t in study.trials if t.user_attrs.get(keys.PHASE) != "final"]
    assert len(scored) == 6
    assert {t.user_attrs[keys.COMPRESSION]["bits"] for t in scored} <= {8, 32}


def test_a_multi_device_search_finalises_candidates_of_each_device(
    search: Search, first: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """One scoring pass serves every device; the finalists are drawn from each device's
    feasible candidates in turn, and each device's reported front is finalised trials only.
    The cached supernet is reused: a device's front costs only its members' fine-tuning."""
    before = search.supernets()
    capsys.readouterr()
    devices = ["mobile", "raspi4", "mcu"]
    outcome = search.run(
        "+hw=[mobile,raspi4,mcu]", "search.n_trials=12", "strategy.finalists=3",
        "strategy.max_finalists=3",
    )  # fmt: skip
    assert TRAINED not in capsys.readouterr().err and search.supernets() == before
    assert list(outcome.devices) == devices
    study = search.study(outcome.study_name)
    finals = _finals(study)
    assert 1 <= len(finals) <= 3
    scored = {t.number: t for t in study.trials if t.user_attrs.get(keys.PHASE) != "final"}
    on = {
        d: {n for n, t in scored.items() if t.user_attrs[keys.FEASIBLE]
            and d in feasible_on(t.user_attrs.get(keys.DEVICE_CONSTRAINTS) or {})}
        for d in devices
    }  # fmt: skip
    for t in finals:
        origin = t.user_attrs[keys.FINALIST_OF]
        assert origin in scored and any(origin in o for o in on.values())
    final_numbers = {t.number for t in finals}
    for d in devices:
        assert {r["trial"] for r in outcome.devices[d].front} <= final_numbers
    # Each device with feasible candidates got a finalist of them (3 finalists, 3 devices).
    for d in devices:
        if on[d]:
            assert any(t.user_attrs[keys.FINALIST_OF] in on[d] for t in finals), d


def test_an_adaptive_package_of_the_search_switches_its_points_in_a_fresh_process(
    first: Any, tmp_path: Path
) -> None:
    """``nas.export --adaptive``: a nested chain of the scored candidates in one file,
    each point's own artifact and ONNX file beside it; a fresh process that loads the
    package runs each point as the export derived and scored it."""
    import json
    import subprocess
    import sys

    import numpy as np

    from nas.export import export_adaptive

    out = tmp_path / "adaptive"
    r = export_adaptive(first.parent_run_id, out, tracking_uri=first.tracking_uri, log=print)
    # 25 random candidates may hold no nested chain: then the front's spread, said so.
    assert 3 <= len(r["points"]) <= 6
    assert r["package_bytes"] == (out / "adaptive.dsza").stat().st_size
    own = [p["size_bytes"] for p in r["points"]]
    assert own == [(out / "points" / f"{p['name']}.dsz").stat().st_size for p in r["points"]]
    assert r["package_bytes_ratio"] == pytest.approx(r["package_bytes"] / max(own))
    assert r["sum_separate_bytes"] == sum(own)
    assert all((out / "onnx" / f"{p['name']}.onnx").is_file() for p in r["points"])
    assert json.loads((out / "adaptive.json").read_text()) == json.loads(json.dumps(r))
    assert r["points_accuracy_match"] == (r["max_diff_val_images"] <= 1)
    trials = [p["info"]["trial"] for p in r["points"]]
    assert r["points"][-1]["latency_ms"].keys() == {"mobile"}

    x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np, torch; from search_spaces import AdaptiveModel\n"
        f"m = AdaptiveModel.load({str(out / 'adaptive.dsza')!r}); x = torch.from_numpy("
        f"np.load({str(tmp_path / 'x.npy')!r}))\n"
        "outs = []\n"
        "for p in m.points:\n"
        "    m.switch(p); outs.append(m(x).detach().numpy())\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, np.stack(outs))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    fresh = np.load(tmp_path / "y.npy")
    from search_spaces import AdaptiveModel

    model = AdaptiveModel.load(out / "adaptive.dsza")
    import torch

    for i, p in enumerate(model.points):
        assert p.info["trial"] == trials[i]
        with torch.no_grad():
            np.testing.assert_allclose(fresh[i], model.derive(p)(torch.from_numpy(x)).numpy(),
                                       rtol=0, atol=1e-5)  # fmt: skip
