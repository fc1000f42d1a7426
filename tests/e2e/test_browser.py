"""The MLflow UI in a real (headless) browser: the front is browsable as the README says.

Starts ``mlflow server`` on 127.0.0.1, runs a short search against it and opens
the experiment in Chromium through selenium. Skipped, with the reason, when
Chromium or its driver is not installed (``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_fixtures import start_mlflow_server
from mlflow.tracking import MlflowClient

from nas import compose
from nas.driver import run_search
from nas.study import runs_url

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Chromium and chromedriver (apt-get install chromium chromium-driver)",
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    # Started by scripts/mlflow_server.sh, as docs/cluster.md tells users to start one.
    with start_mlflow_server(tmp_path / "mlflow-server") as started:
        yield started.uri


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--window-size=1400,900", f"--user-data-dir={tmp_path / 'chrome'}",
    ):  # fmt: skip
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_text(driver, text: str, timeout: float = 40) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: text in d.find_element("tag name", "body").text)


def _expand(driver, parent_name: str, child_name: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    _wait_text(driver, parent_name)
    time.sleep(2)  # the expanded state is remembered across pages: toggle only if collapsed
    if child_name in driver.find_element("tag name", "body").text:
        return
    button = WebDriverWait(driver, 20).until(
        lambda d: d.find_element("css selector", "button[data-component-id*='runnamecellrenderer']")
    )
    button.click()


def test_front_is_browsable_in_the_mlflow_ui(
    tmp_path: Path, server: str, browser, fast, mlflow_runs
) -> None:
    cfg = compose(
        fast(
            "search.n_trials=4",
            f"search.output_dir={tmp_path / 'out'}",
            f"mlflow.tracking_uri={server}",
        )
    )
    outcome = run_search(cfg)
    assert outcome.exit_code == 0
    client = MlflowClient(tracking_uri=server)
    exp = client.get_experiment_by_name("downsize")
    parent = client.get_run(outcome.parent_run_id)
    front = client.search_runs(
        [exp.experiment_id], filter_string="tags.pareto = 'true'", max_results=100
    )
    front_names = sorted(r.info.run_name for r in front)
    children = mlflow_runs(server, "trial")
    assert len(children) == 4 and 1 <= len(front_names) <= 4
    assert front_names == sorted(f"trial-{r['trial']:04d}" for r in outcome.front)

    base = f"{server}/#/experiments/{exp.experiment_id}"
    # The experiment says it holds training runs; MLflow 3.17's UI still opens it on its
    # GenAI overview while its GenAI / Model training switch is on, so the search prints
    # a link that lands on the training runs.
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    browser.get(runs_url(outcome, base=server))
    _wait_text(browser, "Run Name")  # the runs table's header, not the GenAI overview
    _wait_text(browser, parent.info.run_name)
    # The parent run's artifacts list the plot.
    browser.get(f"{base}/runs/{parent.info.run_id}/artifacts")
    _wait_text(browser, "pareto.png")
    _wait_text(browser, "pareto.html")

    # The runs table ("Model training" view): child runs nest under the study's run.
    browser.get(f"{base}/runs")
    _expand(browser, parent.info.run_name, children[0].info.run_name)
    for r in children:
        _wait_text(browser, r.info.run_name)

    # Filtering by tag leaves exactly the front (and the parent it nests under).
    query = urllib.parse.quote("tags.pareto = 'true'")
    browser.get(f"{base}/runs?searchFilter={query}")
    _expand(browser, parent.info.run_name, front_names[0])
    _wait_text(browser, front_names[0])
    body = browser.find_element("tag name", "body").text
    shown = sorted({f"trial-{n:04d}" for n in range(4)} & set(body.split()))
    assert shown == front_names, body[:2000]
    shot = tmp_path / "mlflow_front.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    # The README's screenshots are of a real default run (scripts/screenshot_mlflow.py),
    # not of this smoke search.
