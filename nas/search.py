"""``python -m nas.search [overrides]``: joint architecture + compression search.

Examples::

    python -m nas.search +hw=mobile
    python -m nas.search dataset=digits search.n_trials=5 sampler=nsga2

The config is composed and validated before torch is imported, so a bad command
fails in about a second with one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["main"]

USAGE = """usage: python -m nas.search [+hw=PROFILE] [group=option ...] [key=value ...]

groups:  dataset=mnist5k|digits|cifar10|imagefolder  search_space=mbconv|tiny|fbnet
         sampler=tpe|nsga2|random|gp  compress=joint|all  runner=local|ray
         early_stop=none|moasha  +hw=mobile|host|mcu|raspi4|gpu|custom
keys:    search.n_trials, search.timeout_s, search.study_name, search.storage, search.seed,
         search.trial_timeout_s, search.output_dir, mlflow.tracking_uri, mlflow.experiment,
         runner.{address,max_concurrent,cpus_per_trial,gpus_per_trial,max_failures}
         (`--cfg` prints the composed config and exits)
plugins: --plugin MODULE imports MODULE first, e.g. to register your own search space;
         add its YAML with hydra.searchpath=[file:///abs/path/to/conf]
exit:    0 done, 2 bad input, 3 no trained candidate met the budgets, 130 interrupted"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return 0
    show_cfg = "--cfg" in args
    args = [a for a in args if a != "--cfg"]
    plugins, args = _split_plugins(args)
    for module in plugins:
        # A plugin registers its own search spaces (or other registry entries) on import.
        try:
            importlib.import_module(module)
        except ImportError as e:
            print(f"error: --plugin {module}: cannot import it ({e})", file=sys.stderr)
            return 2

    from nas import compose
    from nas.config import ConfigError

    try:
        cfg = compose(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if show_cfg:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(cfg))
        return 0

    try:
        from nas.driver import run_search
        from nas.study import EXIT_INTERRUPTED, EXIT_NO_FEASIBLE, format_front, format_nearest

        outcome = run_search(cfg, plugins=plugins)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Before the first trial (imports, data): nothing was recorded yet.
        print("interrupted", file=sys.stderr)
        return 130
    print()
    print(
        f"Study {outcome.study_name}: {outcome.n_trials} trials ({outcome.n_infeasible} "
        f"rejected as infeasible, {outcome.n_failed} failed) in {outcome.wall_seconds:.0f} s; "
        f"hypervolume {outcome.hypervolume:.4f}"
    )
    if outcome.front:
        print("Pareto front (val_accuracy up, size_bytes down):")
        print(format_front(outcome))
    elif outcome.exit_code == EXIT_NO_FEASIBLE:
        if outcome.nearest:
            print("No trained candidate met the budgets; the nearest (relative to each budget):")
            print(format_nearest(outcome))
            print("Relax the hw budgets, widen the space or run more trials.")
        else:
            print("No trained candidate met the budgets (every trained trial failed; see above).")
    if outcome.exit_code == EXIT_INTERRUPTED:
        print("Interrupted; run the same command again to resume.")
    uri = outcome.tracking_uri
    print(f"\nBrowse it: mlflow ui --backend-store-uri {uri}   (then open http://127.0.0.1:5000)")
    return outcome.exit_code


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


if __name__ == "__main__":
    sys.exit(main())
