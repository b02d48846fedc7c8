"""Offline checks of the reconciler's part of infra/ (reconcile.tf, its entry of scheduler.tf, its
function entry and IAM), with refundguard_dev's Terraform evaluator: the Cloud Scheduler job (its
own identity, OIDC to the function's URL, POST), the only two invokers (that identity and the
admin function's account), the admin's RECONCILE_URL being the reconciler's deterministic URL, the
Apple key secret mounted, and the refund-request policy variables off by default. The scheduler
shape itself (one entry per scheduled function, each account's one grant) is checked here too."""

from __future__ import annotations

import pytest
from refundguard import config
from refundguard_dev.terraform_eval import Terraform, block, bodies, instance, instances, ref
from test_infra import INFRA, functions_by_entry_point

RECONCILE = 'google_cloudfunctions2_function.function["reconcile"]'
SCHEDULER = 'google_service_account.scheduler["reconcile"]'


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return Terraform(INFRA)


def test_the_scheduler_job_calls_the_reconciler_with_its_own_identity(tf: Terraform) -> None:
    job = instance(tf, "google_cloud_scheduler_job", "function", "reconcile")
    assert job["name"] == ref('local.function_names["reconcile"]')
    assert job["time_zone"] == "Etc/UTC"
    assert job["attempt_deadline"] == "${var.function_timeout_seconds + 30}s"
    assert job["schedule"] == ref("var.reconcile_schedule")
    assert tf.variables["reconcile_schedule"]["default"] == "*/30 * * * *"
    target = block(job, "http_target")
    assert target["http_method"] == "POST"
    assert target["uri"] == ref(f"{RECONCILE}.service_config[0].uri")
    oidc = block(target, "oidc_token")
    assert oidc["service_account_email"] == ref(f"{SCHEDULER}.email")
    assert oidc["audience"] == target["uri"]
    assert block(job, "retry_config")["retry_count"] == 0
    account = instance(tf, "google_service_account", "scheduler", "reconcile")
    assert account["account_id"] == "${var.name_prefix}-recon-sched"
    assert len(tf.resolve(account["account_id"]).replace("${var.name_prefix}", "x" * 16)) <= 30


def test_only_the_scheduler_and_the_admin_function_may_invoke_it(tf: Terraform) -> None:
    grants = {
        address: body
        for address, body in bodies(tf, "google_cloud_run_service_iam_member").items()
        if "reconcile" in body["service"] and "reconcile_worker" not in body["service"]
    }
    assert {address: body["member"] for address, body in grants.items()} == {
        'scheduler_invoker["reconcile"]': ref(f"{SCHEDULER}.member"),
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
    assert tf.outputs["reconcile_job"]["value"] == ref(
        'google_cloud_scheduler_job.function["reconcile"].id'
    )


def test_every_scheduled_call_is_one_entry_of_the_local_map(tf: Terraform) -> None:
    """The sweep and the reconciler are local.scheduled_calls entries (scheduler.tf): one
    account, one invoker grant on that function only, one job each, keyed by entry point."""
    calls = tf.locals["scheduled_calls"]
    assert set(calls) == {"events_sweep", "reconcile"}
    assert set(calls) <= set(config.FUNCTION_ENV)
    for rtype, name in (
        ("google_service_account", "scheduler"),
        ("google_cloud_run_service_iam_member", "scheduler_invoker"),
        ("google_cloud_scheduler_job", "function"),
    ):
        assert tf.resources[(rtype, name)]["for_each"] == ref("local.scheduled_calls")
        assert set(instances(tf, rtype, name)) == {f'{name}["{key}"]' for key in calls}
    assert not tf.of_type("google_cloud_scheduler_job").keys() - {"function"}
    for key in calls:
        function = f'google_cloudfunctions2_function.function["{key}"]'
        account = f'google_service_account.scheduler["{key}"]'
        grant = instance(tf, "google_cloud_run_service_iam_member", "scheduler_invoker", key)
        assert grant["service"] == ref(f"{function}.service_config[0].service")
        assert grant["role"] == "roles/run.invoker"
        assert grant["member"] == ref(f"{account}.member")
        job = instance(tf, "google_cloud_scheduler_job", "function", key)
        target = block(job, "http_target")
        assert target["uri"] == block(target, "oidc_token")["audience"]
        assert target["uri"] == ref(f"{function}.service_config[0].uri")
        assert block(target, "oidc_token")["service_account_email"] == ref(f"{account}.email")
        assert block(job, "retry_config")["retry_count"] == 0
        body = instance(tf, "google_service_account", "scheduler", key)
        assert "only grant is run.invoker" in body["description"]
    # The scheduler accounts hold that one grant and nothing else.
    holders = [
        (rtype, name)
        for (rtype, name), body in tf.resources.items()
        if rtype.endswith("_iam_member") and "google_service_account.scheduler" in str(body)
    ]
    assert holders == [("google_cloud_run_service_iam_member", "scheduler_invoker")]
