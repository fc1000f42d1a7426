"""Where trials run: the :class:`Runner` seam, its registry, and the built-in runners
(``local``: this process; ``ray``: Ray Tune, locally or on a cluster).

Light to import: names load lazily, and Ray only when ``runner=ray`` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas._lazy import lazy_getattr

if TYPE_CHECKING:
    from nas.runners._address import (
        RAY_ADDRESS_FORMS,
        check_address,
        probe_ray_address,
        ray_address_kind,
        resolve_ray_address,
    )
    from nas.runners._base import (
        RUNNERS,
        Runner,
        SearchLoop,
        get_runner,
        register_runner,
        worker_record,
    )
    from nas.runners._context import make_context, strategy_name, usable_bits
    from nas.runners._ray_searcher import StudySearcher, make_searcher
    from nas.runners._ray_worker import (
        RemoteJudge,
        WorkerSetup,
        train_in_worker,
        worker_context,
        worker_setup,
    )

_NAMES = {
    **dict.fromkeys(
        ["RAY_ADDRESS_FORMS", "check_address", "probe_ray_address", "ray_address_kind",
         "resolve_ray_address"],
        "nas.runners._address",
    ),
    **dict.fromkeys(
        ["RUNNERS", "Runner", "SearchLoop", "get_runner", "register_runner", "worker_record"],
        "nas.runners._base",
    ),
    **dict.fromkeys(["make_context", "strategy_name", "usable_bits"], "nas.runners._context"),
    **dict.fromkeys(["StudySearcher", "make_searcher"], "nas.runners._ray_searcher"),
    **dict.fromkeys(
        ["RemoteJudge", "WorkerSetup", "train_in_worker", "worker_context", "worker_setup"],
        "nas.runners._ray_worker",
    ),
}  # fmt: skip

__all__ = [
    "RAY_ADDRESS_FORMS",
    "RUNNERS",
    "RemoteJudge",
    "Runner",
    "SearchLoop",
    "StudySearcher",
    "WorkerSetup",
    "check_address",
    "get_runner",
    "make_context",
    "make_searcher",
    "probe_ray_address",
    "ray_address_kind",
    "register_runner",
    "resolve_ray_address",
    "strategy_name",
    "train_in_worker",
    "usable_bits",
    "worker_context",
    "worker_record",
    "worker_setup",
]

__getattr__ = lazy_getattr(__name__, _NAMES)
