"""``make run``'s services, their ports and the file (``.run/stack.json``) that tells the helper
scripts where the running stack is, so that they never post to a default port (or anywhere else)
by mistake."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .local import RUN_DIR

#: REFUNDGUARD_STACK_FILE moves it: the browser tests' stack must not replace a running make run's.
STACK_FILE = Path(os.environ.get("REFUNDGUARD_STACK_FILE") or RUN_DIR / "stack.json")

#: service -> (port variable, default port)
PORTS: dict[str, tuple[str, int]] = {
    "firestore": ("FIRESTORE_PORT", 8090),
    "play_notifications": ("PLAY_PORT", 8081),
    "apple_notifications": ("APPLE_PORT", 8082),
    "admin": ("ADMIN_PORT", 8083),
    "issuer": ("ADMIN_CERTS_PORT", 8084),
    "play_api": ("PLAY_API_PORT", 8085),  # the Play Developer API's stand-in
    "apple_api": ("APPLE_API_PORT", 8086),  # the App Store Server API's stand-in
    # Access-change events: the Pub/Sub emulator, the sample platform consumer it pushes to, and
    # the events sweep.
    "pubsub": ("PUBSUB_PORT", 8087),
    "consumer": ("CONSUMER_PORT", 8088),
    "events_sweep": ("EVENTS_SWEEP_PORT", 8089),
    "reconcile": ("RECONCILE_PORT", 8091),  # the reconciler (8090 is Firestore's)
    "admin_console": ("CONSOLE_PORT", 8093),  # the admin console (page + admin API)
}


class StackError(SystemExit):
    """A problem that stops ``make run`` before anything starts, said in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(f"make run: {message}")


#: ``PORT_BASE=N`` (or ``run_local.py --base-port N``) moves every port: each service gets N plus
#: its default's offset from the first default (8081), so PORT_BASE=9081 gives 9081..9093. A port
#: variable set as well still wins for its own service.
PORT_BASE_VARIABLE = "PORT_BASE"
FIRST_DEFAULT = min(default for _, default in PORTS.values())
SPAN = max(default for _, default in PORTS.values()) - FIRST_DEFAULT


def read_ports(environ: Mapping[str, str] = os.environ) -> dict[str, int]:
    """Each service's port from its variable (or the default, shifted by ``PORT_BASE``), checked:
    a number, distinct, and free on 127.0.0.1. Every busy port is named at once, with its
    variable, before anything starts, and a base port that is free is offered."""
    base = _base(environ)
    ports: dict[str, int] = {}
    for service, (variable, default) in PORTS.items():
        raw = environ.get(variable, "").strip() or str(default - FIRST_DEFAULT + base)
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise StackError(f"{variable}={raw!r} is not a port number")
        ports[service] = int(raw)
    seen: dict[int, str] = {}
    for service, number in ports.items():
        if number in seen:
            other = PORTS[seen[number]][0]
            raise StackError(f"{PORTS[service][0]} and {other} are both {number}")
        seen[number] = service
    busy = [(number, service) for service, number in ports.items() if not port_is_free(number)]
    if busy:
        named = ", ".join(f"{n} ({PORTS[s][0]}, for {s})" for n, s in busy)
        offer = free_base(exclude=base)
        hint = (
            f"; or move every port at once: PORT_BASE={offer} make run "
            f"(scripts/run_local.py --base-port {offer})"
            if offer is not None
            else ""
        )
        raise StackError(
            f"{len(busy)} port{'s' if len(busy) > 1 else ''} in use: {named}. Stop what holds "
            f"{'them' if len(busy) > 1 else 'it'} or choose others (VARIABLE=NNNN make run){hint}"
        )
    return ports


def _base(environ: Mapping[str, str]) -> int:
    raw = environ.get(PORT_BASE_VARIABLE, "").strip() or str(FIRST_DEFAULT)
    if not raw.isdigit() or not 1 <= int(raw) <= 65535 - SPAN:
        raise StackError(
            f"{PORT_BASE_VARIABLE}={raw!r} is not a base port (1..{65535 - SPAN}: every port "
            f"from it to {SPAN} above must exist)"
        )
    return int(raw)


def free_base(*, exclude: int, candidates: range = range(9081, 60000, 1000)) -> int | None:
    """The first base port whose whole range (base .. base + SPAN) is free: an offer, not a
    promise (something may take one before ``make run`` does)."""
    for base in candidates:
        if base != exclude and all(port_is_free(base + i) for i in range(SPAN + 1)):
            return base
    return None


def port_is_free(number: int) -> bool:
    """Whether nothing listens on ``number`` (connections lingering in TIME_WAIT do not count,
    as servers bind with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", number))
        except OSError:
            return False
    return True


@dataclass
class Stack:
    """What ``make run`` started, for the scripts: base URLs and local identities."""

    urls: dict[str, str]
    project: str
    admin_emails: list[str] = field(default_factory=list)
    pid: int = 0

    def url(self, service: str) -> str:
        return self.urls[service]

    def write(self, path: Path = STACK_FILE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def running_stack(path: Path = STACK_FILE) -> Stack:
    """The stack ``make run`` wrote, if its process still runs; else a one-line error."""
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        stack = Stack(**data)
    except (OSError, ValueError, TypeError):
        raise SystemExit(
            "no local stack is running (start it with `make run`; it writes .run/stack.json)"
        ) from None
    if stack.pid and not _alive(stack.pid):
        raise SystemExit("the local stack in .run/stack.json has stopped; start it with `make run`")
    return stack


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def local_url(service: str, explicit: str | None = None) -> str:
    """``explicit`` when given (the user asked for it), else the running stack's URL."""
    return explicit or running_stack().url(service)
