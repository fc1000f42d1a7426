"""Screenshot the MLflow UI's runs table, filtered to one Pareto front, with metric columns.

Starts ``mlflow server`` on 127.0.0.1 against a tracking database, opens the experiment's
"Model training" runs table in headless Chromium (through selenium), filtered by an
MLflow search filter, with the study's parent run expanded so its ``trial-NNNN`` runs
show, and the given metric keys as columns. Saves a PNG under 300 KB per filter, then
stops the server. For the README's screenshots and for showing two devices' fronts.

    python scripts/screenshot_mlflow.py --backend-store-uri sqlite:////abs/path/mlflow.db \\
        --filter "tags.\\`pareto.mobile\\` = 'true'" \\
        --columns val_accuracy,size_bytes,latency_ms.mobile --out docs/mlflow_mobile.png

    # one PNG per filter: docs/fronts_1.png, docs/fronts_2.png
    python scripts/screenshot_mlflow.py --backend-store-uri sqlite:////abs/path/mlflow.db \\
        --filter "tags.\\`pareto.mobile\\` = 'true'" --filter "tags.\\`pareto.raspi4\\` = 'true'" \\
        --columns val_accuracy,size_bytes,latency_ms.mobile,latency_ms.raspi4 \\
        --out docs/fronts.png

``--filter`` may be repeated. With one ``--out``, the PNGs are named after it with a
suffix ``_1``, ``_2``, ... (one filter: exactly ``--out``); or give ``--out`` once per
filter, in the same order. Dotted tag and metric names need backticks in a filter, as
above. ``--columns`` names metric keys (not params); they show in that order after the
run name and date. Other options: ``--experiment`` (default ``downsize``), ``--width``
and ``--height`` (the viewport, default 1600x900), ``--artifacts-destination`` (the
server's artifact root; default a temporary folder, as the runs table reads no
artifacts). Bad input (no database file, no such experiment, a filter that matches no
run, a metric no matching run logged) exits 2 with one line, before any browser opens.

The server may migrate or write to the database: point it at a copy if that matters.
Needs Chromium and its driver at /usr/bin (``apt-get install chromium chromium-driver``);
they are passed explicitly, as selenium's driver manager would try to download one.

How the columns get there: the runs page keeps its view (selected columns, column
order and widths, expanded runs) in the browser's localStorage, under a key named
after the experiment's id (``MLflowLocalStorage-1.1-ExperimentPage-["<id>"]-
ReactComponentState`` in MLflow 3.17). The script opens the page once so that it writes
that key, writes the view into it from another page of the server, and opens the page
again: the metric columns alone, in order and wide enough, and the parent run expanded.
Should a later MLflow ignore that state, it falls back to ticking the metrics in the
"Columns" menu (the default columns then stay; the grid is scrolled to its end) and to
clicking the parent run's expand button. The "MLflow Assistant" side panel, which opens
itself on a first visit, is marked closed in localStorage too (and closed by its button
if still open).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _mlflow_server import mlflow_server as _mlflow_server

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
MAX_PNG_BYTES = 300_000
PAGE_TIMEOUT_S = 60
# The runs page's persisted view state (MLflow 3.x's LocalStorageStore, version 1.1).
STATE_KEY = "MLflowLocalStorage-1.1-ExperimentPage-{ids}-ReactComponentState"


class BadInput(Exception):
    """A refusal the user can fix: reported in one line, exit status 2."""


@dataclass(frozen=True)
class Shot:
    """One screenshot to take: a filter, what it matched, and where the PNG goes."""

    filter: str
    out: Path
    run_names: list[str]  # newest first, as the UI sorts them by default
    parent_ids: list[str]  # runs to expand so that nested trial runs show
    parent_names: list[str]  # shown above the trials, so the name column must fit them


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Screenshot the MLflow runs table filtered to a Pareto front.",
    )
    p.add_argument("--backend-store-uri", required=True, help="e.g. sqlite:////abs/mlflow.db")
    p.add_argument("--experiment", default="downsize", help="experiment name (downsize)")
    p.add_argument(
        "--filter", action="append", required=True, help="MLflow search filter; repeatable"
    )
    p.add_argument(
        "--columns", required=True, help="comma-separated metric keys to show as columns"
    )
    p.add_argument(
        "--out", action="append", required=True, type=Path, help="PNG path; once or per filter"
    )
    p.add_argument("--width", type=int, default=1600, help="viewport width in pixels")
    p.add_argument("--height", type=int, default=900, help="viewport height in pixels")
    p.add_argument("--artifacts-destination", type=Path, help="server artifact root")
    return p.parse_args(argv)


def _outputs(outs: list[Path], n_filters: int) -> list[Path]:
    """One PNG path per filter: ``--out`` as given, or one ``--out`` with ``_1``, ``_2``..."""
    if len(outs) == n_filters:
        return outs
    if len(outs) == 1:
        out = outs[0]
        return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(1, n_filters + 1)]
    raise BadInput(f"{len(outs)} --out for {n_filters} --filter: give one, or one per filter")


def _check_store(uri: str) -> None:
    # MLflow would silently create an empty database at a mistyped sqlite path.
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise BadInput(f"no database file at {path} (from --backend-store-uri {uri})")


def _plan(args: argparse.Namespace, columns: list[str]) -> tuple[str, list[Shot]]:
    """The experiment's id and the shots, checked against the database before any browser."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).is_file():
            raise BadInput(f"{exe} not found (apt-get install chromium chromium-driver)")
    _check_store(args.backend_store_uri)
    client = MlflowClient(tracking_uri=args.backend_store_uri)
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        raise BadInput(f"no experiment named {args.experiment!r} in {args.backend_store_uri}")
    shots = []
    for filt, out in zip(args.filter, _outputs(args.out, len(args.filter)), strict=True):
        try:
            runs = client.search_runs([exp.experiment_id], filter_string=filt, max_results=1000)
        except MlflowException as e:
            raise BadInput(f"bad filter {filt!r}: {e.message.splitlines()[0]}") from e
        if not runs:
            raise BadInput(f"filter {filt!r} matches no run in experiment {args.experiment!r}")
        logged = set().union(*(r.data.metrics for r in runs))
        missing = [c for c in columns if c not in logged]
        if missing:
            raise BadInput(f"no run matching {filt!r} logged metric(s) {', '.join(missing)}")
        parents = sorted({p for r in runs if (p := r.data.tags.get("mlflow.parentRunId"))})
        shots.append(
            Shot(
                filter=filt,
                out=out,
                run_names=[r.info.run_name or r.info.run_id for r in runs],
                parent_ids=parents,
                parent_names=[client.get_run(p).info.run_name or "" for p in parents],
            )
        )
    return exp.experiment_id, shots


@contextmanager
def _chromium(width: int, height: int, profile: Path) -> Iterator[WebDriver]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--window-size={width},{height}", f"--user-data-dir={profile}",
    ):  # fmt: skip
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    # --window-size counts the (invisible) browser frame: fix the viewport itself, so the
    # PNG is exactly width x height.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        yield driver
    finally:
        driver.quit()


def _col_id(metric: str) -> str:
    """The runs grid's column id for a metric (also its key in the persisted view state)."""
    return f"metrics.`{metric}`"


def _view_state(shot: Shot, columns: list[str]) -> dict[str, Any]:
    """The runs page's persisted view: only our metric columns, in order, wide enough."""
    longest = max(len(n) for n in shot.run_names + shot.parent_names)
    widths: dict[str, int] = {
        # Room for the nesting indent, the expand button and the colour dot before a name.
        "attributes.`Run Name`": min(420, 7 * longest + 110),
        # Values show unrounded (0.8333333134651184): fit ~18 digits or the header.
        **{_col_id(c): 7 * max(len(c), 18) + 40 for c in columns},
    }
    return {
        "searchFilter": shot.filter,
        # Dropping the default Dataset/Source/Models columns leaves the metrics in view.
        "selectedColumns": [_col_id(c) for c in columns],
        "columnOrder": [
            "attributes.`Run Name`",
            "runDateAndNestInfo",
            *map(_col_id, columns),
            "duration",  # always shown: last, where it can fall off the edge
        ],
        "columnWidths": widths,
        "runsExpanded": dict.fromkeys(shot.parent_ids, True),
    }


def _state_keys(driver: WebDriver, url: str, exp_id: str) -> list[str]:
    """The localStorage key(s) the runs page at ``url`` keeps its view under.

    Asked of the page itself (it writes its state on its first load), so a new store
    version in the key's prefix still matches; STATE_KEY when it wrote none.
    """
    driver.get(url)
    _wait(driver, "the runs table", _grid_shown, PAGE_TIMEOUT_S)
    suffix = f"ExperimentPage-{json.dumps([exp_id])}-ReactComponentState"
    keys = driver.execute_script(
        "return Object.keys(localStorage).filter(k => k.endsWith(arguments[0]))", suffix
    )
    return list(keys) or [STATE_KEY.format(ids=json.dumps([exp_id]))]


def _seed_storage(driver: WebDriver, server: str, keys: list[str], state: dict[str, Any]) -> None:
    # Written from another page of the same origin (localStorage is per origin), as the
    # runs page, while open, may write its own state back over ours.
    driver.get(server + "/health")
    driver.execute_script(
        """
        const [keys, state] = arguments;
        for (const key of keys) {
            let old = {};
            try { old = JSON.parse(localStorage.getItem(key)) || {}; } catch (e) {}
            localStorage.setItem(key, JSON.stringify(Object.assign(old, state)));
        }
        // The assistant side panel opens itself on a first visit and takes a third of
        // the width: mark it as already shown, and closed.
        localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
        localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
        localStorage.setItem('mlflow.workflowType_v1', '"machine_learning"');
        """,
        keys,
        state,
    )


def _grid_shown(driver: WebDriver) -> bool:
    return bool(driver.find_elements("css selector", ".ag-header-cell"))


def _wait(
    driver: WebDriver, what: str, cond: Callable[[WebDriver], object], timeout: float
) -> bool:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.5).until(cond)
        return True
    except TimeoutException:
        if what:
            raise RuntimeError(f"the MLflow UI did not show {what} in {timeout:.0f}s") from None
        return False


def _body_text(driver: WebDriver) -> str:
    return str(driver.find_element("tag name", "body").text)


def _has_columns(driver: WebDriver, columns: list[str]) -> bool:
    shown = {
        e.get_attribute("col-id") for e in driver.find_elements("css selector", ".ag-header-cell")
    }
    return all(_col_id(c) in shown for c in columns)


def _add_columns_with_menu(driver: WebDriver, columns: list[str]) -> None:
    """Fallback: tick each metric in the "Columns" menu, as a user would."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    for metric in columns:
        driver.find_element("css selector", "[data-testid=column-selection-dropdown]").click()
        time.sleep(1)
        search = driver.switch_to.active_element  # the menu opens with its search box focused
        search.send_keys(metric)
        time.sleep(1)
        # Matches are highlighted in parts: compare the whole label. Metrics are listed
        # before params and tags, so the first exact label is the metric.
        xpath = f"//span[normalize-space(.)={json.dumps(metric)}]"
        driver.find_element("xpath", xpath).click()
        search.send_keys(Keys.ESCAPE)
        time.sleep(1)
    # The default columns stay: fit each metric column to its values (a double click on
    # a header's resize handle autosizes in ag-grid) and leave the grid scrolled to its
    # end, where the new columns are. Scroll first: a handle off screen takes no click.
    for metric in columns:
        _scroll_grid_to_end(driver)
        cell = driver.find_element(
            "css selector", f".ag-header-cell[col-id={json.dumps(_col_id(metric))}]"
        )
        for handle in cell.find_elements("css selector", ".ag-header-cell-resize"):
            ActionChains(driver).double_click(handle).perform()
    _scroll_grid_to_end(driver)


def _scroll_grid_to_end(driver: WebDriver) -> None:
    time.sleep(1)  # the grid applies new columns and widths on a later frame
    driver.execute_script(
        """
        for (const el of document.querySelectorAll('.ag-body-horizontal-scroll-viewport')) {
            el.scrollLeft = el.scrollWidth;
            el.dispatchEvent(new Event('scroll'));
        }
        """
    )
    time.sleep(0.5)


def _expand_with_button(driver: WebDriver) -> None:
    """Fallback: click the parent run's expand toggle (as tests/e2e/test_browser.py does)."""
    from selenium.webdriver.common.action_chains import ActionChains

    css = "button[data-component-id*='runnamecellrenderer']"
    for button in driver.find_elements("css selector", css):
        button.click()
    # No focus ring or hover icons (pin, ...) on the parent's row in the PNG.
    driver.execute_script("document.activeElement.blur()")
    ActionChains(driver).move_to_element(driver.find_element("tag name", "body")).perform()


def _close_assistant(driver: WebDriver) -> None:
    for button in driver.find_elements(
        "css selector", "button[data-component-id='mlflow.assistant.chat_panel.close']"
    ):
        if button.is_displayed():
            button.click()


def _shoot(
    driver: WebDriver, server: str, exp_id: str, shot: Shot, columns: list[str], work: Path
) -> Path:
    query = urllib.parse.urlencode(
        {"workflowType": "machine_learning", "searchFilter": shot.filter},
        quote_via=urllib.parse.quote,
    )
    url = f"{server}/#/experiments/{exp_id}/runs?{query}"
    keys = _state_keys(driver, url, exp_id)
    _seed_storage(driver, server, keys, _view_state(shot, columns))
    driver.get(url)
    _wait(driver, "the runs table", _grid_shown, PAGE_TIMEOUT_S)
    first = shot.run_names[0]
    if not _wait(driver, "", lambda d: _has_columns(d, columns), 15):
        _add_columns_with_menu(driver, columns)
        _wait(driver, f"the columns {columns}", lambda d: _has_columns(d, columns), 20)
    if not _wait(driver, "", lambda d: first in _body_text(d), 15):
        _expand_with_button(driver)
        _wait(driver, f"run {first}", lambda d: first in _body_text(d), 20)
    _close_assistant(driver)
    time.sleep(2)  # column widths apply after the rows render, and the grid animates
    raw = work / "raw.png"
    driver.save_screenshot(str(raw))
    return _shrink(raw, shot.out)


def _shrink(raw: Path, out: Path) -> Path:
    """Save ``raw`` as a palette PNG under MAX_PNG_BYTES (UI screenshots have few colours)."""
    from PIL import Image

    with Image.open(raw) as im:
        rgb = im.convert("RGB")
    for colors in (128, 64, 32):
        rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=colors).save(out, optimize=True)
        if out.stat().st_size < MAX_PNG_BYTES:
            return out
    raise RuntimeError(
        f"{out} is {out.stat().st_size} bytes even at 32 colours: use a smaller --width/--height"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    try:
        if not columns:
            raise BadInput("--columns names no metric")
        if min(args.width, args.height) < 400:
            raise BadInput(f"a {args.width}x{args.height} viewport is too small for the table")
        exp_id, shots = _plan(args, columns)
    except BadInput as e:
        print(f"screenshot_mlflow: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="screenshot_mlflow-") as tmp:
        work = Path(tmp)
        artifacts = args.artifacts_destination or work / "artifacts"
        try:
            with (
                _mlflow_server(args.backend_store_uri, artifacts, work / "server.log") as server,
                _chromium(args.width, args.height, work / "chrome") as driver,
            ):
                for shot in shots:
                    shot.out.parent.mkdir(parents=True, exist_ok=True)
                    png = _shoot(driver, server, exp_id, shot, columns, work)
                    kb = png.stat().st_size // 1000
                    print(f"{png} ({kb} KB): {len(shot.run_names)} run(s) match {shot.filter}")
        except RuntimeError as e:  # the server or the UI misbehaved: say so, no traceback
            print(f"screenshot_mlflow: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
