"""Peak memory of a search streamed from an image folder, over its whole process tree.

    python scripts/bench_stream.py [--folder /tmp/imagefolder50k] [--make] [--workdir DIR]
        [--out docs/bench/stream.json] [--interval 0.2] [KEY=VALUE ...]
    python scripts/bench_stream.py --out /tmp/x.json --command "python -c 'import time'"

Issue 16's memory target: a search of a 50,000-image, 64 px folder
(``scripts/make_imagefolder.py``; ``--make`` writes it first if it is missing) with 2
trials of 1 epoch each in the ``tiny`` space keeps the peak RSS of the whole process
tree (driver, DataLoader workers, evaluator) under 2 GB. The default command is::

    python -m nas.search dataset=imagefolder dataset.root=FOLDER search_space=tiny
        search.n_trials=2 train.epochs=1 compress.finetune_epochs=0
        search.timeout_s=null search.trial_timeout_s=null search.min_accuracy=0
        search.progress=false search.study_name=bench-stream

(no ``hw`` profile, so every trial trains; no fine-tuning epoch after compression, so
a trial is exactly one epoch; no time limits, so both trials run whatever their speed;
no accuracy floor, so a 1-epoch front is not refused) plus any ``KEY=VALUE`` given. It
runs in ``--workdir`` (default: a temporary directory, removed after), where the
search writes ``mlflow.db`` and ``outputs/``; its output goes to ``search.log`` there.

Every ``--interval`` seconds the sampler walks ``/proc`` for the command's process and
all its descendants and reads each one's RSS (``/proc/PID/statm``) and PSS
(``/proc/PID/smaps_rollup``: shared pages divided among the processes mapping them,
so the DataLoader workers' copy-on-write pages of the driver are not counted twice;
RSS does count them in every process). It reads ``/proc`` directly, as psutil would
on Linux (psutil is not a dependency of the project); processes it may not read or
that end mid-sample are skipped. Roles:

- ``driver``: the command's process (Hydra, the sampler, the trials of runner=local);
- ``evaluator``: the driver's earliest-started ``multiprocessing`` spawn child (the
  artifact evaluator, ``nas.pipeline``'s ArtifactEvaluator, spawned once per search);
- ``loader_workers``: the driver's other children (forked DataLoader workers carry the
  driver's command line; spawned ones, ``spawn_main``);
- ``evaluator_workers``: descendants of the evaluator (its own loader workers);
- ``mp_helpers``: multiprocessing's resource tracker and forkserver;
- ``other``: anything else below the driver.

The record has the peaks of the summed RSS and PSS over the tree (at one sample), of
the process count, per role the same three, the largest single process's RSS, the
kernel's peak RSS of the largest waited-for descendant (``getrusage``, which a short
spike between samples cannot escape), a timeline (at most 300 points), the wall time
and exit code, the command, the folder, the machine and the commit; ``target`` says
whether the peak summed RSS stayed under ``--limit-gb`` GB (10^9 bytes) with exit 0.
A peak shorter than the interval can be missed by the sums; RSS sums overstate the
tree's footprint (shared pages counted per process), PSS sums are the fair figure.
Exit status: 0 target met, 1 missed, else the command's own non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "scripts") not in sys.path:  # loaded by path (the tests): its sibling below
    sys.path.insert(0, str(REPO / "scripts"))

from _bench import Bench, abs_path  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
ROLES = ("driver", "evaluator", "loader_workers", "evaluator_workers", "mp_helpers", "other")
TIMELINE_POINTS = 300


def default_command(folder: Path, overrides: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "nas.search", "dataset=imagefolder", f"dataset.root={folder}",
        "search_space=tiny", "search.n_trials=2", "train.epochs=1",
        "compress.finetune_epochs=0", "search.timeout_s=null", "search.trial_timeout_s=null",
        "search.min_accuracy=0", "search.progress=false", "search.study_name=bench-stream",
        *overrides,
    ]  # fmt: skip


# --- /proc ---------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of ``pid``, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()  # after the command name, which may hold spaces
    return int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _rss(pid: int) -> tuple[int, int] | None:
    """(RSS, its anonymous part) of ``pid`` in bytes, from /proc/PID/status."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "RssAnon:")):
                    found[line.split(":")[0]] = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    if "VmRSS" not in found:  # a zombie has no memory lines
        return None
    return found["VmRSS"], found.get("RssAnon", 0)


def _pss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def tree(root: int) -> dict[int, tuple[int, int]]:
    """``root`` and its descendants: pid -> (parent pid, start time)."""
    stats: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                stats[int(name)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, tuple[int, int]] = {}
    todo = [root] if root in stats else []
    while todo:
        pid = todo.pop()
        found[pid] = stats[pid]
        todo.extend(children.get(pid, ()))
    return found


def roles(root: int, procs: dict[int, tuple[int, int]], cmdlines: dict[int, str]) -> dict[int, str]:
    """Each process's role (the module docstring lists them)."""
    spawned = [p for p, (pp, _) in procs.items()
               if pp == root and "spawn_main" in cmdlines[p]]  # fmt: skip
    evaluator = min(spawned, key=lambda p: procs[p][1]) if spawned else None
    out: dict[int, str] = {}
    for pid, (ppid, _) in procs.items():
        cmd = cmdlines[pid]
        if pid == root:
            out[pid] = "driver"
        elif "multiprocessing.resource_tracker" in cmd or "forkserver" in cmd:
            out[pid] = "mp_helpers"
        elif pid == evaluator:
            out[pid] = "evaluator"
        elif ppid == root:
            out[pid] = "loader_workers"
        else:
            out[pid] = "other"
    for pid in procs:  # below the evaluator, at any depth
        p = procs[pid][0]
        while p in procs and p != root:
            if p == evaluator:
                out[pid] = "evaluator_workers"
                break
            p = procs[p][0]
    return out


def sample(root: int, cmdlines: dict[int, str]) -> dict[int, dict[str, Any]]:
    """One reading of the tree: pid -> role, rss, anon, pss (bytes; pss None if unreadable)."""
    procs = tree(root)
    for pid in procs:
        if pid not in cmdlines:  # a process keeps its command line (ours exec nothing later)
            cmdlines[pid] = _cmdline(pid)
    role = roles(root, procs, cmdlines)
    out = {}
    for pid in procs:
        mem = _rss(pid)
        if mem is not None:
            out[pid] = {"role": role[pid], "rss": mem[0], "anon": mem[1], "pss": _pss(pid)}
    return out


# --- measurement ---------------------------------------------------------------------


def measure(
    cmd: list[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    interval: float = 0.2,
    log: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``cmd`` and sample its process tree every ``interval`` s until it exits.

    Returns ``returncode``, ``wall_s``, ``samples``, ``peak_rss_bytes`` and
    ``peak_pss_bytes`` (largest sums over the tree at one sample), ``peak_anon_bytes``
    (the same for RSS's anonymous part: heap and tensors, not mapped files), ``peak_procs``,
    ``max_process_rss_bytes`` (largest single process), ``roles`` (per role: peak
    summed RSS, anonymous RSS and PSS and peak count), ``rusage_max_child_rss_bytes`` (the kernel's
    peak RSS of the largest waited-for descendant of this process so far, so of the
    whole Python process's children) and ``timeline`` ([seconds, rss, pss, procs]).
    """
    peaks: dict[str, Any] = {"rss": 0, "anon": 0, "pss": 0, "procs": 0, "proc_rss": 0}
    by_role = {
        r: {"peak_rss_bytes": 0, "peak_anon_bytes": 0, "peak_pss_bytes": 0, "peak_procs": 0}
        for r in ROLES
    }
    timeline: list[list[float]] = []
    cmdlines: dict[int, str] = {}
    out = open(log, "w") if log else subprocess.DEVNULL
    start = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        n = 0
        while True:
            done = proc.poll() is not None
            snap = sample(proc.pid, cmdlines) if not done else {}
            if snap:
                n += 1
                _accumulate(snap, peaks, by_role)
                timeline.append([
                    round(time.monotonic() - start, 2), sum(p["rss"] for p in snap.values()),
                    sum(p["pss"] or 0 for p in snap.values()), len(snap),
                ])  # fmt: skip
            if done:
                break
            time.sleep(interval)
        returncode = proc.wait()
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    wall = time.monotonic() - start
    return {
        "returncode": returncode,
        "wall_s": round(wall, 2),
        "interval_s": interval,
        "samples": n,
        "peak_rss_bytes": peaks["rss"],
        "peak_anon_bytes": peaks["anon"],
        "peak_pss_bytes": peaks["pss"],
        "peak_procs": peaks["procs"],
        "max_process_rss_bytes": peaks["proc_rss"],
        "rusage_max_child_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "roles": {r: v for r, v in by_role.items() if v["peak_procs"]},
        "timeline": _thin(timeline, TIMELINE_POINTS),
    }


def _accumulate(snap: dict[int, dict[str, Any]], peaks: dict[str, Any], by_role: Any) -> None:
    peaks["rss"] = max(peaks["rss"], sum(p["rss"] for p in snap.values()))
    peaks["anon"] = max(peaks["anon"], sum(p["anon"] for p in snap.values()))
    peaks["pss"] = max(peaks["pss"], sum(p["pss"] or 0 for p in snap.values()))
    peaks["procs"] = max(peaks["procs"], len(snap))
    peaks["proc_rss"] = max(peaks["proc_rss"], *(p["rss"] for p in snap.values()))
    for role, agg in by_role.items():
        mine = [p for p in snap.values() if p["role"] == role]
        agg["peak_rss_bytes"] = max(agg["peak_rss_bytes"], sum(p["rss"] for p in mine))
        agg["peak_anon_bytes"] = max(agg["peak_anon_bytes"], sum(p["anon"] for p in mine))
        agg["peak_pss_bytes"] = max(agg["peak_pss_bytes"], sum(p["pss"] or 0 for p in mine))
        agg["peak_procs"] = max(agg["peak_procs"], len(mine))


def _thin(rows: list[list[float]], k: int) -> list[list[float]]:
    """At most ``k`` rows, keeping each stretch's largest RSS (so the peak survives)."""
    if len(rows) <= k:
        return rows
    step = -(-len(rows) // k)
    return [max(rows[i : i + step], key=lambda r: r[1]) for i in range(0, len(rows), step)]


# --- report --------------------------------------------------------------------------


def _mb(b: float) -> str:
    return f"{b / 1e6:,.0f} MB"


def table(res: dict[str, Any]) -> str:
    lines = [f"{'role':<18} {'peak RSS':>12} {'(anon)':>12} {'peak PSS':>12} {'procs':>6}"]
    keys = ("peak_rss_bytes", "peak_anon_bytes", "peak_pss_bytes", "peak_procs")
    rows = [*res["roles"].items(), ("tree (at once)", {k: res[k] for k in keys})]
    for role, v in rows:
        lines.append(
            f"{role:<18} {_mb(v['peak_rss_bytes']):>12} {_mb(v['peak_anon_bytes']):>12} "
            f"{_mb(v['peak_pss_bytes']):>12} {v['peak_procs']:>6}"
        )
    t = res["target"]
    lines.append(
        f"largest process {_mb(res['max_process_rss_bytes'])} (getrusage: "
        f"{_mb(res['rusage_max_child_rss_bytes'])}); {res['samples']} samples; "
        f"wall {res['wall_s']:.1f} s; exit {res['returncode']}"
    )
    lines.append(
        f"target: peak tree RSS {_mb(t['value_bytes'])} < {_mb(t['limit_bytes'])}"
        f"{'' if res['returncode'] == 0 else ' with exit 0'}: {'met' if t['met'] else 'MISSED'}"
        f" (peak tree PSS {_mb(t['pss_bytes'])}: "
        f"{'under' if t['pss_bytes'] < t['limit_bytes'] else 'over'} the limit)"
    )
    return "\n".join(lines)


def _folder_info(folder: Path) -> dict[str, Any]:
    info: dict[str, Any] = {"path": str(folder)}
    try:
        info.update(json.loads((folder / ".make_imagefolder.json").read_text()))
        info.pop("corrupt_files", None)
    except (OSError, ValueError):
        if folder.is_dir():
            files = [f for f in folder.rglob("*") if f.is_file()]
            info.update(files=len(files), bytes=sum(f.stat().st_size for f in files))
    return info


def _dumps(report: dict[str, Any]) -> str:
    """JSON with one line per list of plain values (the timeline's rows, the command)."""
    text = json.dumps(report, indent=1)
    return (
        re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: f"[{' '.join(m.group(1).split())}]", text)
        + "\n"
    )


def _command(args: argparse.Namespace, p: argparse.ArgumentParser) -> list[str]:
    """The command measured: the streamed search of ``--folder`` (written first with
    ``--make``), or ``--command`` with ``python`` as this interpreter."""
    if args.command is None:
        if args.make:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from make_imagefolder import generate

            m = generate(args.folder, n=args.n, size=args.size)
            print(f"folder {args.folder}: {m['files']} files, {m['bytes']} bytes", flush=True)
        if not args.folder.is_dir():
            p.error(f"--folder {args.folder} does not exist (--make writes it)")
        return default_command(args.folder.resolve(), args.overrides)
    cmd = shlex.split(args.command) + args.overrides
    if cmd and cmd[0] == "python":  # this interpreter; other paths: absolute (runs in workdir)
        cmd[0] = sys.executable
    return cmd


def _target(res: dict[str, Any], limit_gb: float) -> dict[str, Any]:
    limit = int(limit_gb * 1e9)
    return {
        "what": f"peak summed RSS of the process tree < {limit_gb:g} GB, exit 0",
        "limit_bytes": limit,
        "value_bytes": res["peak_rss_bytes"],
        "met": res["peak_rss_bytes"] < limit and res["returncode"] == 0,
        # RSS sums count the pages forked workers share with the driver once per
        # process; PSS divides them, so this is the same limit on the fair figure.
        "pss_bytes": res["peak_pss_bytes"],
        "pss_met": res["peak_pss_bytes"] < limit and res["returncode"] == 0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="extra nas.search overrides")
    p.add_argument("--folder", type=Path, default=Path("/tmp/imagefolder50k"))
    p.add_argument("--make", action="store_true", help="write the folder first if missing")
    p.add_argument("--n", type=int, default=50_000, help="images for --make")
    p.add_argument("--size", type=int, default=64, help="pixels for --make")
    p.add_argument("--workdir", type=abs_path, default=None, help="where the search runs")
    p.add_argument("--out", type=Path, default=REPO / "docs/bench/stream.json")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between samples")
    p.add_argument("--limit-gb", type=float, default=2.0, help="target: peak tree RSS < this")
    p.add_argument(
        "--command",
        default=None,
        help="measure this command line instead (run in the workdir; 'python' is this one)",
    )
    args = p.parse_args(argv)
    bench = Bench(__file__, argv)
    cmd = _command(args, p)
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="bench-stream-")
        workdir = Path(tmp)
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    print(f"$ (cd {workdir} && {shlex.join(cmd)})", flush=True)
    try:
        res = measure(cmd, cwd=workdir, interval=args.interval, log=workdir / "search.log", env=env)
        if res["returncode"] != 0:
            tail = (workdir / "search.log").read_text(errors="replace")[-3000:]
            print(f"the command exited {res['returncode']}; its log ends:\n{tail}", file=sys.stderr)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    res["target"] = _target(res, args.limit_gb)
    report = {
        "command": cmd,
        "workdir": None if tmp else str(workdir),
        "folder": None if args.command else _folder_info(args.folder),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "memory_bytes": PAGE * os.sysconf("SC_PHYS_PAGES"),
            "loadavg_before": bench.load_start,
            "loadavg_after": os.getloadavg(),
        },
        **res,
    }
    print(table(res))
    # "command" stays the measured command line; the provenance's is under "bench_command".
    report["bench_command"] = bench.provenance()["command"]
    bench.write(report, args.out, dumps=_dumps)
    print(f"wrote {args.out}")
    if res["returncode"] != 0:
        return res["returncode"]
    return 0 if res["target"]["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
