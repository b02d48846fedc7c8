"""Offline checks of the access-events part of infra/ (events.tf, its entries of
push_subscriptions.tf and scheduler.tf, its IAM and its function), with refundguard_dev's
Terraform evaluator: the topic every function publishes to, the optional push subscription (OIDC
of a dedicated identity, audience = the webhook URL, retry, dead letters, the service agent's
grants) and pull subscription (subscribers), ordering on every subscription, the sweep's schedule
and its only invoker. ``subscription_problems`` has negative self-checks."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from refundguard import config
from refundguard_dev.terraform_eval import Terraform, block, bodies, instance, instances, ref
from test_infra import INFRA, function_name_for, functions_by_entry_point

EVENTS_TOPIC = ref("google_pubsub_topic.events.id")
PUSH = 'push["events"]'


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return Terraform(INFRA)


def subscription_problems(tf: Terraform) -> list[str]:
    """What a platform relies on, for every subscription of the events topic (the push one is the
    events entry of local.push_subscriptions, evaluated as if a webhook were set)."""
    problems = []
    subs = {
        address: body
        for address, body in bodies(tf, "google_pubsub_subscription").items()
        if body["topic"] == EVENTS_TOPIC
    }
    if sorted(subs) != ["insight", "platform_pull", PUSH]:
        problems.append(f"events topic subscriptions: {sorted(subs)}")
    for name, body in subs.items():
        # The BigQuery subscription (insight.tf) writes rows, whose order nothing reads.
        if name != "insight" and body.get("enable_message_ordering") is not True:
            problems.append(f"{name}: messages not ordered by key")
        if block(body, "expiration_policy").get("ttl") != "":
            problems.append(f"{name}: may expire")
    entry = tf.locals.get("push_subscriptions", {}).get("events", {})
    if entry.get("enabled") != ref("local.platform_push") or tf.resources[
        ("google_pubsub_subscription", "push")
    ].get("for_each") != ref("local.enabled_push_subscriptions"):
        problems.append(f"{PUSH}: not optional on platform_webhook_url")
    push = subs.get(PUSH, {})
    config_ = block(push, "push_config") if "push_config" in push else {}
    if config_.get("push_endpoint") != ref("var.platform_webhook_url"):
        problems.append(f"{PUSH}: endpoint is not the webhook URL")
    oidc = block(config_, "oidc_token") if "oidc_token" in config_ else {}
    if oidc.get("audience") != ref("var.platform_webhook_url"):
        problems.append(f"{PUSH}: token audience is not the webhook URL")
    if oidc.get("service_account_email") != ref("one(google_service_account.events_push[*].email)"):
        problems.append(f"{PUSH}: not signed by the dedicated push identity")
    if "retry_policy" not in push:
        problems.append(f"{PUSH}: no retry policy")
    dead = block(push, "dead_letter_policy") if "dead_letter_policy" in push else {}
    if dead.get("dead_letter_topic") != ref('google_pubsub_topic.dead_letter["events"].id'):
        problems.append(f"{PUSH}: no dead-letter topic")
    return problems


def test_the_events_subscriptions(tf: Terraform) -> None:
    assert subscription_problems(tf) == []
    assert tf.locals["platform_push"] == ref('var.platform_webhook_url != ""')
    push = instance(tf, "google_pubsub_subscription", "push", "events")
    retry = block(push, "retry_policy")
    assert retry == {
        "minimum_backoff": ref("var.platform_push_minimum_backoff"),
        "maximum_backoff": ref("var.platform_push_maximum_backoff"),
    }
    low, high = (
        int(tf.resolve(retry[k]).rstrip("s")) for k in ("minimum_backoff", "maximum_backoff")
    )
    assert 0 < low < high <= 600
    attempts = block(push, "dead_letter_policy")["max_delivery_attempts"]
    assert attempts == ref("var.platform_push_max_delivery_attempts")
    assert 5 <= tf.resolve(attempts) <= 100
    assert push["ack_deadline_seconds"] == 60
    assert (
        ref("google_service_account_iam_member.events_push_token_creator")
        in (tf.resources[("google_pubsub_subscription", "push")]["depends_on"])
    )
    pull = tf.resources[("google_pubsub_subscription", "platform_pull")]
    assert pull["count"] == ref("var.platform_pull_subscription ? 1 : 0")
    assert "push_config" not in pull
    assert tf.variables["platform_webhook_url"]["default"] == ""
    assert tf.variables["platform_pull_subscription"]["default"] is False
    assert tf.outputs["platform_push_subscription"]["value"] == ref(
        f"local.platform_push ? google_pubsub_subscription.{PUSH}.id : null"
    )


def test_subscription_checks_fail_on_a_broken_push(tf: Terraform) -> None:
    def problems_after(change: Any) -> list[str]:
        mutated = copy.deepcopy(tf)
        change(mutated)
        return subscription_problems(mutated)

    def unordered(m: Terraform) -> None:
        m.locals["push_subscriptions"]["events"]["ordered"] = False

    def other_audience(m: Terraform) -> None:
        m.locals["push_subscriptions"]["events"]["audience"] = "https://x.example"

    def no_dead_letters(m: Terraform) -> None:
        del m.resources[("google_pubsub_subscription", "push")]["dead_letter_policy"]

    def always_on(m: Terraform) -> None:
        m.locals["push_subscriptions"]["events"]["enabled"] = True

    def every_push_always_on(m: Terraform) -> None:
        m.resources[("google_pubsub_subscription", "push")]["for_each"] = ref(
            "local.push_subscriptions"
        )

    def other_identity(m: Terraform) -> None:
        m.locals["push_subscriptions"]["events"]["service_account_email"] = ref(
            "google_service_account.play_push.email"
        )

    assert problems_after(unordered) == [f"{PUSH}: messages not ordered by key"]
    assert problems_after(other_audience) == [f"{PUSH}: token audience is not the webhook URL"]
    assert problems_after(no_dead_letters) == [f"{PUSH}: no dead-letter topic"]
    assert problems_after(always_on) == [f"{PUSH}: not optional on platform_webhook_url"]
    assert problems_after(every_push_always_on) == [f"{PUSH}: not optional on platform_webhook_url"]
    assert problems_after(other_identity) == [f"{PUSH}: not signed by the dedicated push identity"]


def test_webhook_url_must_be_https() -> None:
    text = (INFRA / "variables.tf").read_text(encoding="utf-8")
    condition = re.search(r'regex\("(\^https[^"]+)", var\.platform_webhook_url\)', text)
    assert condition, "platform_webhook_url has no https validation"
    regex = condition.group(1).replace("\\\\", "\\")
    assert re.match(regex, "https://platform.example.com/hooks/refundguard")
    for bad in ("http://platform.example.com/hook", "platform.example.com", "https://"):
        assert not re.match(regex, bad), bad


def test_the_push_identity_is_dedicated_and_holds_no_role(tf: Terraform) -> None:
    account = tf.resources[("google_service_account", "events_push")]
    assert account["count"] == ref("local.platform_push ? 1 : 0")
    assert tf.resolve(account["account_id"]) != tf.resolve(
        tf.resources[("google_service_account", "play_push")]["account_id"]
    )
    grants = [
        (rtype, name)
        for (rtype, name), body in tf.resources.items()
        if rtype.endswith("_iam_member") and "events_push" in str(body.get("member", ""))
    ]
    assert grants == [], "the push identity is only a signature; it needs no role"
    creator = tf.resources[("google_service_account_iam_member", "events_push_token_creator")]
    assert creator["service_account_id"] == ref("google_service_account.events_push[0].name")
    assert creator["member"] == ref("local.pubsub_service_agent")
    assert creator["role"] == "roles/iam.serviceAccountTokenCreator"


def test_events_dead_letters_wait_seven_days_in_a_pull_subscription(tf: Terraform) -> None:
    sub = instance(tf, "google_pubsub_subscription", "dead_letter", "events")
    assert sub["topic"] == ref('google_pubsub_topic.dead_letter["events"].id')
    assert sub["message_retention_duration"] == "604800s"
    assert "push_config" not in sub
    assert tf.outputs["events_dead_letter_subscription"]["value"].startswith(
        '${local.platform_push ? google_pubsub_subscription.dead_letter["events"].id'
    )
    alert = instance(tf, "google_monitoring_alert_policy", "dead_letters", "events")
    condition = block(alert, "conditions")["display_name"]
    dead_letter = ref('google_pubsub_subscription.dead_letter["events"].name')
    assert condition == f"Undelivered messages in {dead_letter}"
    assert alert["display_name"] == "${var.name_prefix}: access events dead-lettered"
    assert "docs/integrating.md" in block(alert, "documentation")["content"]


def test_pull_subscribers_are_principals_on_the_pull_subscription_only(tf: Terraform) -> None:
    grant = tf.resources[("google_pubsub_subscription_iam_member", "platform_subscriber")]
    assert grant["subscription"] == ref("google_pubsub_subscription.platform_pull[0].name")
    assert grant["role"] == "roles/pubsub.subscriber"
    assert "var.platform_subscriber_members" in grant["for_each"]
    condition = block(tf.variables["platform_subscriber_members"], "validation")["condition"]
    regex = re.search(r'regex\("(.+?)", m\)', condition).group(1).replace("\\\\", "\\")
    assert re.match(regex, "serviceAccount:c@p.iam.gserviceaccount.com")
    for bad in ("allUsers", "allAuthenticatedUsers"):
        assert not re.match(regex, bad)
    topic = tf.resources[("google_pubsub_topic", "events")]
    conditions = [p["condition"] for p in block(topic, "lifecycle")["precondition"]]
    assert ref(
        "length(var.platform_subscriber_members) == 0 || var.platform_pull_subscription"
    ) in (conditions)


def test_every_function_reads_the_topic_and_may_publish_to_it_only(tf: Terraform) -> None:
    assert "EVENTS_TOPIC" in config.COMMON_ENV
    assert tf.resolve(tf.locals["common_env"])["EVENTS_TOPIC"] == EVENTS_TOPIC
    publisher = tf.resources[("google_pubsub_topic_iam_member", "events_publisher")]
    assert publisher["for_each"] == ref("local.function_names")
    assert set(tf.locals["function_names"]) == set(config.FUNCTION_ENV)
    topic = tf.resources[("google_pubsub_topic", "events")]
    assert topic["message_retention_duration"] == ref("var.events_message_retention")
    assert tf.outputs["events_topic"]["value"] == EVENTS_TOPIC


def test_the_sweep_runs_on_a_schedule_as_its_own_identity(tf: Terraform) -> None:
    sweep = function_name_for(tf, "events_sweep")
    uri = ref(f"google_cloudfunctions2_function.{sweep}.service_config[0].uri")
    assert sweep == 'function["events_sweep"]'
    job = instance(tf, "google_cloud_scheduler_job", "function", "events_sweep")
    assert job["schedule"] == ref("var.events_sweep_schedule")
    assert tf.resolve(job["schedule"]) == "*/5 * * * *"
    assert job["name"] == ref('local.function_names["events_sweep"]')
    target = block(job, "http_target")
    assert target["uri"] == uri and target["http_method"] == "POST"
    oidc = block(target, "oidc_token")
    account = ref('google_service_account.scheduler["events_sweep"]')
    assert oidc["service_account_email"] == account.replace("}", ".email}")
    assert oidc["audience"] == uri
    invokers = [
        body
        for body in bodies(tf, "google_cloud_run_service_iam_member").values()
        if sweep in str(body["service"])
    ]
    assert [b["member"] for b in invokers] == [account.replace("}", ".member}")]
    assert set(instances(tf, "google_service_account", "scheduler")) >= {
        'scheduler["events_sweep"]'
    }
    _, body = functions_by_entry_point(tf)["events_sweep"]
    ingress = block(body, "service_config")["ingress_settings"]
    assert ingress == ref("var.events_sweep_ingress_settings")
    assert tf.resolve(ingress) == "ALLOW_INTERNAL_ONLY"
    env = block(body, "service_config")["environment_variables"]
    assert env["EVENTS_SWEEP_GRACE_SECONDS"] == ref("tostring(var.events_sweep_grace_seconds)")
    assert "cloudscheduler.googleapis.com" in tf.locals["required_apis"]
    assert tf.outputs["events_sweep_job"]["value"] == ref(
        'google_cloud_scheduler_job.function["events_sweep"].id'
    )
