"""``python -m nas.search [overrides]``: joint architecture + compression search.

A Hydra app: Hydra's command line works as usual::

    python -m nas.search +hw=mobile
    python -m nas.search dataset=digits search.n_trials=5 sampler=nsga2
    python -m nas.search -m +hw=mobile,mcu search.seed=0,1   # four searches, one experiment
    python -m nas.search --cfg job                           # the composed config, as YAML
    python -m nas.search --info defaults-tree

Bad input fails fast: every job's config is composed and validated (schema, ranges,
registry names, a Ray cluster's address) before torch is imported and before the
first job starts, with one line on stderr naming the value and what is allowed, and
exit code 2. ``--plugin MODULE`` imports ``MODULE`` first (to register your own
search space, say); Hydra never sees it.

Where things go. The search's outputs go to the directory the command is launched
from: the MLflow store ``mlflow.db`` (unless ``mlflow.tracking_uri`` is set), the
Optuna journal ``<study>.journal`` and the artifacts ``outputs/<study>/``, so running
the same command again resumes the same study. A ``-m`` sweep logs every job to that
same store and experiment; each job is its own study and parent run (the study name
is derived from the config) and resumes on its own. ``search.output_dir=DIR`` moves
all of them. Hydra's own files (``.hydra/`` with the composed config and overrides,
and ``search.log``) go to the run dir ``outputs/hydra/<date>/<time>`` or, for ``-m``,
the sweep dir ``outputs/hydra/multirun/<date>/<time>/<job number>``; Hydra never
changes the working directory (``hydra.job.chdir=false``). Setting ``hydra.run.dir``
(or, for ``-m``, ``hydra.sweep.dir``) on the command line while ``search.output_dir``
is null makes that directory the output directory too: a single run writes
everything there; a sweep writes its shared store and the jobs' studies in the sweep
dir, next to the jobs' Hydra subdirectories.

Stopping. Ctrl-C, ``SIGTERM`` (what ``timeout``, Slurm and Kubernetes send) or
``SIGHUP`` (unless started under ``nohup``), to the search or its whole process group,
stops it cleanly: the running trial is marked interrupted, the parent run ends KILLED,
a sweep starts no further job, and the same command resumes. ``SIGUSR1`` is a
pre-emption notice (Slurm's ``--signal=USR1@N``): no trial starts after it, the one
running may finish within ``search.grace_s``, then the search stops the same way. A
full disk stops it with one line naming the file it could not write (exit 75); the
same command resumes once space is freed. The loader workers, the evaluator process
and a local Ray leave every stop to the search (:mod:`nas._stop`).

Exit codes: 0 done, 1 a bug (Hydra prints the traceback), 2 bad input, 3 no trained
candidate met the budgets, 75 the disk is full, 130 stopped. A sweep exits with the
largest of its jobs' codes.
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser, Namespace
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from nas._cli import InputError, import_plugins, refuse, require
from nas._stop import EXIT_DISK_FULL, DiskFull, stop_cause, stop_signals_as_interrupt

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from nas.study import SearchOutcome

__all__ = ["main"]

EXIT_INTERRUPTED = 130  # nas.study.EXIT_INTERRUPTED, without importing it for --help
_STOPPED = (EXIT_INTERRUPTED, EXIT_DISK_FULL)  # codes after which a sweep starts no job

USAGE = """usage: python -m nas.search [--plugin MODULE] [-m] [+hw=PROFILE|+hw=[A,B,...]]
                          [group=option ...]
                          [key=value ...] [hydra flags]

groups:  {groups}
keys:    search.{{n_trials, timeout_s, study_name, storage, seed, trial_timeout_s,
         grace_s, output_dir, progress}}, mlflow.{{tracking_uri, experiment}}, and every
         key of a group (`--cfg job` shows them all)
devices: +hw=[mobile,raspi4,mcu] searches once with a front per device; set a device's
         keys as devices.<name>.<key>=VALUE (devices.mobile.latency_budget_ms=0.5)
sweeps:  -m/--multirun runs one search per combination: -m +hw=mobile,mcu search.seed=0,1
flags:   --cfg job|hydra|all  print the composed config and exit (--resolve, -p PACKAGE)
         --info [all|config|defaults|defaults-tree|plugins|searchpath]
         -cd/--config-dir DIR  also search DIR for configs; -cn/--config-name NAME
         --shell-completion install=bash|zsh|fish; --hydra-help; --version
outputs: mlflow.db, <study>.journal and outputs/<study>/ in the current directory
         (search.output_dir=DIR, or hydra.run.dir=DIR); Hydra's .hydra/ and log in
         outputs/hydra/ (hydra.run.dir / hydra.sweep.dir). The same command resumes.
plugins: --plugin MODULE imports MODULE first, e.g. to register your own search space;
         add its YAML with hydra.searchpath=[file:///abs/path/to/conf] or -cd DIR
exit:    0 done, 2 bad input, 3 no trained candidate met the budgets, 75 the disk is
         full, 130 stopped (Ctrl-C, SIGTERM, SIGHUP, or SIGUSR1 after search.grace_s);
         the same command resumes"""


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    from nas.config import ConfigError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        plugins, args = _split_plugins(args)
        import_plugins(plugins)
        parser, ns = _parse(args)
        if ns.help:
            print(_usage())
            return 0
        _check(ns)
    except (InputError, ConfigError) as e:
        return refuse(e)
    except SystemExit as e:  # --version
        return _code(e)
    with stop_signals_as_interrupt():
        return _run(parser, ns, plugins)


def _split_plugins(args: list[str]) -> tuple[list[str], list[str]]:
    plugins, rest = [], []
    it = iter(args)
    for a in it:
        if a == "--plugin":
            plugins.append(next(it, ""))
        elif a.startswith("--plugin="):
            plugins.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    return plugins, rest


def _parse(args: list[str]) -> tuple[ArgumentParser, Namespace]:
    """Hydra's own argument parser, whose errors are one line."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    setattr(parser, "error", _one_line_error)  # noqa: B010 (argparse's hook, on one instance)
    ns = parser.parse_args(_bare_cfg_is_job(args))
    from nas.config import expand_device_list

    # +hw=[a,b] becomes one hw package per device before Hydra composes anything.
    ns.overrides = expand_device_list(ns.overrides)
    require(ns.experimental_rerun is None, "--experimental-rerun is not supported here")
    if ns.config_path is not None:
        # Relative to where the command runs (Hydra's would be relative to nas/).
        ns.config_path = str(Path(ns.config_path).expanduser().resolve())
        require(Path(ns.config_path).is_dir(), f"--config-path={ns.config_path!r} is no folder")
    return parser, ns


def _one_line_error(message: str) -> NoReturn:
    raise InputError(f"{message} (see python -m nas.search --help)")


def _bare_cfg_is_job(args: list[str]) -> list[str]:
    """``--cfg`` alone, as before Hydra's flags, means ``--cfg job``."""
    out: list[str] = []
    for i, a in enumerate(args):
        out.append(a)
        following = args[i + 1] if i + 1 < len(args) else None
        if a in ("--cfg", "-c") and following not in ("job", "hydra", "all"):
            out.append("job")
    return out


def _usage() -> str:
    from nas.config import conf_dir

    groups = sorted(p.name for p in conf_dir().iterdir() if p.is_dir() and any(p.glob("*.yaml")))
    listed = [f"{'+' if g == 'hw' else ''}{g}={'|'.join(_options(g))}" for g in groups]
    lines, line = [], ""
    for item in listed:
        if line and len(line) + len(item) > 80:
            lines.append(line)
            line = ""
        line = f"{line}  {item}" if line else item
    return USAGE.format(groups="\n         ".join([*lines, line]))


def _options(group: str) -> list[str]:
    from nas.config import conf_dir

    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def _check(ns: Namespace) -> None:
    """Compose and validate every job the command line describes; raise on a bad one."""
    from nas.config import compose

    if ns.shell_completion or ns.hydra_help:
        return
    for overrides in _jobs(list(ns.overrides), multirun=ns.multirun):
        cfg = compose(
            overrides,
            config_name=ns.config_name or "config",
            config_dir=ns.config_dir,
            config_path=ns.config_path,
        )
        if ns.run or ns.multirun or not (ns.cfg or ns.info):
            from nas.driver import preflight  # the registries: after the schema's checks

            preflight(cfg)


def _jobs(overrides: list[str], *, multirun: bool) -> list[list[str]]:
    """Each job's overrides: one job, or the sweep Hydra's basic sweeper will run."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, OverrideParseException

    from nas.config import ConfigError

    if not multirun:
        return [overrides]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException:
        return [overrides]  # compose names the override it cannot parse
    if any(o.get_key_element().lstrip("+~") == "hydra/sweeper" for o in parsed):
        # Another sweeper makes its own jobs: check the fixed part here, each job later.
        fixed = zip(overrides, parsed, strict=True)
        return [[text for text, o in fixed if not o.is_sweep_override()]]
    try:
        (jobs,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    except HydraException as e:
        raise ConfigError(" ".join(str(e).split())) from None
    return jobs


def _run(parser: ArgumentParser, ns: Namespace, plugins: list[str]) -> int:
    """Hand the command line to Hydra (run, sweep, --cfg, --info...); collect exit codes."""
    from hydra._internal.utils import _run_hydra

    from nas.config import conf_dir, register_schemas

    register_schemas()
    codes: list[int] = []
    task = _task(plugins, codes)
    try:
        _run_hydra(
            args=ns,
            args_parser=parser,
            task_function=task,
            config_path=str(conf_dir()),
            config_name="config",
        )
    except KeyboardInterrupt:
        if codes and codes[-1] in _STOPPED:
            return codes[-1]
        # Before the first trial (imports, data): nothing was recorded yet.
        cause = stop_cause()
        print(f"stopped{f' by {cause}' if cause else ''} before the search began", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as e:  # Hydra's own reports (a bug's traceback, --help...)
        return _code(e)
    return max(codes, default=0)


def _task(plugins: list[str], codes: list[int]) -> Callable[[DictConfig], int]:
    def search(cfg: DictConfig) -> int:
        code = _search(cfg, plugins)
        codes.append(code)
        if code in _STOPPED:
            raise KeyboardInterrupt  # a sweep starts no further job
        return code

    return search


def _search(cfg: DictConfig, plugins: list[str]) -> int:
    """One job: validate (a sweeper other than the basic one made it), place, search."""
    from nas.config import ConfigError, validate
    from nas.driver import preflight

    try:
        validate(cfg)
        preflight(cfg)
        _place_outputs(cfg)
        from nas.driver import run_search

        outcome = run_search(cfg, plugins=plugins)
    except ConfigError as e:
        return refuse(e)
    except DiskFull as e:  # before the trials (the study, the tracking store, a cache)
        print(f"error: no space left on device writing {e.filename}; free space, then run "
              "the same command again", file=sys.stderr)  # fmt: skip
        return EXIT_DISK_FULL
    _report(outcome)
    return outcome.exit_code


def _place_outputs(cfg: DictConfig) -> None:
    """``hydra.run.dir`` (``hydra.sweep.dir`` for -m) given on the command line, and no
    ``search.output_dir``: the search writes there."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if cfg.search.output_dir is not None:
        return
    hc = HydraConfig.get()
    given = {str(o).lstrip("+").split("=", 1)[0] for o in hc.overrides.hydra}
    if hc.mode == RunMode.RUN and "hydra.run.dir" in given:
        cfg.search.output_dir = str(Path(hc.runtime.output_dir).resolve())
    elif hc.mode == RunMode.MULTIRUN and "hydra.sweep.dir" in given:
        cfg.search.output_dir = str(Path(hc.sweep.dir).resolve())


def _report(outcome: SearchOutcome) -> None:
    from nas.study import EXIT_NO_FEASIBLE, format_front, format_nearest, runs_url

    print()
    if outcome.devices and not outcome.parent_run_id:
        _report_devices(outcome)
        return
    print(
        f"Study {outcome.study_name}: {outcome.n_trials} trials ({outcome.n_infeasible} "
        f"rejected as infeasible, {outcome.n_failed} failed) in {outcome.wall_seconds:.0f} s; "
        + (
            f"devices {', '.join(outcome.devices)}"
            if outcome.devices
            else f"hypervolume {outcome.hypervolume:.4f}"
        )
    )
    pop = outcome.population
    if pop:
        print(
            f"Scored {pop['n_scored']:.0f} candidates by inherited weights (median "
            f"{pop['score_seconds_median']:.2f} s each); finalised {pop['n_finalised']:.0f}; "
            f"Kendall tau, estimated vs final val accuracy: {pop['kendall_tau_finalists']:.2f}"
        )
    if outcome.devices:
        _report_devices(outcome)
    elif outcome.front:
        print(f"Pareto front (val_accuracy up, {outcome.cost} down):")
        print(format_front(outcome))
    elif outcome.exit_code == EXIT_NO_FEASIBLE and outcome.n_below_floor:
        print(
            f"No front: all {outcome.n_below_floor} trained candidates that met the budgets "
            "are below search.min_accuracy (lower it, or train longer)."
        )
    elif outcome.exit_code == EXIT_NO_FEASIBLE:
        if outcome.nearest:
            print("No trained candidate met the budgets; the nearest (relative to each budget):")
            print(format_nearest(outcome))
            print("Relax the hw budgets, widen the space or run more trials.")
        else:
            print("No trained candidate met the budgets (every trained trial failed; see above).")
    if outcome.exit_code == EXIT_INTERRUPTED:
        print("Interrupted; run the same command again to resume.")
    if outcome.exit_code == EXIT_DISK_FULL:
        print("Stopped: the disk is full. Free space, then run the same command again to resume.")
    uri = outcome.tracking_uri
    print(f"\nBrowse it: mlflow ui --backend-store-uri {uri}")
    print(f"  then open {runs_url(outcome)}")


def _report_devices(outcome: SearchOutcome) -> None:
    """Each device's front of a multi-device search, or why it is empty."""
    from nas.study import format_front, format_nearest

    for device, part in outcome.devices.items():
        if part.front:
            print(
                f"\n{device}: hypervolume {part.hypervolume:.4f}, {len(part.front)} on the front "
                "(val_accuracy up, size_bytes down; latency on this device):"
            )
            print(format_front(outcome, part.front))
            continue
        print(f"\n{device}: front empty: {part.why_empty}")
        if part.nearest:
            print("  nearest to its budgets:")
            print(format_nearest(outcome, part.nearest))
    if not outcome.parent_run_id:
        print("\nNo device's budgets can be met by any candidate; nothing was run or recorded.")
        print("Relax the budgets named above or widen the search space.")


def _code(e: SystemExit) -> int:
    if e.code is None:
        return 0
    return e.code if isinstance(e.code, int) else 1


if __name__ == "__main__":
    sys.exit(main())
