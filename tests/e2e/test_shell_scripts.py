"""scripts/mlflow_server.sh and scripts/ray_cluster.sh against the real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import cluster_fixtures
import pytest
from cluster_fixtures import kill_worker_node, start_mlflow_server, start_ray_cluster


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                found.add(addr)
    return found


@pytest.mark.slow
def test_mlflow_server_binds_loopback_answers_and_stops(tmp_path: Path) -> None:
    with start_mlflow_server(tmp_path / "srv") as server:
        with urllib.request.urlopen(server.uri + "/health", timeout=10) as r:
            assert r.status == 200
        # 127.0.0.1 only ("0100007F" in /proc/net/tcp), not 0.0.0.0 or another interface
        assert _listening_addresses(server.port) == {"0100007F"}
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=server.uri)
        exp = client.create_experiment("scripts-test")
        run = client.create_run(exp)
        client.log_metric(run.info.run_id, "m", 1.0)
        (tmp_path / "a.txt").write_text("artifact")
        client.log_artifact(run.info.run_id, str(tmp_path / "a.txt"))  # proxied over HTTP
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["a.txt"]
        assert (server.dir / "mlflow.db").exists()
        assert list((server.dir / "artifacts").rglob("a.txt"))
        pid = int((server.dir / "server.pid").read_text())
    assert not (server.dir / "server.pid").exists()
    assert not _listening_addresses(server.port)
    assert not Path(f"/proc/{pid}").exists()


DRIVER = textwrap.dedent(
    """
    import json, os, time
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
    nodes = [n for n in ray.nodes() if n["Alive"]]

    @ray.remote(num_cpus=1)
    def where():
        return ray.get_runtime_context().get_node_id()

    ran_on = ray.get([
        where.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote()
        for n in nodes
    ])
    head = [n["NodeID"] for n in nodes if "node:__internal_head__" in n["Resources"]]
    print(json.dumps({"nodes": [n["NodeID"] for n in nodes], "ran_on": ran_on, "head": head}))
    """
)

WAIT_DEAD = textwrap.dedent(
    """
    import json, sys, time
    import ray

    ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        if len(alive) == int(sys.argv[2]):
            break
        time.sleep(0.5)
    dead = [n["NodeID"] for n in ray.nodes() if not n["Alive"]]
    print(json.dumps({"alive": alive, "dead": dead}))
    """
)


def _driver(cluster, code: str, *args: str) -> dict:
    p = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=cluster.environ(),
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def _ours(tmp_root: str) -> list[str]:
    """Processes whose command line names the cluster's Ray temp dir."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if tmp_root.encode() in (d / "cmdline").read_bytes():
                    pids.append(d.name)
            except OSError:
                pass
    return pids


@pytest.mark.slow
def test_ray_cluster_has_three_nodes_survives_a_node_kill_and_goes_down() -> None:
    with start_ray_cluster(workers=2) as cluster:
        tmp_root = (cluster.dir / "tmpdir").read_text().strip()
        assert _ours(tmp_root)
        assert cluster.env["RAY_AUTH_MODE"] == "token"
        assert Path(cluster.env["RAY_AUTH_TOKEN_PATH"]).stat().st_mode & 0o077 == 0

        seen = _driver(cluster, DRIVER)
        assert len(seen["nodes"]) == 3
        assert seen["ran_on"] == seen["nodes"]  # a task ran on each node

        # Without the token, the cluster refuses a driver.
        env = {k: v for k, v in cluster.environ().items() if not k.startswith("RAY_AUTH")}
        env["RAY_AUTH_MODE"] = "token"
        env["RAY_AUTH_TOKEN"] = "0" * 64
        p = subprocess.run(
            [sys.executable, "-c", "import ray; ray.init(address='auto')"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert p.returncode != 0

        t0 = time.monotonic()
        kill_worker_node(cluster, 1)
        after = _driver(cluster, WAIT_DEAD, "90", "2")
        print(f"node marked dead after {time.monotonic() - t0:.1f} s")
        assert len(after["alive"]) == 2 and len(after["dead"]) == 1
        assert len(seen["head"]) == 1 and after["dead"][0] != seen["head"][0]  # a worker died
        status = cluster.script("status").stdout
        assert "w1: stopped" in status and "w2: running" in status and "head: running" in status
    assert not _ours(tmp_root)  # `down` left none of our processes
    assert not Path(tmp_root).exists()


def test_scripts_print_usage_and_refuse_unknown_arguments() -> None:
    for script in ("mlflow_server.sh", "ray_cluster.sh"):
        path = cluster_fixtures.SCRIPTS / script
        assert os.access(path, os.X_OK)
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
        ok = subprocess.run([str(path), "--help"], capture_output=True, text=True)
        assert ok.returncode == 0 and "usage" not in ok.stderr.lower()
        assert script in ok.stdout
        bad = subprocess.run([str(path), "start", "--bogus"], capture_output=True, text=True)
        assert bad.returncode == 2 and "--bogus" in bad.stderr
