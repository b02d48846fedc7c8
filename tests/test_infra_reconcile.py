"""Offline checks of the reconciler's part of infra/ (reconcile.tf, its function entry and IAM),
with the parser and evaluator of test_infra.py: the Cloud Scheduler job (its own identity, OIDC
to the function's URL, POST), the only two invokers (that identity and the admin function's
account), the admin's RECONCILE_URL being the reconciler's deterministic URL, the Apple key
secret mounted, and the refund-request policy variables off by default."""

from __future__ import annotations

import pytest
from test_infra import INFRA, Terraform, block, functions_by_entry_point, ref

RECONCILE = 'google_cloudfunctions2_function.function["reconcile"]'


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return Terraform(INFRA)


def test_the_scheduler_job_calls_the_reconciler_with_its_own_identity(tf: Terraform) -> None:
    job = tf.resources[("google_cloud_scheduler_job", "reconcile")]
    assert job["schedule"] == ref("var.reconcile_schedule")
    assert tf.variables["reconcile_schedule"]["default"] == "*/30 * * * *"
    target = block(job, "http_target")
    assert target["http_method"] == "POST"
    assert target["uri"] == ref(f"{RECONCILE}.service_config[0].uri")
    oidc = block(target, "oidc_token")
    assert oidc["service_account_email"] == ref("google_service_account.reconcile_scheduler.email")
    assert oidc["audience"] == target["uri"]
    assert block(job, "retry_config")["retry_count"] == 0
    account = tf.resources[("google_service_account", "reconcile_scheduler")]
    assert len(tf.resolve(account["account_id"]).replace("${var.name_prefix}", "x" * 16)) <= 30


def test_only_the_scheduler_and_the_admin_function_may_invoke_it(tf: Terraform) -> None:
    grants = {
        name: body
        for name, body in tf.of_type("google_cloud_run_service_iam_member").items()
        if "reconcile" in body["service"]
    }
    assert {name: body["member"] for name, body in grants.items()} == {
        "reconcile_scheduler_invoker": ref("google_service_account.reconcile_scheduler.member"),
        "reconcile_admin_invoker": ref('google_service_account.function["admin"].member'),
    }
    for body in grants.values():
        assert body["role"] == "roles/run.invoker"
        assert body["service"] == ref(f"{RECONCILE}.service_config[0].service")


def test_the_admin_reaches_the_reconciler_at_its_deterministic_url(tf: Terraform) -> None:
    functions = functions_by_entry_point(tf)
    admin_env = block(functions["admin"][1], "service_config")["environment_variables"]
    assert admin_env["RECONCILE_URL"] == ref("local.reconcile_url")
    url = tf.locals["reconcile_url"]
    assert url.startswith("https://${local.function_names.reconcile}-")
    assert url.endswith(".${var.region}.run.app")


def test_the_reconciler_reads_the_apple_key_from_secret_manager(tf: Terraform) -> None:
    entry = tf.locals["functions"]["reconcile"]
    assert entry["secret_env"] == {
        "APPLE_API_PRIVATE_KEY": ref("google_secret_manager_secret.apple_api_key.secret_id")
    }
    assert entry["env"]["RECONCILE_BUDGET_SECONDS"] == ref(
        "tostring(var.function_timeout_seconds - 15)"
    )


def test_refund_requests_are_off_by_default(tf: Terraform) -> None:
    assert tf.variables["refund_requests"]["default"] == "off"
    entry = tf.locals["functions"]["reconcile"]
    assert entry["env"]["REFUND_REQUESTS"] == ref("var.refund_requests")
    assert tf.outputs["reconcile_job"]["value"] == ref("google_cloud_scheduler_job.reconcile.id")
