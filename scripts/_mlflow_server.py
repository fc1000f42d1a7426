"""A local ``mlflow server`` for ``scripts/screenshot_mlflow.py``, stopped whatever happens.

Started by ``scripts/mlflow_server.sh --daemon``, the one way this project starts a
tracking server (users, docs/cluster.md and the end-to-end tests use it too), so its
binding to 127.0.0.1, its health wait and its stop are not written twice.

Imported as ``from _mlflow_server import ...`` (``scripts/`` is first on ``sys.path``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["mlflow_server"]

SCRIPT = Path(__file__).resolve().with_name("mlflow_server.sh")
SERVER_START_S = 240  # the script's own health wait, on a busy 2-core machine, and more


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log_path: Path) -> Iterator[str]:
    """A local ``mlflow server`` on a free port of 127.0.0.1, storing runs in
    ``backend_uri`` and artifacts in ``artifacts``; stopped on the way out whatever
    happens, its log copied to ``log_path``."""
    port = _free_port()
    state = log_path.with_name(log_path.stem + "-state")
    script = ["bash", str(SCRIPT)]
    try:
        started = subprocess.run(
            [*script, "--daemon", "--port", str(port), "--dir", str(state),
             "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts)],
            capture_output=True, text=True, timeout=SERVER_START_S,
        )  # fmt: skip
        if started.returncode:
            said = (started.stdout + started.stderr)[-2000:]
            raise RuntimeError(f"mlflow server did not start:\n{said}")
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run([*script, "stop", "--dir", str(state)], capture_output=True, timeout=60)
        if (state / "server.log").exists():
            shutil.copyfile(state / "server.log", log_path)
