"""An offline reader of a Terraform directory for tests: no terraform binary, no network.

``Terraform`` parses every .tf file of one directory with python-hcl2 and indexes resources, data
sources, locals, variables, outputs and moved blocks. python-hcl2 only parses, so the small
evaluator here (``instances`` / ``render``) expands exactly the for_each forms infra/ uses:

- for_each over a literal map in a locals block (``${local.x}``), or over such a map filtered by
  ``.enabled`` (``{for k, v in local.x : k => v if v.enabled}``, also ``if local.y[k].enabled``),
  expanded as if every entry were on: what may be deployed is what must be right;
- ``each.key``; ``each.value.<attr>...``; ``merge()`` of literal maps (locals or each.value parts);
  ``local.x["key"]`` lookups; a conditional one of whose branches is {}
  (``cond ? {} : each.value.x``, rendered as the map it gives when on);
- each.key inside any other expression becomes the quoted key, so
  ``google_service_account.function[each.key].email`` reads ``...function["admin"].email``.

Anything else that mentions each.key / each.value raises ``EvaluationError`` instead of guessing.
tests/unit/test_terraform_eval.py checks the evaluator; tests/unit/test_infra*.py use it on infra/.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

# ${var.x}, ${local.x}, ${local.x.a.b}, ${local.x["key"]} as a whole string.
LOCAL_OR_VAR_RE = re.compile(
    r'\$\{(var|local)\.([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\["[^"\]]+"\])*)\}'
)
EACH_RE = re.compile(r"\beach\.(?:key|value)\b")
EACH_VALUE_RE = re.compile(r"\$\{each\.value((?:\.[A-Za-z_][A-Za-z0-9_]*)*)\}")
MERGE_RE = re.compile(r"\$\{merge\(([^()]*)\)\}")
OPTIONAL_EACH_RE = re.compile(r"\$\{[^?{}]+\? \{\} : each\.value((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\}")
# The deployed subset of a map in a locals block: the entries whose `enabled` is true, read from
# the entry itself or from the same key of another local.
ENABLED_RE = re.compile(
    r"\$\{\{for (\w+), (\w+) in local\.(\w+) : \1 => \2 "
    r"if (?:\2|local\.\w+\[\1\])\.enabled\}\}"
)


class EvaluationError(AssertionError):
    """The evaluator met an expression it does not understand: fail, never guess."""


def _clean(node: Any) -> Any:
    """Drop python-hcl2's __is_block__ / __comments__ markers, recursively."""
    if isinstance(node, dict):
        return {k: _clean(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


class Terraform:
    """All .tf files of a directory (not its modules), indexed by kind and address."""

    def __init__(self, directory: Path) -> None:
        self.files = sorted(directory.glob("*.tf"))
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.data: dict[tuple[str, str], dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.moved: list[dict[str, Any]] = []
        self.terraform: list[dict[str, Any]] = []
        options = SerializationOptions(strip_string_quotes=True, with_comments=False)
        for path in self.files:
            with path.open(encoding="utf-8") as handle:
                doc = _clean(hcl2.load(handle, serialization_options=options))
            for entry in doc.get("resource", []):
                for rtype, named in entry.items():
                    for name, body in named.items():
                        if (rtype, name) in self.resources:
                            raise EvaluationError(f"duplicate resource {rtype}.{name}")
                        self.resources[(rtype, name)] = body
            for entry in doc.get("data", []):
                for dtype, named in entry.items():
                    for name, body in named.items():
                        self.data[(dtype, name)] = body
            for entry in doc.get("locals", []):
                duplicated = sorted(set(entry) & set(self.locals))
                if duplicated:
                    raise EvaluationError(f"locals defined twice: {duplicated}")
                self.locals.update(entry)
            for entry in doc.get("variable", []):
                self.variables.update(entry)
            for entry in doc.get("output", []):
                self.outputs.update(entry)
            self.moved.extend(doc.get("moved", []))
            self.terraform.extend(doc.get("terraform", []))

    def of_type(self, rtype: str) -> dict[str, dict[str, Any]]:
        """Name -> body of every resource of a type, as written (for_each not expanded)."""
        return {name: body for (t, name), body in self.resources.items() if t == rtype}

    def resolve(self, value: Any) -> Any:
        """Follow a bare ${var.x} (to its default), ${local.x}, ${local.x.key} or ${local.x["key"]};
        anything else is returned as it is."""
        for _ in range(10):
            if not isinstance(value, str):
                return value
            match = LOCAL_OR_VAR_RE.fullmatch(value)
            if not match:
                return value
            kind, name, path = match.groups()
            if kind == "var":
                if path:
                    return value
                if name not in self.variables:
                    raise EvaluationError(f"undeclared variable {name}")
                value = self.variables[name].get("default")
                continue
            if name not in self.locals:
                raise EvaluationError(f"undefined local {name}")
            value = self.locals[name]
            for attr, key in re.findall(r'\.([A-Za-z0-9_]+)|\["([^"\]]+)"\]', path):
                step = attr or key
                if not isinstance(value, dict) or step not in value:
                    raise EvaluationError(f"local.{name}{path}: no {step}")
                value = value[step]
        return value


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a resource body."""
    found = body.get(name)
    if not (isinstance(found, list) and len(found) == 1):
        raise EvaluationError(f"expected exactly one {name} block, found {found!r}")
    return found[0]


def walk_strings(node: Any) -> Iterator[str]:
    """Every string (keys included) of a parsed body, depth first."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_strings(value)


def ref(expression: str) -> str:
    """How python-hcl2 writes an expression: ref("var.x") == "${var.x}"."""
    return "${" + expression + "}"


def _each_value(entry: Any, path: str, where: str) -> Any:
    value = entry
    for attr in filter(None, path.split(".")):
        if not isinstance(value, dict) or attr not in value:
            raise EvaluationError(f"{where}: each.value{path}: the entry has no {attr!r}")
        value = value[attr]
    return copy.deepcopy(value)


def render(tf: Terraform, node: Any, key: str, entry: Any, where: str) -> Any:
    """One for_each instance of a resource body, as Terraform would see it for `key` / `entry`.

    A whole "${each.key}" becomes the key and a whole "${each.value.a.b}" that part of the entry;
    "${merge(A, B)}" of literal maps (locals or each.value parts) is merged, later winning as in
    Terraform; each.key inside any other expression becomes the quoted key. Any other use of
    each.key / each.value raises EvaluationError.
    """
    if isinstance(node, dict):
        return {k: render(tf, v, key, entry, where) for k, v in node.items()}
    if isinstance(node, list):
        return [render(tf, v, key, entry, where) for v in node]
    if not isinstance(node, str):
        return node
    if node == "${each.key}":
        return key
    match = EACH_VALUE_RE.fullmatch(node) or OPTIONAL_EACH_RE.fullmatch(node)
    if match:
        return _each_value(entry, match.group(1), where)
    match = MERGE_RE.fullmatch(node)
    if match and EACH_RE.search(node):
        merged: dict[str, Any] = {}
        for arg in match.group(1).split(","):
            value = tf.resolve(render(tf, "${" + arg.strip() + "}", key, entry, where))
            if not isinstance(value, dict):
                raise EvaluationError(f"{where}: merge() argument {arg.strip()} is not a map")
            merged.update(value)
        return merged
    text = re.sub(r"\beach\.key\b", f'"{key}"', node)
    if EACH_RE.search(text):
        raise EvaluationError(f"{where}: cannot evaluate {node!r}")
    return text


def enabled_source(tf: Terraform, local: str) -> str | None:
    """The local a ``${local.<local>}`` filters by ``.enabled`` (e.g. enabled_functions ->
    functions), or None when it is anything else."""
    match = ENABLED_RE.fullmatch(str(tf.locals.get(local, "")))
    return match.group(3) if match else None


def for_each_map(tf: Terraform, expression: Any) -> Any:
    """What a for_each iterates over: a literal map, or a literal map filtered by ``.enabled``
    (every entry, as when each is enabled)."""
    match = LOCAL_OR_VAR_RE.fullmatch(str(expression))
    if match and match.group(1) == "local" and not match.group(3):
        source = enabled_source(tf, match.group(2))
        if source is not None:
            return tf.resolve(ref(f"local.{source}"))
    return tf.resolve(expression)


def instances(tf: Terraform, rtype: str, name: str) -> dict[str, dict[str, Any]]:
    """Instance address (name or name["key"]) -> body of one resource, for_each expanded.

    for_each must be a literal map in a locals block (${local.x}), or one filtered by
    ``.enabled`` (``enabled_source``); a resource without for_each must not mention each.key /
    each.value.
    """
    body = tf.resources[(rtype, name)]
    where = f"{rtype}.{name}"
    if "for_each" not in body:
        if any(EACH_RE.search(s) for s in walk_strings(body)):
            raise EvaluationError(f"{where} uses each.key / each.value but has no for_each")
        return {name: body}
    collection = for_each_map(tf, body["for_each"])
    if not isinstance(collection, dict):
        raise EvaluationError(
            f"{where}: for_each = {body['for_each']!r} is not a literal map in a locals block"
        )
    rest = {k: v for k, v in body.items() if k != "for_each"}
    return {
        f'{name}["{key}"]': render(tf, rest, key, entry, where) for key, entry in collection.items()
    }


def instance(tf: Terraform, rtype: str, name: str, key: str) -> dict[str, Any]:
    """The body of one instance, ``rtype.name[key]``, of a for_each resource."""
    found = instances(tf, rtype, name)
    address = f'{name}["{key}"]'
    if address not in found:
        raise EvaluationError(f"{rtype}.{name} has no instance {key!r}: {sorted(found)}")
    return found[address]


def bodies(tf: Terraform, rtype: str) -> dict[str, dict[str, Any]]:
    """Every resource of a type, instance by instance where its for_each is a literal map
    (``instances``); a resource whose for_each the evaluator cannot read (a set of members, a
    conditional) is kept as written, one body standing for all its instances."""
    found: dict[str, dict[str, Any]] = {}
    for name, body in tf.of_type(rtype).items():
        if "for_each" in body and not isinstance(for_each_map(tf, body["for_each"]), dict):
            found[name] = body
        else:
            found.update(instances(tf, rtype, name))
    return found
