"""`make run`'s local configuration really starts all three functions and lets the printed recipes
work: the admin function accepts the local dev ID tokens (and only for its admins), the Apple
function trusts the local test root (and only in Sandbox)."""

from __future__ import annotations

from typing import Any

import pytest
from refundguard_dev.dev_issuer import mint
from refundguard_dev.emulator import free_port
from refundguard_dev.local import local_admin_env, local_apple_env, serve_dev_certs

pytestmark = pytest.mark.emulator


@pytest.fixture
def dev_certs() -> Any:
    port = free_port()
    server = serve_dev_certs(port)
    yield port
    server.shutdown()


def test_local_admin_accepts_dev_tokens_of_its_admins_only(
    emulator_env: dict[str, str], make_client: Any, dev_certs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ADMIN_CERTS_URL", raising=False)
    monkeypatch.delenv("ADMIN_EMAILS", raising=False)
    env = local_admin_env(8083, dev_certs)
    client = make_client("admin", **env)
    path = "/entitlements/google/demo-purchase-token-0001"

    def get(email: str) -> int:
        token = mint(email, "http://127.0.0.1:8083")
        return client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code

    assert get("admin@example.com") == 404  # authenticated, allowed, never seen
    assert get("eve@example.com") == 403
    assert client.get(path).status_code == 401


def test_local_apple_function_starts_in_sandbox_with_the_local_root(
    emulator_env: dict[str, str], make_client: Any
) -> None:
    env = local_apple_env()
    assert env["APPLE_ENVIRONMENTS"] == "Sandbox"
    client = make_client("apple_notifications", **env)
    response = client.post("/", json={"signedPayload": "not-a-jws"})
    assert response.status_code == 400
