"""Offline checks of the push subscriptions with dead letters in infra/ (push_subscriptions.tf:
one entry of local.push_subscriptions each, the Google Play RTDN one, the platform's optional one
and the reconciliation work one), with refundguard_dev's Terraform evaluator: the shape and its
names, the RTDN subscription's OIDC, retry and dead letters, the dead-letter pull subscriptions,
alerts and the Pub/Sub service agent's grants, and the moved blocks that keep the resources
deployed when each was written out (the Cloud Scheduler calls' too). The access-events entry is
checked further in test_infra_events.py, the reconciliation work one in
test_infra_reconcile_worker.py."""

from __future__ import annotations

import re

import pytest
from refundguard_dev.terraform_eval import (
    Terraform,
    block,
    bodies,
    enabled_source,
    instance,
    instances,
    ref,
)
from test_infra import INFRA, function_name_for, functions_by_entry_point


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return Terraform(INFRA)


PUSH_TYPES = (
    ("google_pubsub_topic", "dead_letter"),
    ("google_pubsub_subscription", "push"),
    ("google_pubsub_subscription", "dead_letter"),
    ("google_pubsub_topic_iam_member", "dead_letter_publisher"),
    ("google_pubsub_subscription_iam_member", "dead_letter_source_subscriber"),
    ("google_monitoring_alert_policy", "dead_letters"),
)


def test_push_subscriptions_are_one_shape_over_the_local_map(tf: Terraform) -> None:
    """Each push subscription with its dead letters is one entry of local.push_subscriptions
    (push_subscriptions.tf): the RTDN one always, the platform's with a webhook only."""
    subscriptions = tf.locals["push_subscriptions"]
    assert set(subscriptions) == {"rtdn", "events", "reconcile_work"}
    assert enabled_source(tf, "enabled_push_subscriptions") == "push_subscriptions"
    assert subscriptions["rtdn"]["enabled"] is True
    assert subscriptions["events"]["enabled"] == ref("local.platform_push")
    for rtype, name in PUSH_TYPES:
        body = tf.resources[(rtype, name)]
        assert body["for_each"] == ref("local.enabled_push_subscriptions"), (rtype, name)
        assert set(instances(tf, rtype, name)) == {
            f'{name}["rtdn"]',
            f'{name}["events"]',
            f'{name}["reconcile_work"]',
        }
    assert {name for (rtype, name) in tf.resources if rtype == "google_pubsub_topic"} == {
        "rtdn",
        "events",
        "reconcile_work",
        "dead_letter",
        "insight_dead_letter",  # the BigQuery subscription's (insight.tf): not a push one
    }
    # The names as deployed before (docs/deploy.md, scripts/replay_dead_letters.sh).
    assert tf.resolve(subscriptions["rtdn"]["name"]) == "${var.name_prefix}-play-rtdn-push"
    assert subscriptions["rtdn"]["dead_letter"] == "${var.name_prefix}-play-rtdn-dead-letter"
    assert subscriptions["events"]["name"] == "${var.name_prefix}-access-events-push"
    assert subscriptions["events"]["dead_letter"] == "${var.name_prefix}-access-events-dead-letter"
    for key in subscriptions:
        topic = instance(tf, "google_pubsub_topic", "dead_letter", key)
        dead = instance(tf, "google_pubsub_subscription", "dead_letter", key)
        assert topic["name"] == dead["name"] == subscriptions[key]["dead_letter"]
        assert (
            instance(tf, "google_pubsub_subscription", "push", key)["name"]
            == (subscriptions[key]["name"])
        )


def test_push_subscription_has_oidc_retry_and_dead_letters(tf: Terraform) -> None:
    sub = instance(tf, "google_pubsub_subscription", "push", "rtdn")
    play = function_name_for(tf, "play_notifications")
    assert sub["topic"] == ref("google_pubsub_topic.rtdn.id")
    push = block(sub, "push_config")
    assert push["push_endpoint"] == ref(
        f"google_cloudfunctions2_function.{play}.service_config[0].uri"
    )
    oidc = block(push, "oidc_token")
    assert oidc["service_account_email"] == ref("google_service_account.play_push.email")
    # The token names the function's deterministic URL, which the function checks as well
    # (PLAY_PUSH_AUDIENCE), so a token of the push identity minted for anything else is refused.
    assert oidc["audience"] == ref("local.play_push_audience")
    _, play_function = functions_by_entry_point(tf)["play_notifications"]
    env = block(play_function, "service_config")["environment_variables"]
    assert env["PLAY_PUSH_AUDIENCE"] == ref("local.play_push_audience")
    audience = tf.locals["play_push_audience"]
    assert ".run.app" in audience and "google_cloudfunctions2_function" not in audience
    retry = block(sub, "retry_policy")
    assert retry == {
        "minimum_backoff": ref("var.pubsub_minimum_backoff"),
        "maximum_backoff": ref("var.pubsub_maximum_backoff"),
    }
    low, high = (
        int(tf.resolve(retry[k]).rstrip("s")) for k in ("minimum_backoff", "maximum_backoff")
    )
    assert 0 < low < high <= 600
    dead = block(sub, "dead_letter_policy")
    assert dead["dead_letter_topic"] == ref('google_pubsub_topic.dead_letter["rtdn"].id')
    assert dead["max_delivery_attempts"] == ref("var.pubsub_max_delivery_attempts")
    assert 5 <= tf.resolve(dead["max_delivery_attempts"]) <= 100
    assert "var.function_timeout_seconds" in sub["ack_deadline_seconds"]
    assert block(sub, "expiration_policy")["ttl"] == ""
    # RTDNs are not ordered (the Play function reads the purchase's state, not the message order).
    assert sub["enable_message_ordering"] is False
    depends_on = tf.resources[("google_pubsub_subscription", "push")]["depends_on"]
    for needed in (
        "google_cloud_run_service_iam_member.play_invoker",
        "google_service_account_iam_member.pubsub_token_creator",
    ):
        assert ref(needed) in depends_on, needed


def test_dead_letter_subscription_keeps_messages_seven_days(tf: Terraform) -> None:
    subs = {
        address: b
        for address, b in bodies(tf, "google_pubsub_subscription").items()
        if b["topic"] == ref('google_pubsub_topic.dead_letter["rtdn"].id')
    }
    assert list(subs) == ['dead_letter["rtdn"]']
    sub = subs['dead_letter["rtdn"]']
    assert sub["message_retention_duration"] == "604800s"
    assert "push_config" not in sub, "dead letters are pulled for inspection and replay"
    output = tf.outputs["dead_letter_subscription"]["value"]
    assert output == ref('google_pubsub_subscription.dead_letter["rtdn"].id')
    assert tf.outputs["dead_letter_topic"]["value"] == ref(
        'google_pubsub_topic.dead_letter["rtdn"].id'
    )
    assert tf.outputs["play_push_subscription"]["value"] == ref(
        'google_pubsub_subscription.push["rtdn"].id'
    )


def test_dead_letters_raise_an_alert_per_subscription(tf: Terraform) -> None:
    for key, attempts in (
        ("rtdn", "var.pubsub_max_delivery_attempts"),
        ("events", "var.platform_push_max_delivery_attempts"),
    ):
        alert = instance(tf, "google_monitoring_alert_policy", "dead_letters", key)
        dead_letter = ref(f'google_pubsub_subscription.dead_letter["{key}"].name')
        condition = block(alert, "conditions")
        assert condition["display_name"] == f"Undelivered messages in {dead_letter}"
        threshold = block(condition, "condition_threshold")
        assert f'resource.labels.subscription_id = "{dead_letter}"' in threshold["filter"]
        assert "num_undelivered_messages" in threshold["filter"]
        assert threshold["comparison"] == "COMPARISON_GT" and threshold["threshold_value"] == 0
        assert alert["severity"] == "ERROR"
        assert alert["notification_channels"] == ref("var.alert_notification_channels")
        content = block(alert, "documentation")["content"]
        assert ref(attempts) in content and "kept 7 days" in content
    rtdn = instance(tf, "google_monitoring_alert_policy", "dead_letters", "rtdn")
    assert rtdn["display_name"] == "${var.name_prefix}: Google Play notifications dead-lettered"
    assert "Replaying dead letters" in block(rtdn, "documentation")["content"]


def test_pubsub_service_agent_can_dead_letter(tf: Terraform) -> None:
    agent = tf.locals["pubsub_service_agent"]
    assert agent == (
        "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    )
    agent_ref = ref("local.pubsub_service_agent")
    publishers = [
        b
        for b in bodies(tf, "google_pubsub_topic_iam_member").values()
        if b["member"] == agent_ref and b["role"] == "roles/pubsub.publisher"
    ]
    # The RTDN dead-letter topic, the access-events one (only with a webhook), and refund
    # insight's BigQuery subscription's (insight.tf).
    assert sorted(b["topic"] for b in publishers) == [
        ref('google_pubsub_topic.dead_letter["events"].name'),
        ref('google_pubsub_topic.dead_letter["reconcile_work"].name'),
        ref('google_pubsub_topic.dead_letter["rtdn"].name'),
        ref("google_pubsub_topic.insight_dead_letter[0].name"),
    ]
    subscribers = [
        b
        for b in bodies(tf, "google_pubsub_subscription_iam_member").values()
        if b["member"] == agent_ref and b["role"] == "roles/pubsub.subscriber"
    ]
    assert sorted(b["subscription"] for b in subscribers) == [
        ref("google_pubsub_subscription.insight[0].name"),
        ref('google_pubsub_subscription.push["events"].name'),
        ref('google_pubsub_subscription.push["reconcile_work"].name'),
        ref('google_pubsub_subscription.push["rtdn"].name'),
    ]


# The addresses these resources had when each was written out (pubsub.tf, events.tf,
# monitoring.tf, reconcile.tf, iam.tf) -> their instances now; by resource type.
MOVED = """
google_pubsub_topic
    dead_letter -> dead_letter["rtdn"]
    events_dead_letter[0] -> dead_letter["events"]
google_pubsub_subscription
    play_push -> push["rtdn"]
    platform_push[0] -> push["events"]
    dead_letter -> dead_letter["rtdn"]
    events_dead_letter[0] -> dead_letter["events"]
google_pubsub_topic_iam_member
    dead_letter_publisher -> dead_letter_publisher["rtdn"]
    events_dead_letter_publisher[0] -> dead_letter_publisher["events"]
google_pubsub_subscription_iam_member
    dead_letter_source_subscriber -> dead_letter_source_subscriber["rtdn"]
    events_dead_letter_source_subscriber[0] -> dead_letter_source_subscriber["events"]
google_monitoring_alert_policy
    dead_letters -> dead_letters["rtdn"]
    events_dead_letters[0] -> dead_letters["events"]
google_service_account
    events_scheduler -> scheduler["events_sweep"]
    reconcile_scheduler -> scheduler["reconcile"]
google_cloud_run_service_iam_member
    events_sweep_invoker -> scheduler_invoker["events_sweep"]
    reconcile_scheduler_invoker -> scheduler_invoker["reconcile"]
google_cloud_scheduler_job
    events_sweep -> function["events_sweep"]
    reconcile -> function["reconcile"]
"""
INSTANCE_RE = re.compile(r'(\w+)\["(\w+)"\]')


def test_moved_blocks_keep_the_pubsub_and_scheduler_resources(tf: Terraform) -> None:
    """Written once per use before; without a move each would be destroyed and re-created (a
    subscription's unacknowledged messages with it)."""
    moves = {m["from"]: m["to"] for m in tf.moved}
    count = 0
    for line in MOVED.strip().splitlines():
        if not line.startswith(" "):
            rtype = line
            continue
        old, new = line.split(" -> ")
        match = INSTANCE_RE.fullmatch(new)
        assert match, new
        name, key = match.groups()
        instance(tf, rtype, name, key)  # the instance exists (every entry as if enabled)
        assert moves.get(ref(f"{rtype}.{old.strip()}")) == ref(f"{rtype}.{new}"), old
        old_name = old.strip().split("[")[0]
        assert old_name == name or (rtype, old_name) not in tf.resources, old
        count += 1
    assert count == 18
