"""Offline checks of infra/alerts.tf (and the refund-request index of firestore.tf) against the
code: the log-based metric reads the fields the alert log line carries, one alert policy per kind
the code sends, each notifying the email, Slack and extra channels, and the index is the one the
refund-request check's query needs."""

from __future__ import annotations

import ast
import re

import pytest
from refundguard import alerts
from refundguard_dev.terraform_eval import Terraform, block, ref
from test_infra import INFRA, ROOT

ALERT_CHECKS = ROOT / "functions" / "refundguard" / "alert_checks.py"


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return Terraform(INFRA)


def logged_fields() -> set[str]:
    """The keyword fields of the alert's log line (``logs.warning`` in ``AlertSender.send``)."""
    tree = ast.parse(ALERT_CHECKS.read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "warning"
            and any(k.arg == "alert_kind" for k in node.keywords)
        ):
            return {k.arg for k in node.keywords if k.arg}
    raise AssertionError("no alert log line in alert_checks.py")


def test_the_metric_counts_the_alert_lines_of_the_events_sweep_by_kind_and_tenant(
    tf: Terraform,
) -> None:
    metric = tf.resources[("google_logging_metric", "refund_alerts")]
    fields = set(re.findall(r"jsonPayload\.(\w+)", metric["filter"]))
    for extractor in metric["label_extractors"].values():
        fields |= set(re.findall(r"jsonPayload\.(\w+)", extractor))
    assert fields == {"alert_kind", "tenant"} and fields <= logged_fields()
    assert ref("local.function_names.events_sweep") in metric["filter"]
    labels = {label["key"] for label in block(metric, "metric_descriptor")["labels"]}
    assert labels == set(metric["label_extractors"]) == {"kind", "tenant"}


def test_one_policy_per_kind_the_code_sends_each_saying_what_to_do(tf: Terraform) -> None:
    kinds = tf.locals["refund_alert_kinds"]
    assert set(kinds) == set(alerts.KINDS)
    for kind in kinds.values():
        assert "docs/alerts.md" in kind["doc"] and kind["title"]
    policy = tf.resources[("google_monitoring_alert_policy", "refund_alerts")]
    assert policy["for_each"] == ref("local.refund_alert_kinds")
    condition = block(block(policy, "conditions"), "condition_threshold")
    assert "${google_logging_metric.refund_alerts.name}" in condition["filter"]
    assert 'metric.label.kind = "${each.key}"' in condition["filter"]
    assert block(condition, "aggregations")["group_by_fields"] == ["metric.label.tenant"]
    assert policy["notification_channels"] == ref("local.refund_alert_channels")


def test_the_policies_notify_emails_slack_and_the_extra_channels(tf: Terraform) -> None:
    channels = tf.locals["refund_alert_channels"]
    for part in (
        "var.alert_notification_channels",
        "google_monitoring_notification_channel.alert_email",
        "var.alert_slack_channel",
        "data.google_monitoring_notification_channel.slack",
    ):
        assert part in str(channels), part
    email = tf.resources[("google_monitoring_notification_channel", "alert_email")]
    assert email["type"] == "email" and "var.alert_emails" in email["for_each"]
    assert email["labels"] == {"email_address": "${each.value}"}
    # Slack: an existing channel, by id or looked up by name: no Slack token in Terraform.
    assert not [
        body
        for (kind, _), body in tf.resources.items()
        if kind == "google_monitoring_notification_channel" and body.get("type") == "slack"
    ]
    slack = tf.data[("google_monitoring_notification_channel", "slack")]
    assert slack["type"] == "slack" and slack["display_name"] == ref("var.alert_slack_channel_name")


def test_the_refund_request_index_is_the_checks_query(tf: Terraform) -> None:
    index = tf.resources[("google_firestore_index", "refund_requests_by_state_deadline")]
    assert index["collection"] == "refund_requests"
    assert [f["field_path"] for f in index["fields"]] == ["state", "deadline_ms"]
    source = ALERT_CHECKS.read_text()
    assert 'FieldFilter("state", "in"' in source and 'order_by("deadline_ms")' in source
