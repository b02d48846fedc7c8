"""Child processes for ``make run`` and the tests: functions-framework servers, readiness."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"


def wait_http(
    url: str,
    *,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    accept_any_status: bool = True,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            if accept_any_status:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")


def wait_port(port_number: int, *, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    """Wait until something listens on the port (a TCP connect: no request for it to log)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process for port {port_number} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port_number), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listened on port {port_number} within {timeout_s}s")


def start_function(
    target: str,
    function_port: int,
    env: Mapping[str, str],
    log_path: Path | None = None,
    *,
    source: Path = FUNCTIONS / "main.py",
) -> subprocess.Popen[bytes]:
    """One ``functions-framework`` process serving ``target`` from ``source`` (refundguard's
    functions/main.py unless told otherwise, e.g. the sample platform consumer)."""
    binary = Path(sys.executable).parent / "functions-framework"
    command = [
        str(binary) if binary.exists() else "functions-framework",
        "--source",
        str(source),
        "--target",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(function_port),
    ]
    output = log_path.open("wb") if log_path else None
    process = subprocess.Popen(
        command,
        env={**os.environ, **env, "FUNCTION_TARGET": target},
        cwd=source.parent,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        start_new_session=True,
    )
    try:
        wait_port(function_port, timeout_s=60, process=process)
    except BaseException:  # a signal or a failure while it starts: it is not left behind
        stop([process])
        raise
    return process


def stop(
    processes: list[subprocess.Popen[bytes]], *, ignore_signals: bool = False, grace_s: float = 10
) -> None:
    """SIGTERM to each process's group (each child leads its own session), then SIGKILL to the
    groups still there after ``grace_s``."""
    if ignore_signals:  # a second Ctrl-C while stopping must not leave processes behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for process in processes:
        if process.poll() is None:
            _killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        _killpg(process.pid, signal.SIGKILL)  # whatever of its group outlived it


def _killpg(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def descendants(pid: int) -> set[int]:
    """Every living descendant of ``pid`` (Linux ``/proc``; empty elsewhere): what a test must
    find stopped after the stack it started has been told to stop."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if fields and fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited and not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def terminate_tree(process: subprocess.Popen[bytes], *, signum: int, grace_s: float) -> set[int]:
    """For tests: ``signum`` to ``process``; after ``grace_s``, SIGKILL to it and to every
    descendant (and its group) still alive, whatever the process did with the signal. Returns
    the descendants that were still alive when the grace ran out (none, if it stopped them)."""
    family = descendants(process.pid)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    deadline = time.monotonic() + 5
    while any(alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {p for p in family if alive(p)}
    for pid in [process.pid, *left]:
        for kill in (os.kill, os.killpg):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
    process.wait(timeout=10)
    return left
