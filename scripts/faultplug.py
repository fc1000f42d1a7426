"""A search plugin that injects faults at known points of chosen trials.

For ``scripts/bench_faults.py`` and the fault tests: ``python -m nas.search --plugin
faultplug ...`` with ``scripts/`` on ``PYTHONPATH``. The search passes its plugins on
to the evaluator process and to Ray workers, which import this module too. Nothing
happens unless the environment asks:

- ``FAULT_MARKS``: a folder (without it the plugin does nothing). Every trial scored here touches
  ``started-<n>`` and ``scored-<n>``; the evaluator process writes
  ``evaluator-<pid>.pid`` when it starts.
- ``FAULT_PHASE`` and ``FAULT_TRIALS`` (numbers, comma-separated): what the trials
  named do.

  - ``train``: after its first epoch (loader workers alive), the trial touches
    ``train-<n>`` and sleeps ``FAULT_SLEEP`` seconds (default 120): a trial held in
    training (needs ``train.epochs >= 2``).
  - ``evaluate``: the evaluator touches ``evaluate-<n>`` and sleeps as long while it
    scores the trial's artifact.
  - ``diverge``: its training batches turn NaN at step ``FAULT_STEP`` (default 3), and
    so does its loss.
  - ``hang``: after one batch its training data never comes: the loader waits on
    forever, in short sleeps, as on a file system that stopped answering
    (``hang-<n>``).
  - ``enospc``: the trial's artifact path is a link to ``/dev/full``, so writing it
    fails with the kernel's ENOSPC, as on a full disk; removing the link frees the
    "space".
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import time
from pathlib import Path

MARKS = Path(os.environ.get("FAULT_MARKS", ""))
PHASE = os.environ.get("FAULT_PHASE", "")
TRIALS = {int(n) for n in os.environ.get("FAULT_TRIALS", "").split(",") if n}
SLEEP = float(os.environ.get("FAULT_SLEEP", "120"))
STEP = int(os.environ.get("FAULT_STEP", "3"))


def mark(name: str) -> None:
    (MARKS / name).touch()


if not os.environ.get("FAULT_MARKS"):
    pass  # a process the bench did not start (a Ray node of a cluster): no faults
elif mp.current_process().name == "nas-evaluator":
    # The evaluator process loads every artifact through compress.load.
    import compress

    (MARKS / f"evaluator-{os.getpid()}.pid").write_text(str(os.getpid()))
    _load = compress.load

    def load(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        number = int(Path(path).stem.split("_")[-1])
        if PHASE == "evaluate" and number in TRIALS:
            mark(f"evaluate-{number}")
            time.sleep(SLEEP)
        return _load(path, *args, **kwargs)

    compress.load = load
else:
    from nas.pipeline import ScratchStrategy

    class Sleeper:
        """An early-stopping judge: asked after the first epoch, in the middle of
        training, it marks the trial and sleeps (a trial held in training)."""

        def should_stop(self, number, epoch, val_accuracy, size_bytes):  # type: ignore[no-untyped-def]
            mark(f"train-{number}")
            time.sleep(SLEEP)
            return False

    class Faulty:
        """A training split whose loader goes wrong after ``good`` batches: it hangs
        (waits forever, in short sleeps), or it delivers NaN images (a loss that turns
        NaN there: the trial diverges at that step)."""

        def __init__(self, part, number, *, good, then):  # type: ignore[no-untyped-def]
            self.part, self.number, self.good, self.then = part, number, good, then

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(self.part, name)

        def __len__(self) -> int:
            return len(self.part)

        def batches(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            faulty = self

            class Loader:
                def __len__(self) -> int:
                    return len(faulty.part.batches(*args, **kwargs))

                def __iter__(self):  # type: ignore[no-untyped-def]
                    for i, (x, y) in enumerate(faulty.part.batches(*args, **kwargs)):
                        if i < faulty.good:
                            yield x, y
                        elif faulty.then == "nan":
                            yield x * float("nan"), y
                        else:
                            mark(f"hang-{faulty.number}")
                            while True:
                                time.sleep(0.5)

            return Loader()

    _score = ScratchStrategy.score

    def score(self, proposal, ctx):  # type: ignore[no-untyped-def]
        number = proposal.number
        mark(f"started-{number}")
        if number in TRIALS:
            ctx = _inject(number, ctx)
        result = _score(self, proposal, ctx)
        mark(f"scored-{number}")
        return result

    def _inject(number, ctx):  # type: ignore[no-untyped-def]
        if PHASE == "train":
            return dataclasses.replace(ctx, early_stop=Sleeper())
        if PHASE in ("hang", "diverge"):
            good, then = (1, "hang") if PHASE == "hang" else (STEP, "nan")
            train = Faulty(ctx.splits.train, number, good=good, then=then)
            return dataclasses.replace(ctx, splits=dataclasses.replace(ctx.splits, train=train))
        if PHASE == "enospc":
            ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
            link = ctx.artifact_dir / f"trial_{number:05d}.dsz"
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/full")
        return ctx

    ScratchStrategy.score = score
