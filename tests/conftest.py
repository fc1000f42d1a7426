"""Shared test setup: small thread counts, so the suite behaves on 2 cores; the
overrides of a fast search; and a reader of the MLflow runs a search wrote.

Fixtures:

- ``fast`` -> ``fast(*overrides)``: the overrides of a search that takes seconds
  (:data:`FAST_SEARCH`: ``digits``, the ``tiny`` space, one epoch, no progress bar,
  no time limit) followed by ``overrides``; an override of a key already there
  replaces it, since Hydra refuses a key given twice.
- ``mlflow_runs`` -> ``mlflow_runs(where, role=None, *, experiment="downsize")``: the
  runs of ``experiment``, those of one ``nas.role`` (``"search"`` for the parent run,
  ``"trial"`` for the child runs) when ``role`` is given, [] when the experiment does
  not exist yet. ``where`` is a tracking URI, or the output folder whose
  ``mlflow.db`` a search wrote (its default tracking store).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Keep MLflow from probing the network or nagging during tests.
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

FAST_SEARCH = (
    "dataset=digits",
    "search_space=tiny",
    "train.epochs=1",
    "compress.finetune_epochs=1",
    "search.progress=false",
    "search.timeout_s=null",
)
"""A search of a few seconds a trial: the ``digits`` data, the ``tiny`` space, one epoch."""


def fast_overrides(*overrides: str) -> list[str]:
    """:data:`FAST_SEARCH`, then ``overrides``; a key given again replaces the earlier one."""
    merged: dict[str, str] = {}
    for override in (*FAST_SEARCH, *overrides):
        merged[override.split("=", 1)[0].lstrip("+~")] = override
    return list(merged.values())


def tracking_uri(where: str | Path) -> str:
    """A tracking URI as it is, or the SQLite store a search writes in the folder ``where``."""
    return where if isinstance(where, str) else f"sqlite:///{Path(where) / 'mlflow.db'}"


def list_runs(
    where: str | Path, role: str | None = None, *, experiment: str = "downsize"
) -> list[Any]:
    """The MLflow runs of ``experiment`` (of one ``nas.role`` when ``role`` is given)."""
    from mlflow.tracking import MlflowClient

    from nas.study import keys

    client = MlflowClient(tracking_uri=tracking_uri(where))
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    filter_string = f"tags.`{keys.TAG_ROLE}` = '{role}'" if role else ""
    return list(
        client.search_runs([exp.experiment_id], filter_string=filter_string, max_results=1000)
    )


@pytest.fixture(scope="session")
def fast() -> Callable[..., list[str]]:
    """``fast(*overrides)``: the overrides of a fast search (see :func:`fast_overrides`)."""
    return fast_overrides


@pytest.fixture(scope="session")
def mlflow_runs() -> Callable[..., list[Any]]:
    """``mlflow_runs(where, role=None, *, experiment="downsize")`` (see :func:`list_runs`)."""
    return list_runs
