"""``python -m nas.export RUN_ID --out DIR``: a searched model, ready to deploy.

Examples::

    python -m nas.export 2a05a3b0a84b45f4b2d51c5a9ce5010c --out exported/
    python -m nas.export PARENT_RUN_ID --trial 8 --out exported/ --retrain-epochs 20
    python -m nas.export PARENT_RUN_ID --device raspi4 --out exported/   # +hw=[...] searches
    python -m nas.export SUPERNET_SEARCH_RUN_ID --adaptive --out adaptive/

Bad input (an unknown run, an unreachable tracking server, a run without an
artifact, an unwritable folder) fails with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from nas._cli import InputError, import_plugins, refuse
from nas._stop import stop_signals_as_interrupt

__all__ = ["main"]

DESCRIPTION = """Export a trial of a nas.search study: its compressed artifact (model.dsz),
its deployable ONNX model (model.onnx: int8 where that measured faster than fp32, else
fp32), metrics.json and a README.md with its metrics, into DIR."""

EPILOG = """RUN_ID is the MLflow run of a trial, normally a front member (tag pareto=true;
`python -m nas.search` prints them), or a search's parent run with --trial N. For a
search of several devices (+hw=[mobile,raspi4]), --device NAME exports for that
device: with a search's run id and no --trial, its front's most accurate member.
--adaptive takes a strategy=supernet search's run id and writes one package,
adaptive.dsza, of 3-6 nested operating points (search_spaces.AdaptiveModel switches
between them at run time), each point's own artifact (points/) and ONNX file (onnx/),
and adaptive.json with their figures.
exit: 0 done, 2 bad input"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nas.export", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("run_id", metavar="RUN_ID", help="MLflow run id of a trial (or a search)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write (created)")
    p.add_argument(
        "--tracking-uri", metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///$PWD/mlflow.db)",
    )  # fmt: skip
    p.add_argument(
        "--retrain-epochs", type=int, default=0, metavar="N",
        help="first retrain the candidate from scratch for N epochs, then compress and "
        "fine-tune it as the search did",
    )  # fmt: skip
    p.add_argument("--trial", type=int, metavar="N", help="with a search's run id: its trial N")
    p.add_argument(
        "--device", metavar="NAME",
        help="a multi-device search's device to export for (needed unless the trial is on "
        "one device's front only)",
    )  # fmt: skip
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads (default: the search's train.threads)",
    )
    p.add_argument(
        "--adaptive", action="store_true",
        help="a supernet search's run: write one package of nested operating points",
    )  # fmt: skip
    p.add_argument(
        "--points", metavar="N,N,...",
        help="with --adaptive: these scored trials instead of the nested chain chosen "
        "along the estimated front (if they do not nest, the package holds their union)",
    )  # fmt: skip
    p.add_argument(
        "--supernet", metavar="PATH",
        help="with --adaptive: the search's supernet file (default: the run's tag nas.supernet)",
    )  # fmt: skip
    p.add_argument(
        "--keep", default="point", choices=["point", "fp32"],
        help="with --adaptive: what the shared copy keeps: the largest point's compressed "
        "weights (default), or the union's fp32 weights",
    )  # fmt: skip
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (the search's --plugin, for user search spaces)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    from nas.config import ConfigError

    try:
        import_plugins(args.plugin)
    except InputError as e:
        return refuse(e)

    if args.adaptive:
        return _adaptive(args)
    from nas.export import export_run

    try:
        with stop_signals_as_interrupt():
            result = export_run(
                args.run_id,
                args.out,
                tracking_uri=args.tracking_uri,
                retrain_epochs=args.retrain_epochs,
                trial=args.trial,
                threads=args.threads,
                device=args.device,
            )
    except ConfigError as e:
        return refuse(e)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    m = result.metrics
    onnx = m["onnx"]
    print(
        f"Exported trial {m['trial']} of {m['study_name']} to {result.out}: model.dsz "
        f"{m['dsz']['size_bytes']:,} bytes, test accuracy {m['dsz']['test_accuracy']:.4f}; "
        f"model.onnx ({onnx['chosen']}) {onnx['size_bytes']:,} bytes, "
        f"{onnx['variants'][onnx['chosen']]['latency_ms']:.3f} ms"
    )
    return 0


def _points(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        points = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise InputError(f"--points {text!r}: give trial numbers separated by commas") from None
    if not points:
        raise InputError(f"--points {text!r}: give at least one trial number")
    return points


def _adaptive(args: argparse.Namespace) -> int:
    from nas.config import ConfigError

    try:
        if args.retrain_epochs or args.trial is not None or args.device:
            raise InputError("--adaptive takes a search's run id, without --retrain-epochs, "
                             "--trial or --device")  # fmt: skip
        points = _points(args.points)
        from nas.export import export_adaptive

        with stop_signals_as_interrupt():
            r = export_adaptive(
                args.run_id, args.out, tracking_uri=args.tracking_uri, points=points,
                supernet=args.supernet, keep=args.keep, threads=args.threads,
            )  # fmt: skip
    except (ConfigError, InputError) as e:
        return refuse(e)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    for p in r["points"]:
        print(
            f"  {p['name']}: trial {p['info']['trial']}, {p['size_bytes']:,} bytes alone, val "
            f"{p['val_accuracy']:.4f} (search's estimate {p['info']['val_accuracy_estimate']:.4f})"
        )
    print(
        f"Wrote {r['package_file']} ({r['package_bytes']:,} bytes = "
        f"{r['package_bytes_ratio']:.2f}x its largest point alone) to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
