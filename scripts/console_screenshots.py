#!/usr/bin/env python3
"""Screenshots of the admin console's main screens, on a desktop and a phone width, into
docs/console/ (``make screenshots``; re-run it after changing the console and commit the PNGs).

Starts ``make run``'s stack on free ports (nothing reaches Google or Apple), refunds the demo
purchase through the Play function, then drives headless Chromium: the sign-in screen, the
revoked purchase with its timeline, the re-grant confirmation, the purchase once re-granted, and
a user who is not on the admin list being refused. With the tenant routes (GET /me), also: a
platform admin's tenant picker over another tenant's purchase, and a tenant admin's set-up pages
(``tenant-*`` and ``setup-*``); with GET /insight, a platform admin's refund figures of a creator
(``figures-desktop``). ``--only figures`` takes that one alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from refundguard_dev.browser import (
    DESKTOP,
    PHONE,
    LocalStack,
    chromium,
    find_browser,
    regrant_or_revoke,
    screenshot,
    search,
    sign_in,
    visible,
    wait_for,
)
from refundguard_dev.demo_tenants import DEMO_TENANTS
from refundguard_dev.local_stores import DEMO_ORDER, DEMO_TOKEN

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "admin@example.com"
REASON = "refund was a mistake, ticket #4711"


SIZES = (("desktop", DESKTOP), ("phone", PHONE))


def open_purchase(driver: Any, url: str) -> None:
    sign_in(driver, url, ADMIN)
    search(driver, DEMO_TOKEN)
    visible(driver, ".timeline")


def top(driver: Any) -> None:
    driver.execute_script("window.scrollTo(0, 0)")


def screens(stack: LocalStack, out: Path) -> None:
    url = stack.url("admin_console") + "/"
    for name, size in SIZES:
        with chromium(size) as driver:
            driver.get(url)
            visible(driver, "#rg-local-email")
            screenshot(driver, out / f"sign-in-{name}.png")
            open_purchase(driver, url)
            top(driver)
            screenshot(driver, out / f"revoked-{name}.png")
            regrant_or_revoke(driver, "regrant", REASON, confirm=False)
            time.sleep(1)  # a phone's tap highlight fades
            screenshot(driver, out / f"regrant-confirm-{name}.png", full_page=False)
            driver.find_element("id", "confirm-cancel").click()
        with chromium(size) as driver:
            sign_in(driver, url, "eve@example.com")
            visible(driver, "#notice")
            screenshot(driver, out / f"refused-{name}.png")
    for name, size in SIZES:  # re-granted once (on the desktop), then seen on both widths
        with chromium(size) as driver:
            open_purchase(driver, url)
            if name == "desktop":
                regrant_or_revoke(driver, "regrant", REASON)
                wait_for(driver, lambda d: "re-granted" in d.find_element("id", "notice").text)
            top(driver)
            screenshot(driver, out / f"regranted-{name}.png")


def tenant_screens(stack: LocalStack, out: Path) -> bool:
    """The tenant picker and a tenant's set-up pages; False (nothing taken) without GET /me."""
    from selenium.webdriver.support.ui import Select

    if not stack.serves("GET", "me", ADMIN):
        return False
    url = stack.url("admin_console") + "/"
    a, b = DEMO_TENANTS
    for name, size in SIZES:
        with chromium(size) as driver:
            sign_in(driver, url, ADMIN)
            Select(visible(driver, "#tenant")).select_by_value(a.id)
            driver.find_element("id", "tenant-switch").click()
            search(driver, b.token)
            visible(driver, ".tenant-note")
            top(driver)
            screenshot(driver, out / f"tenant-picker-{name}.png")
        with chromium(size) as driver:
            sign_in(driver, url, a.admin)
            visible(driver, "#view-setup-button").click()
            wait_for(driver, lambda d: a.admin in d.find_element("id", "setup-staff").text)
            visible(driver, "#check-access").click()
            wait_for(driver, lambda d: d.find_elements("css selector", "#access-results li"))
            top(driver)
            screenshot(driver, out / f"setup-{name}.png")
    return True


def figures_screen(stack: LocalStack, out: Path) -> bool:
    """A creator's refund figures (make run's demo data), the top of the page with its charts;
    False (nothing taken) without GET /me or GET /insight."""
    from selenium.webdriver.support.ui import Select

    if not (stack.serves("GET", "me", ADMIN) and stack.serves("GET", "insight", ADMIN)):
        return False
    url = stack.url("admin_console") + "/"
    a, _ = DEMO_TENANTS
    with chromium(DESKTOP) as driver:
        sign_in(driver, url, ADMIN)
        Select(visible(driver, "#tenant")).select_by_value(a.id)
        driver.find_element("id", "tenant-switch").click()
        wait_for(
            driver,
            lambda d: (
                d.find_element("id", "view-figures-button").get_attribute("data-state") == "shown"
            ),
            timeout_s=60,
        )
        visible(driver, "#view-figures-button").click()
        wait_for(driver, lambda d: d.find_elements("css selector", ".rg-insight-chart"), 60)
        top(driver)
        screenshot(driver, out / "figures-desktop.png", full_page=False)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    parser.add_argument("--only", choices=("all", "figures"), default="all")
    args = parser.parse_args()
    if find_browser() is None:
        print("Chromium is missing: `make browser` installs it (as root)", file=sys.stderr)
        return 2
    stack = LocalStack({"ADMIN_EMAILS": ADMIN}).start()
    try:
        stack.play("one-time", "--notification-type", "1", "--token", DEMO_TOKEN)
        stack.play("voided", "--token", DEMO_TOKEN, "--order-id", DEMO_ORDER)
        if args.only == "all":
            screens(stack, args.out)
            if not tenant_screens(stack, args.out):
                print("The admin API serves no GET /me: tenant screenshots left as they are")
        if not figures_screen(stack, args.out):
            print("The admin API serves no GET /insight: the figures screenshot left as it is")
    finally:
        stack.stop()
    for path in sorted(args.out.glob("*.png")):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
