"""Offline checks of infra/tenant_keys.tf, the Cloud KMS key that seals tenants' Apple keys: one
key ring and one key (rotated, never destroyed by Terraform), no key material in state, nothing
per tenant; encrypt granted to the functions that store a key (admin, console), decrypt only to
those that call Apple with one (admin, console, reconciler), each grant on that key alone; the
functions that read ``TENANT_KEYS_KMS_KEY`` are given the key's id."""

from __future__ import annotations

import re

import pytest
from refundguard import config
from refundguard_dev.terraform_eval import Terraform, ref
from test_infra import INFRA

ENCRYPTERS = {"admin", "admin_console"}
DECRYPTERS = {"admin", "admin_console", "reconcile", "reconcile_worker"}


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return Terraform(INFRA)


def named(tf: Terraform, local: str) -> set[str]:
    """The entry points a ``toset([for name in [...] : name if ...])`` local lists."""
    text = tf.locals[local]
    match = re.search(r"for name in \[([^\]]*)\]", text)
    assert match, f"local.{local} is not a filtered list of entry points: {text}"
    assert "local.enabled_functions" in text, f"local.{local} must skip disabled functions"
    return set(re.findall(r'"([a-z_]+)"', match.group(1)))


def test_one_key_ring_and_one_rotated_key_that_terraform_never_destroys(tf: Terraform) -> None:
    assert list(tf.of_type("google_kms_key_ring")) == ["tenant_keys"]
    assert list(tf.of_type("google_kms_crypto_key")) == ["tenant_keys"]
    key = tf.resources[("google_kms_crypto_key", "tenant_keys")]
    assert key["purpose"] == "ENCRYPT_DECRYPT"
    assert key["key_ring"] == ref("google_kms_key_ring.tenant_keys.id")
    seconds = int(key["rotation_period"].removesuffix("s"))
    assert 0 < seconds <= 90 * 86400
    lifecycle = key["lifecycle"]
    lifecycle = lifecycle[0] if isinstance(lifecycle, list) else lifecycle
    assert lifecycle["prevent_destroy"] is True
    # Key material never passes through Terraform: no imported versions, no secrets.
    assert not tf.of_type("google_kms_crypto_key_version")
    assert "cloudkms.googleapis.com" in tf.locals["required_apis"]


def test_encrypt_and_decrypt_are_granted_on_the_key_only_to_the_functions_that_need_them(
    tf: Terraform,
) -> None:
    grants = tf.of_type("google_kms_crypto_key_iam_member")
    assert set(grants) == {"tenant_keys_encrypter", "tenant_keys_decrypter"}
    expected = {
        "tenant_keys_encrypter": ("roles/cloudkms.cryptoKeyEncrypter", "tenant_keys_encrypters"),
        "tenant_keys_decrypter": ("roles/cloudkms.cryptoKeyDecrypter", "tenant_keys_decrypters"),
    }
    for name, (role, local) in expected.items():
        grant = grants[name]
        assert grant["role"] == role
        assert grant["crypto_key_id"] == ref("google_kms_crypto_key.tenant_keys.id")
        assert grant["member"] == ref("google_service_account.function[each.key].member")
        assert grant["for_each"] == ref(f"local.{local}")
    assert named(tf, "tenant_keys_encrypters") == ENCRYPTERS
    assert named(tf, "tenant_keys_decrypters") == DECRYPTERS
    # Nothing project-wide, nothing per tenant.
    for rtype in ("google_project_iam_member", "google_project_iam_binding"):
        for body in tf.of_type(rtype).values():
            assert "cloudkms" not in str(body)


def test_the_functions_that_read_the_key_setting_are_those_granted(tf: Terraform) -> None:
    readers = {k for k in config.FUNCTION_ENV if "TENANT_KEYS_KMS_KEY" in config.env_vars_for(k)}
    assert readers == DECRYPTERS
    lookup = tf.locals["order_lookup_env"]
    assert lookup["TENANT_KEYS_KMS_KEY"] == ref("google_kms_crypto_key.tenant_keys.id")
    assert lookup["TENANT_KEYS_KMS_BASE_URL"] == ref("var.tenant_keys_kms_base_url")
    assert tf.variables["tenant_keys_kms_base_url"]["default"] == "https://cloudkms.googleapis.com"
