"""Offline checks of the fanned-out reconciliation in infra/ (reconcile_worker.tf, its entries of
functions.tf and push_subscriptions.tf), with refundguard_dev's Terraform evaluator: the work
topic that both the reconciler and the worker publish to (and nobody else), the push
subscription's OIDC identity (the worker's only invoker, whose token the worker checks too), its
dead letters and an ack deadline above the worker's page budget, and nothing per tenant."""

from __future__ import annotations

import json

import pytest
from refundguard_dev.terraform_eval import Terraform, block, bodies, instance, ref
from test_infra import INFRA, functions_by_entry_point

WORKER = 'google_cloudfunctions2_function.function["reconcile_worker"]'
PUSH = "google_service_account.reconcile_push"


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return Terraform(INFRA)


def test_the_work_topic_is_where_the_reconciler_and_the_worker_publish(tf: Terraform) -> None:
    functions = functions_by_entry_point(tf)
    topic = ref("google_pubsub_topic.reconcile_work.id")
    for entry_point in ("reconcile", "reconcile_worker"):
        env = block(functions[entry_point][1], "service_config")["environment_variables"]
        assert env["RECONCILE_WORK_TOPIC"] == topic, entry_point
    grants = [
        body
        for body in bodies(tf, "google_pubsub_topic_iam_member").values()
        if body["topic"] == ref("google_pubsub_topic.reconcile_work.name")
    ]
    assert len(grants) == 1
    (grant,) = grants
    assert grant["for_each"] == ref('toset(["reconcile", "reconcile_worker"])')
    assert grant["role"] == "roles/pubsub.publisher"
    assert grant["member"] == ref("google_service_account.function[each.key].member")


def test_the_push_subscription_checks_identity_dead_letters_and_outlasts_a_page(
    tf: Terraform,
) -> None:
    entry = tf.locals["push_subscriptions"]["reconcile_work"]
    assert entry["enabled"] is True and entry["ordered"] is False
    sub = instance(tf, "google_pubsub_subscription", "push", "reconcile_work")
    assert sub["topic"] == ref("google_pubsub_topic.reconcile_work.id")
    push = block(sub, "push_config")
    assert push["push_endpoint"] == ref(f"{WORKER}.service_config[0].uri")
    oidc = block(push, "oidc_token")
    assert oidc["service_account_email"] == ref(f"{PUSH}.email")
    assert oidc["audience"] == ref("local.reconcile_worker_audience")
    audience = tf.locals["reconcile_worker_audience"]
    assert audience.startswith("https://${local.function_names.reconcile_worker}-")
    assert audience.endswith(".${var.region}.run.app")
    _, worker = functions_by_entry_point(tf)["reconcile_worker"]
    env = block(worker, "service_config")["environment_variables"]
    assert env["RECONCILE_PUSH_AUDIENCE"] == ref("local.reconcile_worker_audience")
    assert env["RECONCILE_PUSH_SERVICE_ACCOUNTS"] == ref(f"{PUSH}.email")
    dead = block(sub, "dead_letter_policy")
    assert dead["dead_letter_topic"] == ref('google_pubsub_topic.dead_letter["reconcile_work"].id')
    assert dead["max_delivery_attempts"] == ref("var.reconcile_work_max_delivery_attempts")
    assert 5 <= tf.resolve(dead["max_delivery_attempts"]) <= 100
    assert block(sub, "retry_policy")["minimum_backoff"] == ref("var.pubsub_minimum_backoff")
    # The ack deadline (timeout + 10 s) is above the page budget (half the timeout), for every
    # timeout the variable allows: a page still at work is never delivered again.
    assert entry["ack_deadline_seconds"] == "${min(600, var.function_timeout_seconds + 10)}"
    budget = tf.locals["reconcile_worker_budget_seconds"]
    assert budget == "${max(5, floor(var.function_timeout_seconds / 2))}"
    assert env["RECONCILE_BUDGET_SECONDS"] == ref("tostring(local.reconcile_worker_budget_seconds)")
    for timeout in range(10, 541):
        assert max(5, timeout // 2) + 5 <= timeout < min(600, timeout + 10)


def test_only_the_push_identity_may_invoke_the_worker(tf: Terraform) -> None:
    grants = [
        body
        for body in bodies(tf, "google_cloud_run_service_iam_member").values()
        if "reconcile_worker" in json.dumps(body["service"])
    ]
    assert [(g["member"], g["role"]) for g in grants] == [
        (ref(f"{PUSH}.member"), "roles/run.invoker")
    ]
    assert grants[0]["service"] == ref(f"{WORKER}.service_config[0].service")
    holders = sorted(
        (rtype, name)
        for (rtype, name), body in tf.resources.items()
        if rtype.endswith("_iam_member") and PUSH in json.dumps(body)
    )
    assert holders == [
        ("google_cloud_run_service_iam_member", "reconcile_worker_invoker"),
        ("google_service_account_iam_member", "reconcile_push_token_creator"),
    ]
    account = tf.resources[("google_service_account", "reconcile_push")]
    assert "only grant is run.invoker" in account["description"]
    entry = tf.locals["functions"]["reconcile_worker"]
    assert entry["ingress"] == "ALLOW_INTERNAL_ONLY"


def test_nothing_is_per_tenant(tf: Terraform) -> None:
    """Tenants are registered at run time (Firestore): no variable, resource or for_each names
    them."""
    text = "\n".join(path.read_text() for path in sorted(INFRA.glob("*.tf")))
    # Deployment-wide settings about tenants, never a list of them.
    shared = {"tenant_cache_seconds", "tenant_keys_kms_base_url"}
    assert {v for v in tf.variables if "tenant" in v.lower()} <= shared
    for line in text.splitlines():
        if "for_each" in line:
            assert "var.tenant" not in line and "tenants" not in line.lower(), line
