"""``runner=ray`` settings are checked at start-up: an unreachable cluster or a
malformed setting stops the CLI in seconds with one line, before torch is imported
and before anything is written. (The Ray runner's searches: tests/e2e/test_ray_runner.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas import compose
from nas.config import ConfigError
from nas.runners import RAY_ADDRESS_FORMS

CLI = [sys.executable, "-m", "nas.search"]


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["runner.address=127.0.0.1:1"], {}, "runner.address='127.0.0.1:1' is unreachable"),
        (["runner.address=auto"], {"RAY_ADDRESS": "127.0.0.1:1"}, "is unreachable"),
        (["runner.address=ray://127.0.0.1:10001"], {}, "Ray Client (ray://) is not supported"),
        (["runner.address=nowhere"], {}, "runner.address='nowhere' is not an address"),
        (["runner.max_concurrent=0"], {}, "runner.max_concurrent=0 must be >= 1"),
    ],
)
def test_bad_ray_settings_fail_fast_with_one_line(tmp_path: Path, fast, args, env, says) -> None:
    """An unreachable cluster (or a malformed setting) stops the CLI in seconds with one
    line naming the value and what is allowed; nothing is written."""
    start = time.monotonic()
    p = subprocess.run(
        [*CLI, *fast("runner=ray", "runner.max_concurrent=2", "search.n_trials=2", *args)],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert p.returncode == 2, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], p.stderr
    assert "Traceback" not in p.stderr
    assert elapsed < 15  # checked before torch is imported; the probe waits at most 3 s
    assert not list(tmp_path.glob("*.journal"))


def test_a_malformed_address_names_the_allowed_forms() -> None:
    """The same check in this process: ``nas.compose`` runs the driver's preflight."""
    with pytest.raises(ConfigError) as refused:
        compose(["runner=ray", "runner.address=nowhere"])
    assert RAY_ADDRESS_FORMS in str(refused.value)
