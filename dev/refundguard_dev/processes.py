"""Child processes for ``make run`` and the tests: functions-framework servers, readiness."""

from __future__ import annotations

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
    wait_port(function_port, timeout_s=60, process=process)
    return process


def stop(processes: list[subprocess.Popen[bytes]], *, ignore_signals: bool = False) -> None:
    if ignore_signals:  # a second Ctrl-C while stopping must not leave processes behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
