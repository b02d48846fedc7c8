"""The rows the Pub/Sub BigQuery subscription writes into the insight table: its schema as
Terraform gives it (infra/insight/events_schema.json) and one message as its row
(``subscription_row``). Shared by the local warehouse (``insight_local``) and its demo data
(``insight_demo``); development and tests only."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = ROOT / "infra" / "insight"
SCHEMA_PATH = SQL_DIR / "events_schema.json"


def schema() -> list[dict[str, Any]]:
    """The BigQuery table's schema, as Terraform gives it (JSON, BigQuery's format)."""
    return json.loads(SCHEMA_PATH.read_text())


def _keep(value: Any, field: Mapping[str, Any]) -> Any:
    """``value`` as the subscription writes it into ``field``: unknown sub-fields dropped."""
    if field["type"] != "RECORD" or not isinstance(value, Mapping):
        return value
    return {f["name"]: _keep(value.get(f["name"]), f) for f in field["fields"]}


def subscription_row(
    *,
    data: bytes,
    message_id: str,
    publish_time: str,
    attributes: Mapping[str, str],
    subscription: str = "projects/demo/subscriptions/insight",
) -> dict[str, Any]:
    """The row a BigQuery subscription with ``use_table_schema`` + ``write_metadata`` +
    ``drop_unknown_fields`` writes for one message: the JSON data's top-level fields into the
    columns of the same name (fields the table lacks dropped, at every level), and the metadata
    columns."""
    event = json.loads(data)
    row: dict[str, Any] = {}
    for field in schema():
        name = field["name"]
        if name == "subscription_name":
            row[name] = subscription
        elif name == "message_id":
            row[name] = message_id
        elif name == "publish_time":
            row[name] = publish_time
        elif name == "attributes":
            row[name] = json.dumps(dict(attributes), sort_keys=True)
        else:
            row[name] = _keep(event.get(name), field)
    return row


def row_of_pubsub_message(message: Mapping[str, Any], subscription: str) -> dict[str, Any]:
    """A pulled Pub/Sub REST ``PubsubMessage`` (base64 data) as its subscription row."""
    return subscription_row(
        data=base64.b64decode(message.get("data", "")),
        message_id=message["messageId"],
        publish_time=message["publishTime"],
        attributes=message.get("attributes", {}),
        subscription=subscription,
    )
