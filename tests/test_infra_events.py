"""Offline checks of the access-events part of infra/ (events.tf, its IAM and its function), with
the parser and evaluator of test_infra.py: the topic every function publishes to, the optional push
subscription (OIDC of a dedicated identity, audience = the webhook URL, retry, dead letters, the
service agent's grants) and pull subscription (subscribers), ordering on every subscription, the
sweep's schedule and its only invoker. ``subscription_problems`` has negative self-checks."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from refundguard import config
from test_infra import INFRA, Terraform, block, function_name_for, functions_by_entry_point, ref

EVENTS_TOPIC = ref("google_pubsub_topic.events.id")


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return Terraform(INFRA)


def subscription_problems(tf: Terraform) -> list[str]:
    """What a platform relies on, for every subscription of the events topic."""
    problems = []
    subs = {
        name: body
        for name, body in tf.of_type("google_pubsub_subscription").items()
        if body["topic"] == EVENTS_TOPIC
    }
    if sorted(subs) != ["platform_pull", "platform_push"]:
        problems.append(f"events topic subscriptions: {sorted(subs)}")
    for name, body in subs.items():
        if body.get("enable_message_ordering") is not True:
            problems.append(f"{name}: messages not ordered by key")
        if block(body, "expiration_policy").get("ttl") != "":
            problems.append(f"{name}: may expire")
    push = subs.get("platform_push", {})
    if push.get("count") != ref("local.platform_push ? 1 : 0"):
        problems.append("platform_push: not optional on platform_webhook_url")
    config_ = block(push, "push_config") if "push_config" in push else {}
    if config_.get("push_endpoint") != ref("var.platform_webhook_url"):
        problems.append("platform_push: endpoint is not the webhook URL")
    oidc = block(config_, "oidc_token") if "oidc_token" in config_ else {}
    if oidc.get("audience") != ref("var.platform_webhook_url"):
        problems.append("platform_push: token audience is not the webhook URL")
    if oidc.get("service_account_email") != ref("google_service_account.events_push[0].email"):
        problems.append("platform_push: not signed by the dedicated push identity")
    if "retry_policy" not in push:
        problems.append("platform_push: no retry policy")
    dead = block(push, "dead_letter_policy") if "dead_letter_policy" in push else {}
    if dead.get("dead_letter_topic") != ref("google_pubsub_topic.events_dead_letter[0].id"):
        problems.append("platform_push: no dead-letter topic")
    return problems


def test_the_events_subscriptions(tf: Terraform) -> None:
    assert subscription_problems(tf) == []
    assert tf.locals["platform_push"] == ref('var.platform_webhook_url != ""')
    push = tf.resources[("google_pubsub_subscription", "platform_push")]
    retry = block(push, "retry_policy")
    low, high = (
        int(tf.resolve(retry[k]).rstrip("s")) for k in ("minimum_backoff", "maximum_backoff")
    )
    assert 0 < low < high <= 600
    attempts = block(push, "dead_letter_policy")["max_delivery_attempts"]
    assert 5 <= tf.resolve(attempts) <= 100
    pull = tf.resources[("google_pubsub_subscription", "platform_pull")]
    assert pull["count"] == ref("var.platform_pull_subscription ? 1 : 0")
    assert "push_config" not in pull
    assert tf.variables["platform_webhook_url"]["default"] == ""
    assert tf.variables["platform_pull_subscription"]["default"] is False


def test_subscription_checks_fail_on_a_broken_push(tf: Terraform) -> None:
    def problems_after(change: Any) -> list[str]:
        mutated = copy.deepcopy(tf)
        change(mutated.resources[("google_pubsub_subscription", "platform_push")])
        return subscription_problems(mutated)

    def unordered(body: dict[str, Any]) -> None:
        body["enable_message_ordering"] = False

    def other_audience(body: dict[str, Any]) -> None:
        block(block(body, "push_config"), "oidc_token")["audience"] = "https://x.example"

    def no_dead_letters(body: dict[str, Any]) -> None:
        del body["dead_letter_policy"]

    def always_on(body: dict[str, Any]) -> None:
        del body["count"]

    assert problems_after(unordered) == ["platform_push: messages not ordered by key"]
    assert problems_after(other_audience) == [
        "platform_push: token audience is not the webhook URL"
    ]
    assert problems_after(no_dead_letters) == ["platform_push: no dead-letter topic"]
    assert problems_after(always_on) == ["platform_push: not optional on platform_webhook_url"]


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
    sub = tf.resources[("google_pubsub_subscription", "events_dead_letter")]
    assert sub["topic"] == ref("google_pubsub_topic.events_dead_letter[0].id")
    assert sub["message_retention_duration"] == "604800s"
    assert "push_config" not in sub
    assert tf.outputs["events_dead_letter_subscription"]["value"].startswith(
        "${local.platform_push ? google_pubsub_subscription.events_dead_letter[0].id"
    )
    alert = tf.resources[("google_monitoring_alert_policy", "events_dead_letters")]
    assert "events_dead_letter[0].name" in json.dumps(alert)


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
    job = tf.resources[("google_cloud_scheduler_job", "events_sweep")]
    assert tf.resolve(job["schedule"]) == "*/5 * * * *"
    target = block(job, "http_target")
    assert target["uri"] == uri and target["http_method"] == "POST"
    oidc = block(target, "oidc_token")
    assert oidc["service_account_email"] == ref("google_service_account.events_scheduler.email")
    assert oidc["audience"] == uri
    invokers = [
        body
        for body in tf.of_type("google_cloud_run_service_iam_member").values()
        if sweep in str(body["service"])
    ]
    assert [b["member"] for b in invokers] == [
        ref("google_service_account.events_scheduler.member")
    ]
    _, body = functions_by_entry_point(tf)["events_sweep"]
    ingress = block(body, "service_config")["ingress_settings"]
    assert ingress == ref("var.events_sweep_ingress_settings")
    assert tf.resolve(ingress) == "ALLOW_INTERNAL_ONLY"
    env = block(body, "service_config")["environment_variables"]
    assert env["EVENTS_SWEEP_GRACE_SECONDS"] == ref("tostring(var.events_sweep_grace_seconds)")
    assert "cloudscheduler.googleapis.com" in tf.locals["required_apis"]
