"""``runner.address``: which Ray cluster it names, and whether it answers.

Imports nothing from Ray (and no torch), so an unreachable cluster is refused in
about a second, before the search imports anything heavy.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from nas.config import ConfigError

__all__ = [
    "RAY_ADDRESS_FORMS",
    "check_address",
    "probe_ray_address",
    "ray_address_kind",
    "resolve_ray_address",
]


def check_address(runner: Any) -> None:
    """Refuse a ``runner.address`` that is malformed, or, for ``runner=ray``, unreachable."""
    ray_address_kind(runner.address)
    if runner.name == "ray":
        address = resolve_ray_address(runner.address)
        if address is not None:
            probe_ray_address(address, runner.address)


RAY_ADDRESS_FORMS = "empty (start a local Ray), 'auto', or a head's 'host:port'"


def ray_address_kind(address: str | None) -> str:
    """``local``, ``auto`` or ``hostport`` for a valid ``runner.address``; else ConfigError."""
    value = (address or "").strip()
    if value in ("", "local"):
        return "local"
    if value == "auto":
        return "auto"
    if value.startswith("ray://"):
        raise ConfigError(
            f"runner.address={address!r}: Ray Client (ray://) is not supported (Tune would run "
            "the search loop on the head node, away from the study); run nas.search on a "
            "cluster node with runner.address=auto or the head's GCS 'host:port'"
        )
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"runner.address={address!r} is not an address; allowed {RAY_ADDRESS_FORMS}"
        )
    return "hostport"


RAY_PROBE_TIMEOUT_S = 3.0
"""How long the check waits for a Ray head's GCS port to accept a connection."""


def resolve_ray_address(address: str | None) -> str | None:
    """The GCS ``host:port`` that ``runner.address`` names; None to start a local Ray.

    ``auto`` reads RAY_ADDRESS, else the address the last ``ray start --head`` on this
    machine wrote to ``/tmp/ray/ray_current_cluster``. Imports nothing from Ray.
    """
    kind = ray_address_kind(address)
    if kind == "local":
        return None
    if kind == "hostport":
        return str(address).strip()
    env = os.environ.get("RAY_ADDRESS", "").strip()
    if env and env not in ("auto", "local"):
        found, origin = env, "RAY_ADDRESS"
    else:
        current = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
        try:
            found, origin = current.read_text().strip(), str(current)
        except OSError:
            found, origin = "", ""
    if not found:
        raise ConfigError(
            "runner.address=auto found no Ray cluster (RAY_ADDRESS is unset and no "
            "`ray start --head` ran on this machine); start one (scripts/ray_cluster.sh up), "
            f"or set runner.address to {RAY_ADDRESS_FORMS}"
        )
    try:
        ray_address_kind(found)
    except ConfigError:
        raise ConfigError(
            f"runner.address=auto: {origin} holds {found!r}, which is not a head's "
            f"'host:port'; allowed {RAY_ADDRESS_FORMS}"
        ) from None
    return found


def probe_ray_address(address: str, value: str | None) -> None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_PROBE_TIMEOUT_S):
            pass
    except OSError as e:
        reason = " ".join(str(e).split())[:120] or type(e).__name__
        shown = repr(value) if value == address else f"{value!r} ({address})"
        raise ConfigError(
            f"runner.address={shown} is unreachable ({reason}); give a running cluster's "
            f"head 'host:port' (as `ray start --head` printed it), 'auto', or leave it "
            "empty to start a local Ray"
        ) from None
