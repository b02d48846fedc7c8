"""The admin CLI's tenant commands (``me``, ``tenants``, ``staff``, ``entitlements``, ``migrate``)
against the real function served over HTTP and the Firestore emulator."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from refundguard.model import StoreName
from refundguard_admin import cli
from refundguard_dev.id_tokens import AUDIENCE, CertServer, TestSigner
from support import served
from tenant_fixtures import ADMIN, old_entitlement, old_request, purchase


@pytest.fixture
def server_url(
    emulator_env: dict[str, str], certs: CertServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    env = {"ADMIN_AUDIENCES": AUDIENCE, "ADMIN_EMAILS": ADMIN, "ADMIN_CERTS_URL": certs.url}
    with served("admin", env, monkeypatch) as url:
        yield url


@pytest.fixture
def admin(server_url: str, signer: TestSigner) -> Any:
    def run(*argv: str, who: str = ADMIN) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        argv = ("--url", server_url, "--token", signer.token(who), *argv)
        code = cli.main(list(argv), out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    return run


def test_tenant_lifecycle(admin: Any) -> None:
    code, out, err = admin(
        "tenants", "create", "acme", "--name", "Acme", "--play-package", "com.acme.app",
        "--apple-app", "com.acme.ios:1234567890:Production+Sandbox", "--play-api",
        "yes",
    )  # fmt: skip
    assert code == 0, err
    assert "Tenant acme: Acme (active, version 1)" in out
    assert "com.acme.ios (1234567890, Production+Sandbox)" in out
    assert "(Play Developer API on)" in out
    assert admin("tenants", "create", "globex", "--name", "Globex")[0] == 0
    code, out, _ = admin("tenants", "list", "--limit", "1")  # pages through
    assert "Tenants (2):" in out and "acme" in out and "globex" in out
    code, out, err = admin(
        "tenants", "update", "acme", "--support-can-act", "yes",
        "--policy", "REFUND_REQUESTS=off",
    )  # fmt: skip
    assert code == 0, err
    assert "support can act  yes" in out and "REFUND_REQUESTS=off" in out and "version 2" in out
    code, out, err = admin("tenants", "suspend", "acme")
    assert code == 0 and "(suspended, version 3)" in out, err
    code, out, err = admin("tenants", "resume", "acme", "--json")
    assert code == 0 and json.loads(out)["tenant"]["status"] == "active"
    assert admin("tenants", "delete", "globex")[0] == cli.EXIT_USAGE  # needs --yes
    code, out, _ = admin("tenants", "delete", "globex", "--yes")
    assert code == 0 and "Deleted tenant globex" in out
    code, _, err = admin("tenants", "show", "globex")
    assert code == cli.EXIT_API_ERROR and "no_such_tenant" in err
    code, _, err = admin("tenants", "create", "acme", "--name", "Again")
    assert code == cli.EXIT_API_ERROR and "tenant_exists" in err


def test_staff_and_me(admin: Any) -> None:
    admin("tenants", "create", "acme", "--name", "Acme")
    code, out, err = admin(
        "staff", "add", "ann@acme.example", "--tenant", "acme", "--role", "admin"
    )
    assert code == 0 and "ann@acme.example is now admin." in out, err
    code, out, _ = admin("me", who="ann@acme.example")
    assert code == 0 and "platform role -" in out and "acme" in out and "admin" in out
    code, out, _ = admin("staff", "list", "--tenant", "acme", who="ann@acme.example")
    assert "Staff (1):" in out and "ann@acme.example" in out
    code, out, _ = admin("staff", "add", "svc@platform.example", "--platform", "service")
    assert code == 0 and "is now service" in out
    assert "svc@platform.example" in admin("staff", "list")[1]
    code, out, _ = admin("staff", "remove", "ann@acme.example", "--tenant", "acme")
    assert code == 0 and "Removed ann@acme.example." in out
    code, _, err = admin("me", who="ann@acme.example")
    assert code == cli.EXIT_API_ERROR and "not_an_admin" in err
    assert admin("staff", "add", "x@example.com")[0] == cli.EXIT_USAGE


def test_entitlements_backfill_pages_through(admin: Any, store: Any) -> None:
    admin("tenants", "create", "acme", "--name", "Acme")
    for i in range(5):
        purchase(store, "acme", f"acme-{i}")
    purchase(store, "globex", "globex-0")
    code, out, err = admin("entitlements", "acme", "--page-size", "2", "--json")
    assert code == 0, err
    found = json.loads(out)["entitlements"]
    assert sorted(e["purchase_id"] for e in found) == [f"acme-{i}" for i in range(5)]
    code, out, _ = admin("entitlements", "acme", "--status", "revoked")
    assert code == 0 and "(oldest change first, 0)" in out


def test_migrate_loops_until_done_and_regrant_names_a_tenant(admin: Any, store: Any) -> None:
    for i in range(5):
        old_entitlement(store, f"old-{i}")
    old_request(store, "google:req-0")
    code, out, err = admin("migrate", "--page-size", "2")
    assert code == 0, err
    assert "6 document(s) stamped tenant=default, 6 looked at" in out
    code, out, _ = admin("migrate")
    assert "0 document(s) stamped" in out
    admin("tenants", "create", "acme", "--name", "Acme")
    code, out, err = admin(
        "regrant", "google", "fresh-1", "--tenant", "acme", "--reason", "invoice", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["entitlement"]["tenant"] == "acme"
    assert store.get(StoreName.GOOGLE, "fresh-1").tenant == "acme"
