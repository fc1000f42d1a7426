"""End-to-end tests: whole searches (in this process or through ``python -m
nas.search``), Ray clusters, a browser on the MLflow UI, PostgreSQL.

Every test here takes from about ten seconds to a few minutes, so every one is
marked ``slow`` (``pytest -m "not slow"`` leaves this folder out), and they run after
the other tests. The real servers of :mod:`cluster_fixtures` are fixtures for every
test of the folder.
"""

from __future__ import annotations

from pathlib import Path

import cluster_fixtures
import pytest

# The session-scoped servers, for every test of this folder (ruff's F811 forbids the
# `from cluster_fixtures import ...` form where an argument shadows the name).
mlflow_server = cluster_fixtures.mlflow_server
postgres_server = cluster_fixtures.postgres_server
ray_cluster = cluster_fixtures.ray_cluster

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark this folder's tests slow, and run them after every other test (so that a
    run with ``-x`` reports a unit test's failure before a long search starts)."""
    # The hook sees the whole session's items, not only this folder's.
    e2e = [item for item in items if HERE in item.path.parents]
    for item in e2e:
        item.add_marker(pytest.mark.slow)
    items[:] = [item for item in items if HERE not in item.path.parents] + e2e
