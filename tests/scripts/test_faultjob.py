"""The fault bench's job: the signal dispositions a terminal's job has, whatever the
bench itself was started with."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from _faultjob import Job


class _Probe(Job):
    """A job whose command prints its SIGHUP disposition."""

    def cmd(self) -> list[str]:
        return [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGHUP).name)"]


@pytest.mark.parametrize(("nohup", "hup"), [(False, "SIG_DFL"), (True, "SIG_IGN")])
def test_a_job_gets_sighup_as_nohup_says_though_the_bench_ignores_it(
    tmp_path: Path, nohup: bool, hup: str
) -> None:
    # A bench started under nohup ignores SIGHUP, and a child inherits SIG_IGN: before
    # this, its SIGHUP row saw a search that ran to its end.
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        job = _Probe(tmp_path, []).start(sighup_ignored=nohup)
        assert job.finish(limit=60) == 0
    finally:
        signal.signal(signal.SIGHUP, before)
    assert job.out.strip() == hup
