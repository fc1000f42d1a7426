"""Real servers for the distributed tests: a local multi-node Ray cluster, an MLflow
tracking server and a throwaway PostgreSQL cluster. Not a test file: tests/e2e's
conftest makes its fixtures available to every test of that folder; elsewhere, import
them into a test module (pyproject puts tests/e2e on ``sys.path``)::

    import cluster_fixtures

    ray_cluster = cluster_fixtures.ray_cluster  # the fixture, for this module's tests

(an assignment rather than ``from cluster_fixtures import ray_cluster``, which ruff
reports as F811 where a test's argument of that name shadows the import).

Fixtures (all session-scoped, so one server serves every test of a run that asks):

- ``ray_cluster`` -> :class:`RayCluster`: ``scripts/ray_cluster.sh up`` with a head and
  2 worker nodes of 1 CPU each (``@pytest.mark.parametrize("ray_cluster", [3],
  indirect=True)`` for another number of workers); ``.address`` ("IP:PORT"), ``.env``
  (the variables a driver needs: RAY_ADDRESS, RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH;
  merge into ``os.environ`` for subprocesses, or use :meth:`RayCluster.environ`),
  ``.workers``, ``.dir``. ``scripts/ray_cluster.sh down`` afterwards.
- ``mlflow_server`` -> :class:`MlflowServer`: ``scripts/mlflow_server.sh --daemon`` on
  a free port of 127.0.0.1, SQLite store in a tmp dir; ``.uri`` ("http://127.0.0.1:PORT",
  for ``mlflow.tracking_uri=``), ``.dir``. Stopped afterwards.
- ``postgres_server`` -> :class:`PostgresServer`: ``initdb`` + ``pg_ctl`` in a tmp dir,
  on 127.0.0.1 at a free port, password auth, one database; ``.url``
  ("postgresql+psycopg2://downsize@127.0.0.1:PORT/optuna", for ``search.storage=``; the
  password comes from a libpq password file the fixture names in ``os.environ
  ["PGPASSFILE"]``, so it stays out of what nas.search logs), ``.env``,
  ``.new_database(name)`` -> the URL of a fresh, empty database. Skips when PostgreSQL
  is not installed.

The same servers as context managers, for other scopes: :func:`start_ray_cluster`,
:func:`start_mlflow_server`, :func:`start_postgres`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"

__all__ = [
    "MlflowServer",
    "PostgresServer",
    "RayCluster",
    "free_port",
    "kill_worker_node",
    "mlflow_server",
    "postgres_server",
    "ray_cluster",
    "start_mlflow_server",
    "start_postgres",
    "start_ray_cluster",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None, **kw):
    """Run a command; on failure raise with its output (pytest shows it)."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if p.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} exited {p.returncode}\n"
            f"--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}"
        )
    return p


# ---------------------------------------------------------------------------- Ray


@dataclass
class RayCluster:
    address: str
    """GCS address "IP:PORT" (what RAY_ADDRESS holds; ``runner.address=auto`` finds it)."""
    env: dict[str, str]
    """What a driver needs: RAY_ADDRESS, RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH."""
    workers: int
    dir: Path
    """The script's state directory (--dir): nodes, logs/, auth_token, env."""
    killed: set[int] = field(default_factory=set)

    def environ(self, **extra: str) -> dict[str, str]:
        """os.environ plus what a driver of this cluster needs (for subprocess env=)."""
        return {**os.environ, **self.env, **extra}

    def script(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return _run(
            ["bash", str(SCRIPTS / "ray_cluster.sh"), *args, "--dir", str(self.dir)],
            timeout=timeout,
        )


def _parse_env(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            env[key] = value
    return env


@contextlib.contextmanager
def start_ray_cluster(
    workers: int = 2, cpus_per_node: int = 1, head_cpus: int | None = None
) -> Iterator[RayCluster]:
    """A head and ``workers`` worker nodes on this machine; torn down on exit."""
    if shutil.which("setsid") is None or shutil.which("pgrep") is None:
        pytest.skip("scripts/ray_cluster.sh needs setsid and pgrep (util-linux, procps)")
    state = Path(tempfile.mkdtemp(prefix="ray-cluster-"))
    args = ["--workers", str(workers), "--cpus-per-node", str(cpus_per_node)]
    if head_cpus is not None:
        args += ["--head-cpus", str(head_cpus)]
    # A token of its own, in the state dir, whatever the caller's environment holds.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    try:
        _run(
            ["bash", str(SCRIPTS / "ray_cluster.sh"), "up", *args, "--dir", str(state)],
            timeout=60 + 45 * workers,
            env=clean,
        )
        env = _parse_env((state / "env").read_text())
        cluster = RayCluster(env["RAY_ADDRESS"], env, workers, state)
        yield cluster
    finally:
        subprocess.run(
            ["bash", str(SCRIPTS / "ray_cluster.sh"), "down", "--dir", str(state)],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(state, ignore_errors=True)


def kill_worker_node(cluster: RayCluster, index: int) -> None:
    """SIGKILL worker node ``index`` (1..workers): its raylet, object store, agents and
    worker processes, all at once, as when a machine dies. Ray's GCS marks the node dead
    when its health checks fail (about 15 s here); tasks and actors on it fail with
    node-died errors."""
    if not 1 <= index <= cluster.workers:
        raise ValueError(f"worker index {index} is not in 1..{cluster.workers}")
    cluster.script("kill-node", str(index), timeout=30)
    cluster.killed.add(index)


@pytest.fixture(scope="session")
def ray_cluster(request) -> Iterator[RayCluster]:
    with start_ray_cluster(workers=getattr(request, "param", 2)) as cluster:
        yield cluster


# ------------------------------------------------------------------------- MLflow


@dataclass
class MlflowServer:
    uri: str
    """http://127.0.0.1:PORT, for mlflow.tracking_uri= and MlflowClient(tracking_uri=)."""
    port: int
    dir: Path
    """State directory: mlflow.db, artifacts/, server.log, server.pid."""

    def __str__(self) -> str:
        return self.uri


@contextlib.contextmanager
def start_mlflow_server(state: Path | None = None) -> Iterator[MlflowServer]:
    """An MLflow tracking server on 127.0.0.1 at a free port; stopped on exit."""
    own = state is None
    state = Path(tempfile.mkdtemp(prefix="mlflow-server-")) if state is None else state
    script = ["bash", str(SCRIPTS / "mlflow_server.sh")]
    port = free_port()
    try:
        _run([*script, "--daemon", "--port", str(port), "--dir", str(state)], timeout=200)
        yield MlflowServer(f"http://127.0.0.1:{port}", port, state)
    finally:
        subprocess.run([*script, "stop", "--dir", str(state)], capture_output=True, timeout=60)
        if own:
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MlflowServer]:
    with start_mlflow_server() as server:
        yield server


# ----------------------------------------------------------------------- Postgres


def find_postgres_bin() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: on PATH, else Debian's
    /usr/lib/postgresql/<version>/bin (newest), which Debian does not put on PATH."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        real = Path(found).resolve().parent
        if (real / "postgres").exists():
            return real
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    data_dir: Path

    passfile: Path
    """A libpq password file for this server; the fixture points PGPASSFILE at it."""

    def url_for(self, database: str, *, with_password: bool = False) -> str:
        auth = f"{self.user}:{self.password}" if with_password else self.user
        return f"postgresql+psycopg2://{auth}@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the default database (for search.storage= and Optuna), without
        the password: libpq reads it from PGPASSFILE, which the fixture sets in os.environ
        (so subprocesses inherit it). Keeps the password out of the config that
        ``nas.search`` logs to MLflow."""
        return self.url_for(self.database)

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach the server with :attr:`url`."""
        return {"PGPASSFILE": str(self.passfile)}

    def __str__(self) -> str:
        return self.url

    def new_database(self, name: str | None = None) -> str:
        """Create an empty database and return its URL (one per test keeps tests apart)."""
        import psycopg2

        name = name or f"db_{secrets.token_hex(4)}"
        conn = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            dbname="postgres",
        )  # fmt: skip
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url_for(name)


@contextlib.contextmanager
def start_postgres(database: str = "optuna") -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 at a free port; removed on exit.

    PostgreSQL refuses to run as root: as root, initdb and the server run as the
    ``postgres`` user (created by Debian's package), in a directory made for it.
    """
    bindir = find_postgres_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin); "
            "`bash scripts/setup.sh --dev` installs it as root on Debian"
        )
    run_as: dict = {}
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    # Under /tmp with a short path: the unix socket path must stay under 108 bytes, and
    # pytest's root-owned 0700 tmp dirs are closed to the postgres user.
    root = Path(tempfile.mkdtemp(prefix="pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    password = secrets.token_hex(16)
    (root / "pw").write_text(password + "\n")
    if run_as:
        for p in (root, sock, root / "pw"):
            os.chown(p, run_as["user"], run_as["group"])
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    if run_as:
        env["HOME"] = str(root)
    port = free_port()
    user = "downsize"
    started = False
    try:
        _run(
            [
                str(bindir / "initdb"), "-D", str(data), "-U", user, "--pwfile", str(root / "pw"),
                "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8",
                "--locale=C", "--no-sync",
            ],
            timeout=120, env=env, cwd=root, **run_as,
        )  # fmt: skip
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        )
        _run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
             "-w", "-t", "60", "start"],
            timeout=90, env=env, cwd=root, **run_as,
        )  # fmt: skip
        started = True
        passfile = Path(tempfile.mkdtemp(prefix="pgpass-")) / "pgpass"
        passfile.write_text(f"127.0.0.1:{port}:*:{user}:{password}\n")
        passfile.chmod(0o600)  # libpq ignores a password file others can read
        server = PostgresServer("127.0.0.1", port, user, password, database, data, passfile)
        server.new_database(database)
        yield server
    finally:
        if started:
            subprocess.run(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True, timeout=60, env=env, cwd=root, **run_as,
            )  # fmt: skip
            _wait_gone(data / "postmaster.pid")
        shutil.rmtree(root, ignore_errors=True)
        if started:
            shutil.rmtree(passfile.parent, ignore_errors=True)


def _wait_gone(pidfile: Path, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while pidfile.exists() and time.monotonic() < end:
        time.sleep(0.1)
    if pidfile.exists():  # pg_ctl could not stop it: kill the postmaster
        with contextlib.suppress(Exception):
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with start_postgres() as server:
        before = os.environ.get("PGPASSFILE")
        os.environ.update(server.env)
        try:
            yield server
        finally:
            if before is None:
                os.environ.pop("PGPASSFILE", None)
            else:
                os.environ["PGPASSFILE"] = before
