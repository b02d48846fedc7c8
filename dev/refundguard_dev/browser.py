"""Driving the admin console in a real browser: Debian's headless Chromium through Selenium,
against ``make run``'s stack started on free ports (``LocalStack``). Used by
tests/e2e/test_console_browser.py and scripts/console_screenshots.py; never deployed.

The browser runs with the network closed in mind: no first-run, sync, component updates or
background requests, a throw-away profile; Selenium is given the driver's path, so Selenium
Manager never downloads anything.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .emulator import free_ports
from .processes import terminate_tree
from .stack import PORTS

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_NAMES = ("chromium", "chromium-browser")
DRIVER_PATHS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Like a phone's overlay scrollbars: the page gets the window's whole width, in screenshots
    # too (a classic scrollbar would narrow it by 15 px).
    "--hide-scrollbars",
)
BANNER = "refundguard is running locally"
DESKTOP = (1280, 900)
PHONE = (390, 844)  # a current phone's CSS viewport


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, from $CHROMIUM_BIN / $CHROMEDRIVER_BIN or Debian's
    packages ``chromium`` and ``chromium-driver``; None when either is missing."""
    chromium = os.environ.get("CHROMIUM_BIN") or next(
        (found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None
    )
    driver = os.environ.get("CHROMEDRIVER_BIN") or shutil.which("chromedriver")
    driver = driver or next((p for p in DRIVER_PATHS if Path(p).is_file()), None)
    if not chromium or not driver:
        return None
    return chromium, driver


@contextmanager
def chromium(size: tuple[int, int] = DESKTOP) -> Iterator[Any]:
    """A headless Chromium (Selenium WebDriver) in a temporary profile, quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError("Chromium or chromedriver is missing (make browser installs them)")
    binary, driver_path = found
    with tempfile.TemporaryDirectory(prefix="refundguard-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.add_argument(f"--window-size={size[0]},{size[1]}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            # The window's frame is not the page's: make the page (viewport) exactly ``size``.
            driver.set_window_size(*size)
            inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
            driver.set_window_size(2 * size[0] - inner[0], 2 * size[1] - inner[1])
            yield driver
        finally:
            driver.quit()


def screenshot(driver: Any, path: Path, *, full_page: bool = True) -> None:
    """A PNG of the page (the whole page, not only the window, when ``full_page``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not full_page:
        driver.save_screenshot(str(path))
        return
    width = driver.execute_script("return window.innerWidth")
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


class LocalStack:
    """``scripts/run_local.py`` (what ``make run`` runs) on free ports; its output kept."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        variables = [variable for variable, _ in PORTS.values()]
        self.ports = dict(zip(variables, free_ports(len(variables)), strict=True))
        self.env = {**os.environ, **{k: str(v) for k, v in self.ports.items()}, **(env or {})}
        self.env.pop("ADMIN_CERTS_URL", None)
        self._run_dir = tempfile.TemporaryDirectory(prefix="refundguard-stack-")
        # Its own stack file: a make run already running keeps its own (and its scripts' target).
        self.env["REFUNDGUARD_STACK_FILE"] = str(Path(self._run_dir.name) / "stack.json")
        self.lines: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[PORTS[service][0]]}"

    def start(self, timeout_s: float = 180) -> LocalStack:
        self.process = subprocess.Popen(
            [sys.executable, "scripts/run_local.py"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not any(BANNER in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("make run did not start:\n" + "".join(self.lines[-40:]))
            time.sleep(0.2)
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.append(raw.decode("utf-8", "replace"))

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        """SIGTERM (run_local stops its children); after a grace, SIGKILL to it and to every
        descendant still alive, whatever happened."""
        if self.process is not None:
            terminate_tree(self.process, signum=signal.SIGTERM, grace_s=60)
        self._run_dir.cleanup()

    def script(self, *args: str) -> str:
        """Run a helper script (scripts/...) against this stack; its stdout."""
        done = subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args}: {done.stderr}{done.stdout}")
        return done.stdout

    def api(
        self, method: str, path: str, email: str, body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        """One call of the console's API (``path`` without a leading /) as ``email``, with a
        local console token: the status and the JSON answer."""
        import json
        import urllib.error
        import urllib.request

        from .dev_issuer import mint
        from .local import LOCAL_CONSOLE_CLIENT_ID

        request = urllib.request.Request(
            f"{self.url('admin_console')}/{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {mint(email, LOCAL_CONSOLE_CLIENT_ID)}",
                "Content-Type": "application/json",
            },
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def serves(self, method: str, path: str, email: str, body: Any = None) -> bool:
        """Whether the stack's admin API has the route (asked as ``email``; anything but a 404
        ``no_such_route`` says it has: a request refused as bad input writes nothing)."""
        status, answer = self.api(method, path, email, body)
        code = answer.get("error")
        code = code.get("code") if isinstance(code, dict) else code
        return not (status == 404 and code == "no_such_route")

    def play(self, *args: str) -> str:
        """``scripts/send_play_notification.py ARGS`` to this stack's Play function."""
        url = self.url("play_notifications")
        return self.script("scripts/send_play_notification.py", *args, "--url", url)


# ------------------------------------------------------------------------------ the page, driven


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout_s: float = 15) -> Any:
    """``condition`` once it holds; an element replaced while it was read (the page re-drew it)
    is read again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout_s, ignored_exceptions=ignored).until(condition)


def visible(driver: Any, css: str, timeout_s: float = 15) -> Any:
    """The element matching ``css`` once it is displayed."""
    from selenium.webdriver.common.by import By

    def shown(d: Any) -> Any:
        found = [e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
        return found[0] if found else False

    return wait_for(driver, shown, timeout_s)


def sign_in(driver: Any, url: str, email: str) -> None:
    """Open the console (``url``: its page, maybe with a #fragment) and sign in through make
    run's local sign-in form."""
    driver.get(url)
    field = visible(driver, "#rg-local-email")
    field.clear()
    field.send_keys(email)
    visible(driver, "#rg-local-submit").click()


def search(driver: Any, text: str, kind: str = "auto") -> None:
    from selenium.webdriver.support.ui import Select

    query = visible(driver, "#query")
    query.clear()
    query.send_keys(text)
    Select(driver.find_element("id", "kind")).select_by_value(kind)
    driver.find_element("css selector", "#search button[type=submit]").click()


def text_of(driver: Any, css: str, timeout_s: float = 15) -> str:
    return str(visible(driver, css, timeout_s).text)


def regrant_or_revoke(driver: Any, action: str, reason: str, *, confirm: bool = True) -> None:
    """Open the action form, give the reason, review; confirm in the dialog (or leave it open)."""
    visible(driver, f"[data-action={action}]").click()
    visible(driver, "#reason").send_keys(reason)
    driver.find_element("css selector", ".action-form button[type=submit]").click()
    visible(driver, "#confirm-ok")
    if confirm:
        driver.find_element("id", "confirm-ok").click()
