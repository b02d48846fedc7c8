"""The admin console in a real browser (Debian's headless Chromium, through Selenium) against
``make run``'s stack on free ports: sign in with the local issuer, find purchases by token, by
Google and Apple order ids and by Apple transaction id (Production, then Sandbox), read the
timeline, re-grant with a reason and a confirmation, see the change and its audit line; a user
not on the admin list, an expired or foreign token, markup in store data, the page's headers,
keyboard use and a phone's width. Skipped loudly without Chromium or the emulator (failed in CI)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from refundguard_dev.browser import (
    PHONE,
    LocalStack,
    chromium,
    regrant_or_revoke,
    search,
    sign_in,
    text_of,
    visible,
    wait_for,
)
from refundguard_dev.dev_issuer import mint
from refundguard_dev.emulator import DEFAULT_JAR, find_emulator_jar
from refundguard_dev.local import LOCAL_CONSOLE_CLIENT_ID, PROJECT
from refundguard_dev.local_stores import APPLE_ORDER, DEMO_ORDER, DEMO_TOKEN, UNSEEN_ORDER
from support import require, require_browser

pytestmark = [pytest.mark.emulator, pytest.mark.slow, pytest.mark.browser]

ADMIN = "admin@example.com"
MARKUP = "<img src=x onerror=alert(1)>"
SANDBOX_TRANSACTION = "2000000000000777"


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    require_browser()
    require(find_emulator_jar(), "FIRESTORE", f"the Firestore emulator ({DEFAULT_JAR})")
    local = LocalStack({"ADMIN_EMAILS": ADMIN}).start()
    try:
        local.play("one-time", "--notification-type", "1", "--token", DEMO_TOKEN)
        local.play("voided", "--token", DEMO_TOKEN, "--order-id", DEMO_ORDER)
        yield local
    finally:
        local.stop()


@pytest.fixture
def browser(stack: LocalStack) -> Iterator[Any]:
    with chromium() as driver:
        yield driver
        violations = [e for e in driver.get_log("browser") if "Content Security Policy" in str(e)]
        assert violations == [], violations


def console(stack: LocalStack) -> str:
    """The console page's URL."""
    return stack.url("admin_console") + "/"


def heading(driver: Any) -> str:
    return text_of(driver, "#purchase-title")


def timeline(driver: Any) -> list[str]:
    return [e.text for e in driver.find_elements("css selector", ".timeline > li")]


def fact(driver: Any, name: str) -> str:
    return text_of(driver, f'[data-fact="{name}"] dd')


def audit_lines(stack: LocalStack) -> list[dict[str, Any]]:
    lines = []
    for raw in stack.lines:
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if line.get("audit") and line.get("function") == "admin_console":
            lines.append(line)
    return lines


def test_page_and_api_answers_carry_a_strict_policy(stack: LocalStack) -> None:
    with urllib.request.urlopen(console(stack), timeout=10) as answer:
        headers = answer.headers
        page = answer.read().decode()
    csp = headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    issuer = stack.url("issuer")
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == f"'self' {issuer}/gsi/client"
    assert directives["style-src"] == f"'self' {issuer}/gsi/style"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp and "data:" not in csp and "*" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in page and " style=" not in page and "onclick" not in page


def test_sign_in_find_by_token_read_the_timeline_and_regrant(
    stack: LocalStack, browser: Any
) -> None:
    sign_in(browser, console(stack), ADMIN)
    wait_for(browser, lambda d: d.switch_to.active_element.get_attribute("id") == "query")
    assert text_of(browser, "#who-email") == ADMIN
    for panel in ("refund-requests", "reconciliation"):  # shown in words, never as raw JSON
        shown = browser.find_element("id", panel)
        assert shown.is_displayed() and not shown.find_elements("css selector", "pre.raw")
    assert text_of(browser, "#reconciliation .panel-body").startswith(("No reconciliation", "Run "))
    search(browser, DEMO_TOKEN)
    assert heading(browser).startswith("Access revoked by a Google refund on ")
    assert browser.switch_to.active_element.get_attribute("id") == "purchase-title"
    events = timeline(browser)
    assert len(events) == 2
    assert "VOIDED_PURCHASE" in events[0] and "Set status to revoked (was active)" in events[0]
    assert "ONE_TIME_PRODUCT_PURCHASED" in events[1]
    link = visible(browser, "#ticket-link").get_attribute("value")
    assert link == f"{console(stack)}#order/{DEMO_ORDER}" and DEMO_TOKEN not in link

    regrant_or_revoke(browser, "regrant", "refund was a mistake, ticket #4711")
    wait_for(browser, lambda d: "Access re-granted." in d.find_element("id", "notice").text)
    assert heading(browser).startswith(f"Access re-granted by {ADMIN} on ")
    newest = timeline(browser)[0]
    assert "ADMIN_REGRANT" in newest and f"By {ADMIN}" in newest
    assert "“refund was a mistake, ticket #4711”" in newest
    assert len(timeline(browser)) == 3
    audit = [line for line in audit_lines(stack) if line.get("action") == "regrant"]
    assert audit and audit[-1]["actor"] == ADMIN and audit[-1]["via"] == "console"
    assert audit[-1]["reason"] == "refund was a mistake, ticket #4711"
    assert audit[-1]["status"] == "active" and audit[-1]["outcome"] == "applied"

    # The ticket link opens the same purchase after a fresh sign-in.
    browser.find_element("id", "sign-out").click()
    visible(browser, "#rg-local-email")
    assert not browser.find_elements("css selector", "#results-body *")
    sign_in(browser, link, ADMIN)
    wait_for(browser, lambda d: heading(d).startswith("Access re-granted"))


def test_find_by_google_and_apple_order_ids(stack: LocalStack, browser: Any) -> None:
    sign_in(browser, console(stack), ADMIN)
    search(browser, DEMO_ORDER)
    wait_for(browser, lambda d: fact(d, "purchase-id") == DEMO_TOKEN)
    assert "in refundguard's ledger" in text_of(browser, ".status")
    search(browser, UNSEEN_ORDER)
    wait_for(browser, lambda d: heading(d).startswith("No access decision yet"))
    assert "asked the store's API" in text_of(browser, ".status")
    assert "ORDER_LOOKUP" in timeline(browser)[0]
    search(browser, APPLE_ORDER)
    wait_for(browser, lambda d: fact(d, "store") == "App Store (Production)")
    search(browser, "GPA.9999-0000-0000-00000")
    notice = text_of(browser, "#notice")
    assert notice.startswith("Order not found:") and "GPA.9999-0000-0000-00000" in notice


def test_an_apple_transaction_id_is_looked_up_in_production_then_sandbox(
    stack: LocalStack, browser: Any
) -> None:
    stack.script(
        "scripts/send_apple_notification.py",
        "ONE_TIME_CHARGE",
        "--transaction-id",
        SANDBOX_TRANSACTION,
        "--url",
        stack.url("apple_notifications"),
    )
    sign_in(browser, console(stack), ADMIN)
    search(browser, SANDBOX_TRANSACTION)
    wait_for(browser, lambda d: fact(d, "store") == "App Store (Sandbox)")
    assert heading(browser).startswith("Access granted by an Apple purchase on ")
    link = visible(browser, "#ticket-link").get_attribute("value")
    assert link.endswith(f"#purchase/apple-sandbox/{SANDBOX_TRANSACTION}")
    search(browser, "1999999999999999")
    assert "Not found" in text_of(browser, "#notice")


def test_a_user_not_on_the_admin_list_is_refused(stack: LocalStack, browser: Any) -> None:
    sign_in(browser, console(stack), "eve@example.com")
    notice = text_of(browser, "#notice")
    assert notice.startswith("Not allowed: eve@example.com is not allowed to use")
    assert "admin list" in notice
    assert not browser.find_element("id", "workspace").is_displayed()
    assert browser.find_element("id", "sign-in").is_displayed()


def test_expired_and_foreign_tokens_sign_the_page_out(stack: LocalStack, browser: Any) -> None:
    sign_in(browser, console(stack), ADMIN)
    visible(browser, "#query")
    # A token for the admin function (its URL as audience) is not one for the console.
    foreign = mint(ADMIN, stack.url("admin"))
    browser.execute_script("google.accounts.id.signInWith(arguments[0])", foreign)
    wait_for(browser, lambda d: "signed out" in d.find_element("id", "notice").text)
    assert not browser.find_element("id", "workspace").is_displayed()
    expired = mint(ADMIN, LOCAL_CONSOLE_CLIENT_ID, lifetime_s=-120)
    browser.execute_script("google.accounts.id.signInWith(arguments[0])", expired)
    wait_for(browser, lambda d: "expired" in d.find_element("id", "notice").text)


def test_markup_in_store_data_is_shown_as_text_and_runs_nothing(
    stack: LocalStack, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from refundguard.model import LedgerEvent, Source, Status, StoreName
    from refundguard.store import EntitlementStore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", stack.url("firestore").removeprefix("http://"))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    store = EntitlementStore.from_env(
        {"GOOGLE_CLOUD_PROJECT": PROJECT, "FIRESTORE_EMULATOR_HOST": "set above"}
    )
    store.apply(
        LedgerEvent(
            store=StoreName.GOOGLE,
            purchase_id="hostile-purchase-token-0001",
            event_id="hostile-1",
            source=Source.GOOGLE,
            type="<b>VOIDED_PURCHASE</b>",
            event_time_ms=1_790_000_000_000,
            effect=Status.REVOKED,
            product_id=MARKUP,
            user_id="<script>alert(2)</script>",
            details={"refundReason": "<svg onload=alert(3)>", "judgement": "abc\u202edef"},
        )
    )
    sign_in(browser, console(stack), ADMIN)
    search(browser, "hostile-purchase-token-0001")
    wait_for(browser, lambda d: fact(d, "product") == MARKUP)
    assert fact(browser, "account") == "<script>alert(2)</script>"
    browser.find_element("css selector", ".timeline details summary").click()
    details = text_of(browser, ".timeline .details")
    assert "<svg onload=alert(3)>" in details and "abc\\u202edef" in details
    assert "<b>VOIDED_PURCHASE</b>" in timeline(browser)[0]
    injected = "#results img, #results script, #results svg, #results b"
    assert browser.find_elements("css selector", injected) == []
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018


def test_keyboard_only_and_the_confirmation_can_be_cancelled(
    stack: LocalStack, browser: Any
) -> None:
    from selenium.webdriver.common.keys import Keys

    sign_in(browser, console(stack), ADMIN)
    wait_for(browser, lambda d: d.switch_to.active_element.get_attribute("id") == "query")
    browser.switch_to.active_element.send_keys(DEMO_ORDER, Keys.ENTER)
    wait_for(browser, lambda d: d.switch_to.active_element.get_attribute("id") == "purchase-title")
    before = heading(browser)
    regrant_or_revoke(browser, "revoke", "testing the cancel button", confirm=False)
    assert browser.switch_to.active_element.get_attribute("id") == "confirm-cancel"
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_for(browser, lambda d: not d.find_element("id", "confirm").is_displayed())
    assert browser.switch_to.active_element.get_attribute("data-action") == "revoke"
    assert heading(browser) == before  # nothing was done


def test_a_phone_width_shows_everything_without_sideways_scrolling(stack: LocalStack) -> None:
    with chromium(PHONE) as driver:
        sign_in(driver, console(stack), ADMIN)
        search(driver, DEMO_TOKEN)
        wait_for(driver, timeline)
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= driver.execute_script("return window.innerWidth")
        for css in ("[data-action=regrant]", "[data-action=revoke]", "#ticket-link"):
            box = visible(driver, css).rect
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE[0]
            assert box["height"] >= 44 or css == "#ticket-link"
