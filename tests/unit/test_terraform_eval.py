"""refundguard_dev.terraform_eval on small Terraform directories written here: loading, resolving
variables and locals, expanding for_each (literal maps, maps filtered by ``.enabled``), rendering
each.key / each.value / merge(), and refusing, loudly, every form it does not understand.
tests/unit/test_infra*.py use it on infra/."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from refundguard_dev.terraform_eval import (
    EvaluationError,
    Terraform,
    block,
    bodies,
    enabled_source,
    instance,
    instances,
    ref,
    render,
    walk_strings,
)

MAIN_TF = """
variable "prefix" {
  type    = string
  default = "rg"
}

variable "on" {
  type = bool
}

locals {
  common_env = {
    PROJECT = "p"
  }
  things = {
    a = {
      enabled = true
      title   = "first"
      env     = { A = "1" }
      secrets = { S = "s1" }
    }
    b = {
      enabled = var.on
      title   = "second"
      env     = {}
      secrets = {}
    }
  }
  thing_names = {
    a = "${var.prefix}-a"
    b = "${var.prefix}-b"
  }
  enabled_things      = { for key, thing in local.things : key => thing if thing.enabled }
  enabled_thing_names = {
    for key, name in local.thing_names : key => name if local.things[key].enabled
  }
  alias               = local.thing_names
}

resource "google_service_account" "thing" {
  for_each = local.enabled_thing_names

  account_id   = each.value
  display_name = "refundguard ${local.things[each.key].title}"
}

resource "google_cloud_run_service" "thing" {
  for_each = local.enabled_things

  name  = local.thing_names[each.key]
  title = each.value.title
  env   = merge(local.common_env, each.value.env)

  dynamic "secret" {
    for_each = var.on ? {} : each.value.secrets
    content {
      key = secret.key
    }
  }

  member = google_service_account.thing[each.key].member
}

resource "google_project_iam_member" "members" {
  for_each = toset(["user:a@example.com"])

  role   = "roles/viewer"
  member = each.value
}

resource "google_storage_bucket" "plain" {
  name = "${var.prefix}-bucket"
}

output "bucket" {
  value = google_storage_bucket.plain.name
}

moved {
  from = google_cloud_run_service.a
  to   = google_cloud_run_service.thing["a"]
}
"""

DATA_TF = """
data "google_project" "this" {}
"""


def write(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def tf(tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    return Terraform(
        write(tmp_path_factory.mktemp("tf"), **{"main.tf": MAIN_TF, "data.tf": DATA_TF})
    )


# --------------------------------------------------------------------------------------------------
# Loading and resolving
# --------------------------------------------------------------------------------------------------


def test_loads_every_kind_of_block(tf: Terraform) -> None:
    assert [p.name for p in tf.files] == ["data.tf", "main.tf"]
    assert set(tf.of_type("google_cloud_run_service")) == {"thing"}
    assert ("google_project", "this") in tf.data
    assert set(tf.variables) == {"prefix", "on"}
    assert tf.outputs["bucket"]["value"] == ref("google_storage_bucket.plain.name")
    assert tf.moved == [
        {
            "from": ref("google_cloud_run_service.a"),
            "to": ref('google_cloud_run_service.thing["a"]'),
        }
    ]
    assert all(not k.startswith("__") for k in walk_strings(list(tf.resources.values())))


def test_a_resource_or_local_written_twice_is_refused(tmp_path: Path) -> None:
    twice = 'resource "google_storage_bucket" "plain" {\n  name = "x"\n}\n'
    with pytest.raises(
        EvaluationError, match=re.escape("duplicate resource google_storage_bucket.plain")
    ):
        Terraform(write(tmp_path / "r", **{"a.tf": twice, "b.tf": twice}))
    local = "locals {\n  x = 1\n}\n"
    with pytest.raises(EvaluationError, match="locals defined twice"):
        Terraform(write(tmp_path / "l", **{"a.tf": local, "b.tf": local}))


def test_resolve_follows_variables_and_locals(tf: Terraform) -> None:
    assert tf.resolve(ref("var.prefix")) == "rg"
    assert tf.resolve(ref("var.on")) is None, "a variable without default resolves to None"
    assert tf.resolve(ref("local.things.a.title")) == "first"
    assert tf.resolve(ref('local.things["b"].title')) == "second"
    assert tf.resolve(ref("local.alias")) == tf.locals["thing_names"]
    # Anything but a bare reference is returned as written.
    for expression in (ref("upper(var.prefix)"), "${var.prefix}-a", 3, {"k": "v"}):
        assert tf.resolve(expression) == expression
    for expression, error in (
        (ref("var.nope"), "undeclared variable nope"),
        (ref("local.nope"), "undefined local nope"),
        (ref("local.things.c"), "no c"),
    ):
        with pytest.raises(EvaluationError, match=error):
            tf.resolve(expression)


def test_block_takes_exactly_one_nested_block() -> None:
    assert block({"b": [{"x": 1}]}, "b") == {"x": 1}
    for body in ({}, {"b": []}, {"b": [{}, {}]}, {"b": {"x": 1}}):
        with pytest.raises(EvaluationError, match="exactly one b block"):
            block(body, "b")


# --------------------------------------------------------------------------------------------------
# for_each
# --------------------------------------------------------------------------------------------------


def test_enabled_filters_are_recognised(tf: Terraform) -> None:
    assert enabled_source(tf, "enabled_things") == "things"
    assert enabled_source(tf, "enabled_thing_names") == "thing_names"
    assert enabled_source(tf, "alias") is None
    assert enabled_source(tf, "missing") is None
    mutated = copy.deepcopy(tf)
    mutated.locals["enabled_things"] = (
        "${{for key, thing in local.things : key => thing if thing.public}}"
    )
    assert enabled_source(mutated, "enabled_things") is None


def test_instances_expand_every_entry_as_if_enabled(tf: Terraform) -> None:
    services = instances(tf, "google_cloud_run_service", "thing")
    assert list(services) == ['thing["a"]', 'thing["b"]']
    a = services['thing["a"]']
    assert a["name"] == ref('local.thing_names["a"]')
    assert tf.resolve(a["name"]) == "${var.prefix}-a"
    assert a["title"] == "first"
    assert a["env"] == {"PROJECT": "p", "A": "1"}
    assert services['thing["b"]']["env"] == {"PROJECT": "p"}
    assert a["dynamic"][0]["secret"]["for_each"] == {"S": "s1"}
    assert a["member"] == ref('google_service_account.thing["a"].member')
    assert "for_each" not in a
    accounts = instances(tf, "google_service_account", "thing")
    assert accounts['thing["b"]']["account_id"] == "${var.prefix}-b"
    assert accounts['thing["b"]']["display_name"] == 'refundguard ${local.things["b"].title}'
    assert instance(tf, "google_service_account", "thing", "a") == accounts['thing["a"]']
    with pytest.raises(EvaluationError, match="has no instance 'c'"):
        instance(tf, "google_service_account", "thing", "c")


def test_a_resource_without_for_each_is_one_instance(tf: Terraform) -> None:
    plain = tf.resources[("google_storage_bucket", "plain")]
    assert instances(tf, "google_storage_bucket", "plain") == {"plain": plain}
    mutated = copy.deepcopy(tf)
    del mutated.resources[("google_cloud_run_service", "thing")]["for_each"]
    with pytest.raises(EvaluationError, match="has no for_each"):
        instances(mutated, "google_cloud_run_service", "thing")


def test_a_for_each_it_cannot_read_is_refused_by_instances_and_kept_by_bodies(
    tf: Terraform,
) -> None:
    with pytest.raises(EvaluationError, match="not a literal map in a locals block"):
        instances(tf, "google_project_iam_member", "members")
    members = bodies(tf, "google_project_iam_member")
    assert members == {"members": tf.resources[("google_project_iam_member", "members")]}
    assert set(bodies(tf, "google_cloud_run_service")) == {'thing["a"]', 'thing["b"]'}
    assert set(bodies(tf, "google_storage_bucket")) == {"plain"}
    assert bodies(tf, "google_pubsub_topic") == {}


def test_a_missing_attribute_of_an_entry_is_refused(tf: Terraform) -> None:
    mutated = copy.deepcopy(tf)
    mutated.resources[("google_cloud_run_service", "thing")]["for_each"] = ref("local.thing_names")
    with pytest.raises(
        EvaluationError, match=re.escape("each.value.title: the entry has no 'title'")
    ):
        instances(mutated, "google_cloud_run_service", "thing")


# --------------------------------------------------------------------------------------------------
# render
# --------------------------------------------------------------------------------------------------


def test_evaluator_refuses_what_it_does_not_understand(tf: Terraform) -> None:
    entry = {"env": {"A": "1"}, "name": "x"}
    assert render(tf, "${each.key}", "k", entry, "t") == "k"
    assert render(tf, "${each.value.env}", "k", entry, "t") == {"A": "1"}
    assert render(tf, "${f.g[each.key].h}", "k", entry, "t") == '${f.g["k"].h}'
    assert render(tf, "${merge(local.common_env, each.value.env)}", "k", entry, "t")["A"] == "1"
    assert render(tf, '${var.x == "" ? {} : each.value.env}', "k", entry, "t") == {"A": "1"}
    for expression in (
        "${upper(each.value.name)}",
        "${each.value.missing}",
        "${merge(each.value.name, each.value.env)}",
        '${lookup(each.value, "x", 1)}',
        '${var.x == "" ? each.value.env : {}}',
    ):
        with pytest.raises(EvaluationError):
            render(tf, expression, "k", entry, "t")


def test_merge_lets_later_maps_win_and_leaves_the_entry_alone(tf: Terraform) -> None:
    entry = {"env": {"PROJECT": "mine", "B": "2"}}
    merged = render(tf, "${merge(local.common_env, each.value.env)}", "k", entry, "t")
    assert merged == {"PROJECT": "mine", "B": "2"}
    merged["B"] = "changed"
    assert entry["env"]["B"] == "2"
    assert tf.locals["common_env"] == {"PROJECT": "p"}


IDENTIFIERS = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
TEXT = st.text(st.characters(codec="ascii", exclude_characters='"\\${}'), max_size=20)


@given(
    entries=st.dictionaries(
        IDENTIFIERS,
        st.fixed_dictionaries(
            {
                "enabled": st.booleans(),
                "title": TEXT,
                "env": st.dictionaries(IDENTIFIERS.map(str.upper), TEXT, max_size=3),
                "secrets": st.just({}),
            }
        ),
        min_size=1,
        max_size=6,
    )
)
def test_one_instance_per_entry_of_any_map(tf: Terraform, entries: dict[str, Any]) -> None:
    """Whatever the entries (enabled or not), one instance each, keyed and filled from its own."""
    mutated = copy.deepcopy(tf)
    mutated.locals["things"] = entries
    mutated.locals["thing_names"] = {key: f"${{var.prefix}}-{key}" for key in entries}
    services = instances(mutated, "google_cloud_run_service", "thing")
    assert list(services) == [f'thing["{key}"]' for key in entries]
    for key, entry in entries.items():
        body = services[f'thing["{key}"]']
        assert body["title"] == entry["title"]
        assert body["env"] == {"PROJECT": "p", **entry["env"]}
        assert body["member"] == ref(f'google_service_account.thing["{key}"].member')
        assert mutated.resolve(body["name"]) == f"${{var.prefix}}-{key}"
