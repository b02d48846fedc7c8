"""The admin console in a real browser (Debian's headless Chromium, through Selenium) against
``make run``'s stack on free ports: sign in with the local issuer, find purchases by token, by
Google and Apple order ids and by Apple transaction id (Production, then Sandbox), read the
timeline, re-grant with a reason and a confirmation, see the change and its audit line; a user
not on the admin list, an expired or foreign token, markup in store data, the page's headers,
keyboard use and a phone's width; the newest search wins over a slow older one (and the actions
act on what is shown), the timeline in the order of the times it shows, a lost answer to an action
and its retry. Skipped loudly without Chromium or the emulator (failed in CI)."""

from __future__ import annotations

import json
import time
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
from refundguard_dev.demo_tenants import DEMO_TENANTS
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
    assert fact(browser, "purchased") != "-"  # the notification's transaction says when
    link = visible(browser, "#ticket-link").get_attribute("value")
    assert link.endswith(f"#purchase/apple-sandbox/{SANDBOX_TRANSACTION}")
    stack.script(
        "scripts/send_apple_notification.py",
        "REFUND",
        "--transaction-id",
        SANDBOX_TRANSACTION,
        "--url",
        stack.url("apple_notifications"),
    )
    search(browser, SANDBOX_TRANSACTION, "apple-transaction")
    wait_for(browser, lambda d: heading(d).startswith("Access revoked by an Apple refund on "))
    refund = timeline(browser)[0]
    assert "“REFUND by Apple (no reason given)”" in refund and "None" not in refund
    assert "Found as an Apple original transaction id." in text_of(browser, ".status")
    search(browser, "MQ3/ZRT", "apple-order")
    assert text_of(browser, "#notice").startswith("That does not look like an Apple order id:")
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
    # The dialog's close event (which gives the focus back) comes a moment after it closes.
    wait_for(browser, lambda d: d.switch_to.active_element.get_attribute("data-action") == "revoke")
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


def add_apple_order(stack: LocalStack, order_id: str, transaction_id: str, delay_s: float) -> None:
    """An order the App Store stand-in knows, whose next Look Up Order ID answers late."""
    body = {"orderId": order_id, "transactionId": transaction_id, "delay_s": delay_s}
    request = urllib.request.Request(
        stack.url("apple_api") + "/_dev/order",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def answered(driver: Any, path_part: str) -> bool:
    """Whether the page has received the whole answer to a request whose URL contains
    ``path_part`` (Resource Timing lists a fetch once its answer has arrived)."""
    script = "return performance.getEntriesByType('resource').map((e) => e.name)"
    return any(path_part in name for name in driver.execute_script(script))


def test_the_newest_search_wins_and_the_actions_act_on_what_is_shown(
    stack: LocalStack, browser: Any
) -> None:
    slow_order, slow_transaction = "MQSLOWORD1", "2000000000000888"
    add_apple_order(stack, slow_order, slow_transaction, delay_s=4)
    sign_in(browser, console(stack), ADMIN)
    search(browser, slow_order)  # the Apple look-up answers in 4 s
    search(browser, DEMO_TOKEN)  # asked after it, answered first
    wait_for(browser, lambda d: fact(d, "purchase-id") == DEMO_TOKEN)
    # The older answer arrives (the stand-in was asked, refundguard answered the page) ...
    wait_for(browser, lambda d: answered(d, f"orders/{slow_order}"), timeout_s=30)
    browser.execute_async_script("setTimeout(arguments[0], 500)")  # ... and had time to land
    assert fact(browser, "purchase-id") == DEMO_TOKEN  # ... and is dropped
    assert fact(browser, "store") == "Google Play"
    assert browser.find_element("id", "results").get_attribute("aria-busy") == "false"
    assert visible(browser, "#query").get_attribute("value") == DEMO_TOKEN
    looked_up = [line for line in audit_lines(stack) if line.get("order_id") == slow_order]
    assert looked_up and looked_up[-1]["found_by"] == "store_api"

    before = len(timeline(browser))
    regrant_or_revoke(browser, "revoke", "chargeback, ticket #5150")
    wait_for(browser, lambda d: "Access revoked." in d.find_element("id", "notice").text)
    assert fact(browser, "purchase-id") == DEMO_TOKEN
    assert heading(browser).startswith(f"Access revoked by {ADMIN} (revoke) on ")
    assert len(timeline(browser)) == before + 1
    revoke = [line for line in audit_lines(stack) if line.get("action") == "revoke"][-1]
    assert revoke["store"] == "google" and revoke["reason"] == "chargeback, ticket #5150"
    # The Apple purchase the slow answer named was not touched.
    search(browser, slow_order)
    wait_for(browser, lambda d: fact(d, "purchase-id") == slow_transaction)
    assert not any("ADMIN_REVOKE" in entry for entry in timeline(browser))


def test_the_timeline_is_in_the_order_of_the_times_it_shows(
    stack: LocalStack, browser: Any
) -> None:
    token = "late-event-token-0001"
    now_ms = int(time.time() * 1000)
    hour = 3_600_000

    def send(kind: str, number: str | None, event_time_ms: int) -> None:
        args = [kind, "--token", token, "--event-time-ms", str(event_time_ms)]
        stack.play(*args, *(["--notification-type", number] if number else []))

    send("voided", None, now_ms)  # received first
    send("one-time", "1", now_ms - 3 * hour)  # the purchase, received late
    send("one-time", "2", now_ms - 3 * hour)  # same time as the purchase, received after it
    sign_in(browser, console(stack), ADMIN)
    search(browser, token)
    wait_for(browser, lambda d: len(timeline(d)) == 3)
    events = timeline(browser)
    assert "VOIDED_PURCHASE" in events[0]  # newest event time, though received first
    assert "ONE_TIME_PRODUCT_CANCELED" in events[1]  # same time as the next: received later
    assert "ONE_TIME_PRODUCT_PURCHASED" in events[2]
    assert "received" in events[1] and "received" in events[2]  # late: both times shown
    assert "received" not in events[0]  # on time: its time alone
    shown = browser.execute_script(
        "return [...document.querySelectorAll('.timeline > li .event-head > time')]"
        ".map((t) => Date.parse(t.getAttribute('datetime')))"
    )
    assert shown == sorted(shown, reverse=True)


def test_a_lost_answer_and_its_retry_say_what_was_written(stack: LocalStack, browser: Any) -> None:
    token = "retried-purchase-token-0001"
    stack.play("one-time", "--notification-type", "1", "--token", token)
    sign_in(browser, console(stack), ADMIN)
    search(browser, token)
    wait_for(browser, lambda d: fact(d, "purchase-id") == token)
    before = len(timeline(browser))
    # The network loses the answer to the first re-grant (refundguard did write it).
    browser.execute_script(
        """
        const realFetch = window.fetch;
        let lost = false;
        window.fetch = async (input, init) => {
          const answer = await realFetch(input, init);
          if (!lost && String(input).includes("entitlements:regrant")) {
            lost = true;
            throw new TypeError("Failed to fetch");
          }
          return answer;
        };
        """
    )
    regrant_or_revoke(browser, "regrant", "customer was double charged, ticket #6001")
    wait_for(browser, lambda d: "Access re-granted." in d.find_element("id", "notice").text)
    notice = text_of(browser, "#notice")
    assert "nothing new written" not in notice
    assert "the retry found your change already written (once, not twice)" in notice
    entries = timeline(browser)
    assert len(entries) == before + 1 and "ADMIN_REGRANT" in entries[0]
    lines = [line for line in audit_lines(stack) if line.get("action") == "regrant"][-2:]
    assert [line.get("replayed") for line in lines] == [False, True]


# ------------------------------------------------------------------------------------ tenants
# make run registers two creators (refundguard_dev.demo_tenants), each with a tenant admin. The
# tenant routes (GET /me, /tenants..., docs/console.md) belong to the admin API: the tests that
# need one are skipped, saying so, while the stack's admin API does not serve it.


def api_call(
    stack: LocalStack, method: str, path: str, email: str = ADMIN, body: Any = None
) -> tuple[int, dict[str, Any]]:
    """One call of the console's API as ``email`` (a local console token): status and JSON."""
    return stack.api(method, path.lstrip("/"), email, body)


def require_route(stack: LocalStack, method: str, path: str, body: Any = None) -> None:
    """Skip unless the stack's admin API serves ``method path`` (asked as the platform admin; a
    request it refuses as bad input writes nothing)."""
    if not stack.serves(method, path, ADMIN, body):
        pytest.skip(
            f"{method} /{path} is not served by this admin API yet (issue 17's tenant routes, "
            "docs/console.md); run this test once they are merged"
        )


def pick(driver: Any, tenant_id: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(visible(driver, "#tenant")).select_by_value(tenant_id)
    driver.find_element("id", "tenant-switch").click()


def picked(driver: Any) -> str:
    from selenium.webdriver.support.ui import Select

    option = Select(driver.find_element("id", "tenant")).first_selected_option
    return str(option.get_attribute("value"))


def focused(driver: Any) -> str:
    return str(driver.switch_to.active_element.get_attribute("id"))


def test_a_platform_admin_picks_a_tenant_switches_and_sets_it_up(
    stack: LocalStack, browser: Any
) -> None:
    from selenium.webdriver.support.ui import Select

    require_route(stack, "GET", "me")
    a, b = DEMO_TENANTS
    sign_in(browser, console(stack), ADMIN)
    wait_for(browser, lambda d: focused(d) == "query")
    values = [o.get_attribute("value") for o in Select(visible(browser, "#tenant")).options]
    assert values[0] == "*" and {a.id, b.id} <= set(values)
    assert picked(browser) == "*" and text_of(browser, "#tenant-role") == "platform admin"
    # All tenants: a look-up finds any tenant's purchase, and says whose it is.
    search(browser, b.token)
    wait_for(browser, lambda d: fact(d, "purchase-id") == b.token)
    assert b.id in fact(browser, "tenant") and visible(browser, "[data-action=revoke]")
    # Picking creator-a: creator-b's purchase is still a platform admin's to see, marked as
    # another tenant's, with a switch to its own tenant.
    pick(browser, a.id)
    assert not browser.find_element("id", "results").is_displayed()  # the old answer is gone
    search(browser, b.token)
    note = text_of(browser, ".tenant-note")
    assert f"belongs to {b.display_name} ({b.id})" in note
    visible(browser, "#switch-to-owner").click()
    wait_for(browser, lambda d: picked(d) == b.id)
    assert fact(browser, "purchase-id") == b.token
    assert not browser.find_elements("css selector", ".tenant-note")
    # creator-b's set-up pages: its apps (a platform admin's to change), its staff, the Play
    # service account to invite.
    visible(browser, "#view-setup-button").click()
    assert visible(browser, "#apps-play").get_attribute("value") == b.play_package
    assert b.bundle_id in visible(browser, "#apps-apple").get_attribute("value")
    wait_for(browser, lambda d: b.admin in text_of(d, "#setup-staff"))
    assert not browser.find_element("id", "view-purchases").is_displayed()
    wait_for(browser, lambda d: "@" in (visible(d, "#play-account").get_attribute("value") or ""))
    # A change on a stale read is refused, and the page reads the tenant again; then it saves.
    status, read = api_call(stack, "GET", f"tenants/{b.id}")
    assert status == 200
    changed = {"version": read["tenant"]["version"], "support_can_act": True}
    assert api_call(stack, "PATCH", f"tenants/{b.id}", body=changed)[0] == 200
    visible(browser, "#policy-refund_grant_below_percent").send_keys("15")
    browser.find_element("css selector", "#setup-policy button[type=submit]").click()
    wait_for(browser, lambda d: "Someone changed this tenant" in text_of(d, "#notice"))
    wait_for(browser, lambda d: visible(d, "#policy-support-can-act").is_selected())
    visible(browser, "#policy-refund_grant_below_percent").send_keys("15")
    browser.find_element("css selector", "#setup-policy button[type=submit]").click()
    wait_for(browser, lambda d: "The policy was saved." in text_of(d, "#notice"))
    saved = api_call(stack, "GET", f"tenants/{b.id}")[1]["tenant"]
    assert saved["policy"]["REFUND_GRANT_BELOW_PERCENT"] == "15" and saved["support_can_act"]
    # Back to all tenants: the set-up page is the new-tenant form.
    pick(browser, "*")
    visible(browser, "#new-tenant-id")


def test_tenant_staff_see_their_tenant_only(stack: LocalStack, browser: Any) -> None:
    """A tenant admin: no picker; their tenant's purchases; another tenant's purchase id reads
    exactly like one that does not exist (and the API's audit line says why); their tenant's apps
    read-only; its staff theirs to change."""
    require_route(stack, "GET", "me")
    a, b = DEMO_TENANTS
    sign_in(browser, console(stack), a.admin)
    wait_for(browser, lambda d: focused(d) == "query")
    assert not browser.find_element("id", "tenant-pick").is_displayed()
    assert a.id in text_of(browser, "#tenant-name")
    assert text_of(browser, "#tenant-role") == "tenant admin"
    search(browser, a.token)
    wait_for(browser, lambda d: fact(d, "purchase-id") == a.token)
    assert visible(browser, "[data-action=regrant]")

    def not_found(purchase_id: str) -> str:
        browser.execute_script("document.getElementById('notice').hidden = true")
        search(browser, purchase_id)
        return text_of(browser, "#notice")

    others = not_found(b.token)
    nobodys = not_found("creator-z-purchase-token-0404")
    assert others == nobodys and others.startswith("Not found")
    assert not browser.find_element("id", "results").is_displayed()
    denied = [line for line in audit_lines(stack) if line.get("denied") == "other_tenant"]
    assert denied and denied[-1]["actor"] == a.admin
    # The tenant's pages: apps to read, staff to manage, nothing of the other tenant.
    visible(browser, "#view-setup-button").click()
    wait_for(browser, lambda d: a.play_package in text_of(d, "#setup-apps"))
    assert not browser.find_elements("id", "apps-play")  # a platform admin's to change
    wait_for(browser, lambda d: a.admin in text_of(d, "#setup-staff"))
    visible(browser, "#staff-email").send_keys("support-a@example.com")
    browser.find_element("css selector", "#setup-staff button[type=submit]").click()
    wait_for(browser, lambda d: "support-a@example.com" in text_of(d, "#staff-list"))
    assert api_call(stack, "GET", f"tenants/{a.id}/staff", a.admin)[0] == 200
    visible(browser, '[data-email="support-a@example.com"] button').click()
    visible(browser, "#confirm-ok").click()
    wait_for(browser, lambda d: "support-a@example.com was removed." in text_of(d, "#setup-staff"))
    assert "support-a@example.com" not in text_of(browser, "#staff-list")
    page = browser.find_element("tag name", "body").text
    assert b.id not in page and b.display_name not in page


def test_a_tenant_admin_uploads_the_apple_key_once_and_checks_access(
    stack: LocalStack, browser: Any
) -> None:
    """The key's text leaves the page once: the form is emptied, the page never shows it, the
    tenant lists the key id; check access names each store's state, with the fix when it fails."""
    import re

    require_route(stack, "GET", "me")
    a = DEMO_TENANTS[0]
    require_route(stack, "PUT", f"tenants/{a.id}/apple-key", body={})
    refused = api_call(stack, "PUT", f"tenants/{a.id}/apple-key", body={})[1]
    assert refused.get("error") != "tenant_keys_off", "make run's console has no KMS stand-in"
    banner = rf"Apple key {a.apple_key_id} \(sealed with KMS\), issuer ([0-9a-f-]+),"
    issuer = re.search(banner, stack.output())
    assert issuer, "the banner names each tenant's Apple key and issuer"
    pem = a.apple_key_file.read_text()
    sign_in(browser, console(stack), a.admin)
    wait_for(browser, lambda d: focused(d) == "query")
    visible(browser, "#view-setup-button").click()
    visible(browser, "#key-id").send_keys(a.apple_key_id)
    visible(browser, "#key-issuer").send_keys(issuer.group(1))
    visible(browser, "#key-file").send_keys(str(a.apple_key_file))
    browser.find_element("css selector", "#setup-key button[type=submit]").click()
    uploaded = f"Key {a.apple_key_id} was uploaded and sealed."
    wait_for(browser, lambda d: uploaded in text_of(d, "#notice"))
    assert f"{a.apple_key_id} (in use)" in text_of(browser, "#setup-key")
    assert visible(browser, "#key-text").get_attribute("value") == ""
    body = pem.strip().splitlines()[1]
    assert body not in browser.page_source
    visible(browser, "#check-access").click()
    items = wait_for(
        browser, lambda d: d.find_elements("css selector", "#access-results li[data-store]")
    )
    assert len(items) == 2
    # make run seals each tenant's own key: both stores work for creator-a.
    assert [i.find_element("css selector", "code").text for i in items] == ["ok", "ok"]
    for item in items:
        assert re.search(r"(Google Play|App Store): ", item.text)
        if item.find_element("css selector", "code").text != "ok":
            assert "What to do: " in item.text


def test_the_tenant_pages_fit_a_phone(stack: LocalStack) -> None:
    """The picker and every set-up page at a phone's width: nothing sideways, every button a
    finger's size."""
    require_route(stack, "GET", "me")
    with chromium(PHONE) as driver:
        sign_in(driver, console(stack), ADMIN)
        pick(driver, DEMO_TENANTS[0].id)
        visible(driver, "#view-setup-button").click()
        wait_for(driver, lambda d: DEMO_TENANTS[0].admin in text_of(d, "#setup-staff"))
        visible(driver, "#check-access").click()
        wait_for(driver, lambda d: d.find_elements("css selector", "#access-results li"))
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= driver.execute_script("return window.innerWidth")
        buttons = driver.find_elements("css selector", "#tenant-bar button, #view-setup button")
        assert len(buttons) >= 8
        for button in buttons:
            box = button.rect
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE[0], button.text
            assert box["height"] >= 44, button.text


# ------------------------------------------------------------------------------ refund figures
# GET /insight (docs/insight.md) on make run's local engine, seeded with demo figures of each
# creator: the "Refund figures" page draws them, and its CSV is the API's.


def insight_csv(stack: LocalStack, query: str, email: str) -> str:
    request = urllib.request.Request(
        f"{stack.url('admin_console')}/insight?{query}&format=csv",
        headers={"Authorization": f"Bearer {mint(email, LOCAL_CONSOLE_CLIENT_ID)}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(answer.read().decode())


def figures_button(driver: Any) -> str:
    """The figures button's state once the page has asked the API: "shown" or "refused"."""
    state = wait_for(
        driver,
        lambda d: (
            (s := d.find_element("id", "view-figures-button").get_attribute("data-state"))
            in ("shown", "refused")
            and s
        ),
        timeout_s=60,
    )
    return str(state)


def open_figures(driver: Any) -> None:
    assert figures_button(driver) == "shown"
    visible(driver, "#view-figures-button").click()
    wait_for(driver, lambda d: d.find_elements("css selector", ".rg-insight-chart"), 60)


def table_rows(driver: Any) -> list[list[str]]:
    rows = driver.find_elements("css selector", ".rg-insight-table tbody tr")
    return [[c.text for c in row.find_elements("css selector", "td")] for row in rows]


def test_refund_figures_of_a_tenant_as_charts_tables_and_csv(
    stack: LocalStack, browser: Any, tmp_path: Any
) -> None:
    from selenium.webdriver.support.ui import Select

    require_route(stack, "GET", "me")
    require_route(stack, "GET", "insight")
    a, b = DEMO_TENANTS
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    sign_in(browser, console(stack), ADMIN)
    wait_for(browser, lambda d: focused(d) == "query")
    pick(browser, a.id)
    open_figures(browser)
    assert f"Refunds of {a.id}, per week" in text_of(browser, ".rg-insight-title")
    assert len(browser.find_elements("css selector", ".rg-insight-bars")) == 7
    bars = browser.find_elements("css selector", ".rg-insight-bars rect")
    assert any(float(bar.get_attribute("height")) > 0 for bar in bars)
    # The table is the API's answer for the range the page shows, as the same person.
    start = visible(browser, "#figures-from").get_attribute("value")
    end = visible(browser, "#figures-to").get_attribute("value")
    status, answer = api_call(
        stack, "GET", f"insight?tenant={a.id}&period=week&from={start}&to={end}"
    )
    assert status == 200
    every = [r for r in answer["rows"] if r["product_id"] == "*"]
    shown = [row for row in table_rows(browser) if row[1] == "All products"]
    assert len(shown) == len(every) == len(table_rows(browser)) // 4 > 0
    assert [int(row[2]) for row in shown] == [r["purchases"] for r in every]
    assert sum(r["purchases"] for r in every) > 0 and sum(r["refunds"] for r in every) > 0
    # Per month, with the keyboard: the form is submitted with Enter.
    Select(browser.find_element("id", "figures-period")).select_by_value("month")
    browser.find_element("id", "figures-to").send_keys("\n")
    wait_for(browser, lambda d: "per month" in text_of(d, ".rg-insight-title"))
    # Download CSV: the file is the API's CSV of the same figures.
    visible(browser, "#figures-csv").click()
    wait_for(browser, lambda d: "Saved refundguard-insight-" in text_of(d, "#figures-state"))
    saved = wait_for(browser, lambda d: list(tmp_path.glob("*.csv")), 30)
    assert saved[0].name.startswith(f"refundguard-insight-{a.id}-month-")
    text = saved[0].read_bytes().decode()  # as saved: the CSV's CRLF kept
    start = visible(browser, "#figures-from").get_attribute("value")
    assert text == insight_csv(stack, f"tenant={a.id}&period=month&from={start}&to={end}", ADMIN)
    lines = text.splitlines()
    assert "purchases" in lines[0] and len(lines) > 1
    assert all(line.startswith(f"{a.id},") for line in lines[1:])
    # All tenants: every tenant's rows, with a tenant column.
    pick(browser, "*")
    wait_for(browser, lambda d: "every tenant" in text_of(d, ".rg-insight-title"), 60)
    tenants = {row[0] for row in table_rows(browser)}
    assert {a.id, b.id} <= tenants


def test_tenant_staff_see_their_own_figures_only(stack: LocalStack, browser: Any) -> None:
    """A tenant admin sees their tenant's figures; another tenant's are the API's 404 and never
    on the page. Tenant support: the API refuses (403), and the page shows no figures button."""
    require_route(stack, "GET", "me")
    require_route(stack, "GET", "insight")
    a, b = DEMO_TENANTS
    assert api_call(stack, "GET", f"insight?tenant={b.id}", a.admin)[0] == 404
    assert api_call(stack, "GET", f"insight?tenant={a.id}", a.admin)[0] == 200
    sign_in(browser, console(stack), a.admin)
    wait_for(browser, lambda d: focused(d) == "query")
    open_figures(browser)
    assert f"Refunds of {a.id}" in text_of(browser, ".rg-insight-title")
    assert any(int(row[2]) > 0 for row in table_rows(browser))
    page = browser.find_element("tag name", "body").text
    assert b.id not in page and b.display_name not in page

    support = "support-figures-a@example.com"
    assert api_call(stack, "PUT", f"tenants/{a.id}/staff/{support}", a.admin, {"role": "support"})[
        0
    ] in (200, 201)
    try:
        assert api_call(stack, "GET", f"insight?tenant={a.id}", support)[0] == 403
        browser.find_element("id", "sign-out").click()
        sign_in(browser, console(stack), support)
        wait_for(browser, lambda d: focused(d) == "query")
        assert figures_button(browser) == "refused"
        assert not browser.find_element("id", "view-figures-button").is_displayed()
        assert not browser.find_elements("css selector", ".rg-insight")
    finally:
        api_call(stack, "DELETE", f"tenants/{a.id}/staff/{support}", a.admin)
