"""Offline checks of refund insight's Terraform (insight.tf) with refundguard_dev's evaluator: the
BigQuery subscription on the events topic (the table's schema, dropped unknown fields, metadata
columns, dead letters), the table (partitioned by event time, clustered by tenant and type, the
schema file the local stand-in uses), the views from infra/insight/*.sql through templatefile in
dependency order, and the grants (the Pub/Sub service agent writes the table, the admin function
and the console read the dataset); the table's schema holds every event field the views read."""

from __future__ import annotations

import json
import re

import pytest
from refundguard_dev import insight_local
from refundguard_dev.terraform_eval import Terraform, block, ref
from test_infra import INFRA


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return Terraform(INFRA)


def test_the_bigquery_subscription_writes_the_events_topic_into_the_table(tf: Terraform) -> None:
    sub = tf.resources[("google_pubsub_subscription", "insight")]
    assert sub["topic"] == ref("google_pubsub_topic.events.id")
    config = block(sub, "bigquery_config")
    assert config["use_table_schema"] is True  # the CloudEvent's fields -> the columns
    assert config["drop_unknown_fields"] is True  # purchase_id, user_id are not kept
    assert config["write_metadata"] is True  # message_id, publish_time: the views dedupe
    assert "use_topic_schema" not in config
    assert "google_bigquery_table.insight_events[0].table_id" in config["table"]
    dead = block(sub, "dead_letter_policy")
    assert dead["dead_letter_topic"] == ref("google_pubsub_topic.insight_dead_letter[0].id")
    assert block(sub, "expiration_policy")["ttl"] == ""
    writer = tf.resources[("google_bigquery_table_iam_member", "insight_writer")]
    assert writer["role"] == "roles/bigquery.dataEditor"
    assert writer["member"] == ref("local.pubsub_service_agent")
    assert "google_bigquery_table.insight_events[0].table_id" in writer["table_id"]


def test_the_table_is_partitioned_by_event_time_and_clustered_by_tenant(tf: Terraform) -> None:
    table = tf.resources[("google_bigquery_table", "insight_events")]
    partitioning = block(table, "time_partitioning")
    assert (partitioning["type"], partitioning["field"]) == ("DAY", "time")
    assert table["clustering"] == ["tenant", "type"]
    assert table["schema"] == '${file("${path.module}/insight/events_schema.json")}'
    assert table["deletion_protection"] is True
    columns = {f["name"]: f for f in insight_local.schema()}
    assert columns["time"]["type"] == "TIMESTAMP" and columns["time"]["mode"] == "REQUIRED"
    # Alerts share the topic and have no top-level tenant: a REQUIRED column would refuse them.
    assert columns["tenant"]["mode"] == "NULLABLE"


def test_the_views_are_the_sql_files_in_order(tf: Terraform) -> None:
    assert tf.locals["insight_views"] == list(insight_local.VIEWS)
    previous = "google_bigquery_table.insight_events"
    for name in insight_local.VIEWS:
        view = tf.resources[("google_bigquery_table", f"insight_{name}")]
        body = block(view, "view")
        assert body["query"] == ref(f"local.insight_sql.{name}")
        assert body["use_legacy_sql"] is False
        assert view["depends_on"] == [ref(previous)]
        previous = f"google_bigquery_table.insight_{name}"
    assert "templatefile(" in tf.locals["insight_sql"]


def test_readers_are_the_admin_function_and_the_console(tf: Terraform) -> None:
    reader = tf.resources[("google_bigquery_dataset_iam_member", "insight_reader")]
    assert reader["role"] == "roles/bigquery.dataViewer"
    assert reader["for_each"] == ref("local.insight_readers")
    assert '"admin", "admin_console"' in tf.locals["insight_readers"]


def test_the_schema_has_every_field_the_views_read() -> None:
    """Each ``data.x`` / ``data.cause.x`` the SQL reads is a column of the table (BigQuery would
    refuse the view at apply time; this catches it offline)."""
    fields = {f["name"]: f for f in insight_local.schema()}
    data = {f["name"]: f for f in fields["data"]["fields"]}
    cause = {f["name"] for f in data["cause"]["fields"]}
    for name in insight_local.VIEWS:
        text = (INFRA / "insight" / f"{name}.sql").read_text()
        for path in re.findall(r"\bdata\.([a-z_]+(?:\.[a-z_]+)?)", text):
            head, _, tail = path.partition(".")
            assert head in data, f"{name}.sql reads data.{path}"
            if tail:
                assert head == "cause" and tail in cause, f"{name}.sql reads data.{path}"


def test_dropped_fields_are_the_secret_and_personal_ones() -> None:
    """Every data field of both event types is a column, except the purchase id (a Google
    purchase token is a secret) and the user id (personal): drop_unknown_fields drops them."""
    schema = json.loads((INFRA.parent / "docs" / "events.schema.json").read_text())
    defs = schema["$defs"]
    event_fields = set(defs["data"]["properties"]) | set(defs["refund_request_data"]["properties"])
    columns = {f["name"] for f in insight_local.schema()}
    data_columns = {
        f["name"] for f in next(f for f in insight_local.schema() if f["name"] == "data")["fields"]
    }
    assert event_fields - data_columns == {"purchase_id", "user_id"}
    assert set(schema["properties"]) <= columns  # every top-level field of every type
