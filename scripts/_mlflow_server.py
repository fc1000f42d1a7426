"""A local ``mlflow server`` for ``scripts/screenshot_mlflow.py``, stopped whatever happens.

Imported as ``from _mlflow_server import ...`` (``scripts/`` is first on ``sys.path``).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["mlflow_server"]

SERVER_START_S = 120  # a busy 2-core machine takes a while to import mlflow's server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log_path: Path) -> Iterator[str]:
    """A local ``mlflow server`` on a free port, stopped on the way out whatever happens."""
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    cmd = [
        str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts),
    ]  # fmt: skip
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        uri = f"http://127.0.0.1:{port}"
        try:
            end = time.monotonic() + SERVER_START_S
            while True:
                try:
                    urllib.request.urlopen(uri + "/health", timeout=2).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > end:
                        tail = log_path.read_text()[-2000:]
                        raise RuntimeError(f"mlflow server did not start:\n{tail}") from None
                    time.sleep(0.5)
            yield uri
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
