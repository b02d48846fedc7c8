"""docs/integrating.md's tenant parts stay true: its per-tenant subscription is Terraform that
parses, filters on the ``tenant`` attribute every event carries (docs/events.schema.json), and
keeps the settings the platform's own subscriptions have (ordering, never expiring)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from refundguard_dev.terraform_eval import Terraform

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "integrating.md").read_text()
SCHEMA = json.loads((ROOT / "docs" / "events.schema.json").read_text())


def test_the_filtered_subscription_example_filters_on_the_tenant_attribute(
    tmp_path: Path,
) -> None:
    blocks = [b for b in re.findall(r"```hcl\n(.*?)```", DOC, re.S) if "filter" in b]
    assert len(blocks) == 1
    (tmp_path / "example.tf").write_text(blocks[0])
    (subscription,) = Terraform(tmp_path).of_type("google_pubsub_subscription").values()
    assert subscription["filter"] == 'attributes.tenant = "acme"'
    assert subscription["enable_message_ordering"] is True
    assert subscription["expiration_policy"][0]["ttl"] == ""
    attributes = SCHEMA["$defs"]["message_attributes"]
    assert "tenant" in attributes["required"] and "tenant" in attributes["properties"]
