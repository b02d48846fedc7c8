"""Offline checks of infra/ (Terraform) and cloudbuild.yaml: no terraform binary, no network.

Every .tf file is parsed with python-hcl2 and the wiring the code depends on is asserted: entry
points, runtimes, the hashed source object, one service account per function with only the allowed
roles, the exact environment variables of refundguard/config.py (the order look-up's written
once), the RTDN publisher grant, public access only on the Apple function and the console, the
pinned Apple root fingerprint, the moved blocks that keep the functions. checkov runs from its own
virtualenv ($CHECKOV_BIN) and must report zero failed checks; every skip must carry a written
reason. The push subscriptions are test_infra_pubsub.py's, the access events test_infra_events.py's,
the reconciler and the Cloud Scheduler calls test_infra_reconcile.py's.

The functions are one resource with for_each over local.enabled_functions, local.functions
filtered by each entry's ``enabled`` (the console is optional). python-hcl2 only parses, so
refundguard_dev.terraform_eval expands for_each resources (every entry as if enabled) and fails
loudly on any form it does not understand; its own tests are tests/unit/test_terraform_eval.py.
Negative self-checks here show each function check can fail.
"""

from __future__ import annotations

import ast
import base64
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from refundguard import config
from refundguard_dev.terraform_eval import (
    EvaluationError,
    Terraform,
    block,
    bodies,
    enabled_source,
    instances,
    ref,
    walk_strings,
)

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN_PY = ROOT / "functions" / "main.py"
CLOUDBUILD = ROOT / "cloudbuild.yaml"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
SHA_SCRIPT = INFRA / "scripts" / "sha256_of_base64.sh"

APPLE_ROOT_G3_SHA256 = "63343abfb89a6a03ebb57e9b3f5fa7be7c4f5c756f3017b3a8c488c3653e9179"
APPLE_ROOT_URL = "https://www.apple.com/certificateauthority/AppleRootCA-G3.cer"
PLAY_PUBLISHER = "serviceAccount:google-play-developer-notifications@system.gserviceaccount.com"
ALLOWED_FUNCTION_ROLES = {"roles/datastore.user"}
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
MIN_SKIP_REASON = 25  # characters of prose after "checkov:skip=ID:"
FUNCTION_TYPE = "google_cloudfunctions2_function"
# Ingress open to the internet, by entry point; every other function must stay internal.
PUBLIC_INGRESS = {"apple_notifications", "admin", "admin_console"}
# Function names as the deployment has always had them (docs/deploy.md: PREFIX-play, ...).
FUNCTION_NAMES = {
    "play_notifications": "${var.name_prefix}-play",
    "apple_notifications": "${var.name_prefix}-apple",
    "admin": "${var.name_prefix}-admin",
    "events_sweep": "${var.name_prefix}-events-sweep",
    "reconcile": "${var.name_prefix}-reconcile",
    "reconcile_worker": "${var.name_prefix}-recon-worker",
    "admin_console": "${var.name_prefix}-console",
}
# Functions whose ingress is a variable (internal or public with IAM), and the variable's default.
VARIABLE_INGRESS = {
    "play_notifications": ("play_ingress_settings", "ALLOW_INTERNAL_ONLY"),
    "events_sweep": ("events_sweep_ingress_settings", "ALLOW_INTERNAL_ONLY"),
    # The admin function calls it (POST /reconciliation:run); IAM admits two identities only.
    "reconcile": ("reconcile_ingress_settings", "ALLOW_ALL"),
}
SKIP_RE = re.compile(r"checkov:skip=([A-Za-z0-9_]+)(.*)$")
SECRET_BLOCK = "secret_environment_variables"


@pytest.fixture(scope="module")
def tf() -> Terraform:
    loaded = Terraform(INFRA)
    assert loaded.files, "no .tf files in infra/"
    return loaded


# --------------------------------------------------------------------------------------------------
# The functions, evaluated (refundguard_dev.terraform_eval)
# --------------------------------------------------------------------------------------------------


def functions_by_entry_point(tf: Terraform) -> dict[str, tuple[str, dict[str, Any]]]:
    """Entry point -> (address without the type, e.g. function["admin"], evaluated body)."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in tf.of_type(FUNCTION_TYPE):
        for address, body in instances(tf, FUNCTION_TYPE, name).items():
            entry_point = tf.resolve(block(body, "build_config")["entry_point"])
            assert entry_point not in found, f"two functions with entry point {entry_point}"
            found[entry_point] = (address, body)
    return found


def function_name_for(tf: Terraform, entry_point: str) -> str:
    return functions_by_entry_point(tf)[entry_point][0]


# --------------------------------------------------------------------------------------------------
# Comparing helpers: each has a negative self-check below, so the tests are known to be able to fail
# --------------------------------------------------------------------------------------------------


def function_env(tf: Terraform, body: dict[str, Any]) -> Any:
    """An evaluated function's variables: environment_variables, and the names its dynamic
    secret_environment_variables block may mount (each bound to "secret:<secret id>")."""
    service = block(body, "service_config")
    env = tf.resolve(service.get("environment_variables"))
    secrets: dict[str, Any] = {}
    for dynamic in service.get("dynamic", []):
        if SECRET_BLOCK in dynamic:
            mounted = dynamic[SECRET_BLOCK]["for_each"]
            if not isinstance(mounted, dict):
                return f"secret_environment_variables for_each is not a map: {mounted!r}"
            secrets.update({name: f"secret:{value}" for name, value in mounted.items()})
    if not isinstance(env, dict) or not secrets:
        return env
    return {**env, **secrets}


def env_mismatch(tf_env: Any, expected: tuple[str, ...]) -> list[str]:
    """Problems with a function's environment_variables against the names the code reads."""
    if not isinstance(tf_env, dict):
        return [f"environment_variables is not a literal map: {tf_env!r}"]
    problems = [f"missing {name}" for name in expected if name not in tf_env]
    problems += [f"unknown {name}" for name in tf_env if name not in expected]
    return problems


def function_problems(tf: Terraform) -> list[str]:
    """The function wiring: one resource iterating over local.enabled_functions (local.functions
    filtered by `enabled`), one entry and one name per entry point of config.FUNCTION_ENV, each
    function's environment exactly what it reads."""
    problems = []
    expected = set(config.FUNCTION_ENV)
    resources = tf.of_type(FUNCTION_TYPE)
    if list(resources) != ["function"]:
        problems.append(
            f"expected one {FUNCTION_TYPE} resource, function; found {sorted(resources)}"
        )
    for name, body in resources.items():
        if body.get("for_each") != ref("local.enabled_functions"):
            problems.append(
                f"{name} does not iterate over local.enabled_functions: {body.get('for_each')}"
            )
    if enabled_source(tf, "enabled_functions") != "functions":
        problems.append("local.enabled_functions is not local.functions filtered by .enabled")
    for key, entry in (tf.locals.get("functions") or {}).items():
        if "enabled" not in entry:
            problems.append(f"local.functions.{key} does not say whether it is enabled")
    for local in ("functions", "function_names"):
        found = set(tf.locals.get(local) or {})
        problems += [f"local.{local} lacks {k}" for k in sorted(expected - found)]
        problems += [
            f"local.{local} has {k}, unknown to config.FUNCTION_ENV"
            for k in sorted(found - expected)
        ]
    common = set(tf.resolve(tf.locals.get("common_env")) or {})
    lookup = set(tf.resolve(tf.locals.get("order_lookup_env")) or {})
    for key, entry in (tf.locals.get("functions") or {}).items():
        overridden = sorted(common & set(entry.get("env", {})))
        problems += [f"local.functions.{key}.env overrides common_env {k}" for k in overridden]
        if entry.get("lookup_env") not in ({}, ref("local.order_lookup_env")):
            problems.append(f"local.functions.{key}.lookup_env is neither {{}} nor the local")
        elif entry.get("lookup_env"):
            overridden = sorted(lookup & set(entry.get("env", {})))
            problems += [
                f"local.functions.{key}.env repeats order_lookup_env {k}" for k in overridden
            ]
    try:
        functions = functions_by_entry_point(tf)
    except EvaluationError as error:
        return [*problems, str(error)]
    problems += [f"no function for entry point {k}" for k in sorted(expected - set(functions))]
    for entry_point, (address, body) in sorted(functions.items()):
        if entry_point not in expected:
            problems.append(f"{address}: entry point {entry_point} unknown to config.FUNCTION_ENV")
            continue
        env = function_env(tf, body)
        problems += [
            f"{entry_point}: {p}" for p in env_mismatch(env, config.env_vars_for(entry_point))
        ]
    return problems


def skip_problems(lines: list[str]) -> list[str]:
    """checkov:skip annotations without a written reason."""
    problems = []
    for number, line in enumerate(lines, 1):
        match = SKIP_RE.search(line)
        if not match:
            continue
        check_id, rest = match.groups()
        reason = rest.lstrip(":").strip()
        reason = re.sub(r"^reason:\s*", "", reason, flags=re.IGNORECASE)
        if not rest.startswith(":") or len(reason) < MIN_SKIP_REASON:
            problems.append(f"line {number}: {check_id} has no written reason")
    return problems


def public_grants(tf: Terraform) -> list[tuple[str, str]]:
    """(type, name) of every resource or data source mentioning allUsers / allAuthenticatedUsers."""
    found = []
    for (rtype, name), body in {**tf.resources, **tf.data}.items():
        if any(m in s for s in walk_strings(body) for m in PUBLIC_MEMBERS):
            found.append((rtype, name))
    return found


# --------------------------------------------------------------------------------------------------
# Functions
# --------------------------------------------------------------------------------------------------


def main_py_entry_points() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(MAIN_PY.read_text(encoding="utf-8"))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_one_function_per_entry_point_and_each_exists_in_main_py(tf: Terraform) -> None:
    functions = functions_by_entry_point(tf)
    assert set(functions) == set(config.FUNCTION_ENV), "Terraform and config.FUNCTION_ENV disagree"
    defined = main_py_entry_points()
    for entry_point in functions:
        assert entry_point in defined, f"{entry_point} is not defined in functions/main.py"
        assert len(defined[entry_point].args.args) == 1, f"{entry_point} must take one request"


@pytest.mark.parametrize("entry_point", sorted(config.FUNCTION_ENV))
def test_function_runtime_and_hashed_source(tf: Terraform, entry_point: str) -> None:
    _, body = functions_by_entry_point(tf)[entry_point]
    build = block(body, "build_config")
    assert tf.resolve(build["runtime"]) in {"python312", "python313"}
    storage = block(block(build, "source"), "storage_source")
    assert storage["bucket"] == ref("google_storage_bucket.function_source.name")
    assert storage["object"] == ref("google_storage_bucket_object.function_source.name")
    service = block(body, "service_config")
    assert service["all_traffic_on_latest_revision"] is True
    runtime_var = tf.variables["python_runtime"]
    condition = block(runtime_var, "validation")["condition"]
    assert set(re.findall(r"python3\d+", condition)) <= {"python312", "python313"}


def test_source_object_is_named_by_the_archive_hash(tf: Terraform) -> None:
    obj = tf.resources[("google_storage_bucket_object", "function_source")]
    assert "data.archive_file.function_source.output_sha256" in obj["name"]
    assert obj["source"] == ref("data.archive_file.function_source.output_path")
    bucket = tf.resources[("google_storage_bucket", "function_source")]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    archive = tf.data[("archive_file", "function_source")]
    dynamic = archive["dynamic"][0]["source"]
    assert "local.function_source_files" in dynamic["for_each"]
    assert "../functions" in tf.locals["functions_dir"]
    files = tf.locals["function_source_files"]
    assert "__pycache__" in files, "caches must be excluded from the source archive"


def test_source_archive_pattern_covers_every_runtime_file(tf: Terraform) -> None:
    """A file added under functions/ with an extension the archive skips would silently not ship."""
    pattern = re.search(
        r'fileset\(local\.functions_dir, "\*\*/\*\.\{([a-z,]+)\}"\)', str(tf.locals)
    )
    assert pattern, "function_source_files should use fileset(local.functions_dir, **/*.{...})"
    shipped = {f".{ext}" for ext in pattern.group(1).split(",")}
    assert {".py", ".txt"} <= shipped
    functions_dir = ROOT / "functions"
    runtime_files = [
        p
        for p in functions_dir.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and not any(part.startswith(".") for part in p.relative_to(functions_dir).parts)
        and p.suffix != ".pyc"
    ]
    assert (functions_dir / "requirements.txt") in runtime_files
    left_out = sorted(str(p.relative_to(ROOT)) for p in runtime_files if p.suffix not in shipped)
    assert left_out == [], f"not in the deployed archive: {left_out}"


def test_each_function_has_its_own_service_account(tf: Terraform) -> None:
    accounts = {}
    for entry_point, (_, body) in functions_by_entry_point(tf).items():
        email = block(body, "service_config")["service_account_email"]
        assert email == ref(f'google_service_account.function["{entry_point}"].email')
        accounts[entry_point] = email
    assert len(set(accounts.values())) == len(accounts)
    # One account per deployed function name, its id the function's name.
    account = tf.resources[("google_service_account", "function")]
    assert account["for_each"] == ref("local.enabled_function_names")
    assert enabled_source(tf, "enabled_function_names") == "function_names"
    assert "local.enabled_function_names" in tf.locals["function_account_roles"]
    assert account["account_id"] == ref("each.value")
    assert set(tf.locals["function_names"]) == set(config.FUNCTION_ENV)
    assert "local.functions[each.key].title" in account["display_name"]
    for entry in tf.locals["functions"].values():
        assert isinstance(entry["title"], str) and entry["title"].endswith("function")


@pytest.mark.parametrize("entry_point", sorted(config.FUNCTION_ENV))
def test_environment_variables_are_exactly_what_the_code_reads(
    tf: Terraform, entry_point: str
) -> None:
    _, body = functions_by_entry_point(tf)[entry_point]
    env = function_env(tf, body)
    assert env_mismatch(env, config.env_vars_for(entry_point)) == []
    # Secrets come from Secret Manager only, and nothing else does.
    plain = tf.resolve(block(body, "service_config")["environment_variables"])
    assert not set(plain) & config.SECRET_ENV, "a secret setting as a plain variable"
    mounted = {k for k, v in env.items() if str(v).startswith("secret:")}
    assert mounted == set(config.env_vars_for(entry_point)) & config.SECRET_ENV
    assert env["GOOGLE_CLOUD_PROJECT"] == ref("var.project_id")
    assert env["FIRESTORE_DATABASE"] == ref("google_firestore_database.ledger.name")
    assert "var.firestore_deadline_seconds" in env["FIRESTORE_DEADLINE_SECONDS"]


def test_environment_values_per_function(tf: Terraform) -> None:
    functions = functions_by_entry_point(tf)

    def env(entry_point: str) -> dict[str, str]:
        return block(functions[entry_point][1], "service_config")["environment_variables"]

    assert env("play_notifications")["PLAY_PACKAGE_NAMES"] == ref(
        'join(",", var.play_package_names)'
    )
    apple = env("apple_notifications")
    assert apple["APPLE_BUNDLE_IDS"] == ref('join(",", var.apple_bundle_ids)')
    assert apple["APPLE_ENVIRONMENTS"] == ref('join(",", var.apple_environments)')
    assert tf.variables["apple_environments"]["default"] == ["Production"]
    assert apple["APPLE_APP_APPLE_ID"] == ref("var.apple_app_apple_id")
    # APPLE_ROOT_CERTS: a path relative to the source root, and that path is in the archive.
    cert_path = tf.resolve(apple["APPLE_ROOT_CERTS"])
    assert isinstance(cert_path, str) and not cert_path.startswith("/")
    assert cert_path.startswith("certs/")
    archive = tf.data[("archive_file", "function_source")]
    shipped = [s["filename"] for s in archive.get("source", [])]
    assert apple["APPLE_ROOT_CERTS"] in shipped
    admin = env("admin")
    assert admin["ADMIN_EMAILS"] == ref('join(",", local.admin_allow_list)')
    assert tf.resolve(admin["ADMIN_CERTS_URL"]) == "https://www.googleapis.com/oauth2/v3/certs"
    assert admin["ADMIN_AUDIENCES"] == ref('join(",", local.admin_audiences)')
    audiences = tf.locals["admin_audiences"]
    for part in (
        "local.admin_function_url",
        "local.admin_run_app_url",
        "var.admin_extra_audiences",
    ):
        assert part in audiences
    assert "google_cloudfunctions2_function" not in audiences, "self-reference cycle"
    assert tf.locals["admin_function_url"] == (
        "https://${var.region}-${var.project_id}.cloudfunctions.net/${local.function_names.admin}"
    )


def test_functions_are_one_resource_over_the_local_map(tf: Terraform) -> None:
    assert function_problems(tf) == []


def test_function_names_are_written_once(tf: Terraform) -> None:
    assert tf.locals["function_names"] == FUNCTION_NAMES
    for entry_point, (_, body) in functions_by_entry_point(tf).items():
        assert body["name"] == ref(f'local.function_names["{entry_point}"]')
        assert tf.resolve(body["name"]) == FUNCTION_NAMES[entry_point]
    text = "\n".join(path.read_text(encoding="utf-8") for path in tf.files)
    for name in FUNCTION_NAMES.values():
        assert text.count(f'"{name}"') == 1, f"{name} is written more than once in infra/"
    metric = tf.resources[("google_logging_metric", "function_errors")]
    assert 'service_name =~ "^(${join("|", values(local.function_names))})$"' in metric["filter"]


def test_the_order_look_up_environment_is_written_once(tf: Terraform) -> None:
    """The admin function, the console and the reconciler look orders up with the same settings:
    one local, named by their entries, and no other function gets it."""
    lookup = tf.locals["order_lookup_env"]
    readers = {
        key
        for key, entry in tf.locals["functions"].items()
        if entry["lookup_env"] == ref("local.order_lookup_env")
    }
    assert readers == {"admin", "admin_console", "reconcile", "reconcile_worker"}
    for key, entry in tf.locals["functions"].items():
        assert key in readers or entry["lookup_env"] == {}, key
    for key in readers:
        assert set(lookup) <= set(config.env_vars_for(key)), key
    function = tf.resources[(FUNCTION_TYPE, "function")]
    assert block(function, "service_config")["environment_variables"] == ref(
        "merge(local.common_env, each.value.lookup_env, each.value.env)"
    )
    # The App Store Server API settings are read by the look-up only: one assignment in infra/.
    text = "\n".join(path.read_text(encoding="utf-8") for path in tf.files)
    for name in ("APPLE_API_KEY_ID", "APPLE_API_ISSUER_ID", "APPLE_API_BASE_URL"):
        assert name in lookup
        assigned = re.findall(rf"^\s*{name}\s*=", text, flags=re.MULTILINE)
        assert len(assigned) == 1, f"{name} is set {len(assigned)} times in infra/"


def test_ingress_is_internal_except_for_the_public_functions(tf: Terraform) -> None:
    """checkov sees one resource for all functions (CKV_GCP_124 is skipped there): checked here."""
    for entry_point, (_, body) in functions_by_entry_point(tf).items():
        ingress = block(body, "service_config")["ingress_settings"]
        if entry_point in PUBLIC_INGRESS:
            assert ingress == "ALLOW_ALL", entry_point
        elif entry_point in VARIABLE_INGRESS:
            variable, default = VARIABLE_INGRESS[entry_point]
            assert ingress == ref(f"var.{variable}"), entry_point
            assert tf.variables[variable]["default"] == default, entry_point
        else:
            assert tf.resolve(ingress) == "ALLOW_INTERNAL_ONLY", entry_point
    play = functions_by_entry_point(tf)["play_notifications"][1]
    assert block(play, "service_config")["ingress_settings"] == ref("var.play_ingress_settings")
    text = (INFRA / "functions.tf").read_text(encoding="utf-8")
    block_text = text[text.index(f'resource "{FUNCTION_TYPE}" "function"') :].split("\n}\n", 1)[0]
    assert "checkov:skip=CKV_GCP_124" in block_text
    assert "tests/unit/test_infra.py" in block_text, (
        "the skip must say where ingress is checked instead"
    )


def test_common_settings_and_preconditions_are_written_once(tf: Terraform) -> None:
    text = "\n".join(path.read_text(encoding="utf-8") for path in tf.files)
    deadline = "var.firestore_deadline_seconds < var.function_timeout_seconds"
    assert text.count(deadline) == 1
    for entry_point, (_, body) in functions_by_entry_point(tf).items():
        service = block(body, "service_config")
        assert service["available_memory"] == ref("var.function_memory")
        assert service["timeout_seconds"] == ref("var.function_timeout_seconds")
        assert service["max_instance_count"] == ref("var.function_max_instances")
        assert service["max_instance_request_concurrency"] == 1
        assert block(body, "build_config")["service_account"] == ref("var.build_service_account")
        conditions = [p["condition"] for p in block(body, "lifecycle")["precondition"]]
        assert ref(deadline) in conditions, entry_point
        apple_id = [c for c in conditions if "var.apple_app_apple_id" in c]
        assert len(apple_id) == 1, entry_point
        # Only the Apple function needs an Apple ID: the condition holds trivially elsewhere.
        assert apple_id[0].startswith(f'${{"{entry_point}" != "apple_notifications" ||'), apple_id
        assert ref("keys(local.function_names) == keys(local.functions)") in conditions


def test_moved_blocks_keep_the_deployed_functions(tf: Terraform) -> None:
    """The three functions were separate resources; without these a plan would replace them."""
    moves = {m["from"]: m["to"] for m in tf.moved}
    for old, entry_point in (
        ("play", "play_notifications"),
        ("apple", "apple_notifications"),
        ("admin", "admin"),
    ):
        address, _ = functions_by_entry_point(tf)[entry_point]
        assert moves[ref(f"{FUNCTION_TYPE}.{old}")] == ref(f"{FUNCTION_TYPE}.{address}")


def test_function_checks_fail_on_a_broken_map(tf: Terraform) -> None:
    """Negative self-checks: every way of breaking the map is reported (beyond what is already
    reported for infra/ as it is, so only the check above fails when the real map is broken)."""
    baseline = function_problems(tf)

    def problems_after(change: Any) -> list[str]:
        mutated = copy.deepcopy(tf)
        change(mutated)
        return [p for p in function_problems(mutated) if p not in baseline]

    def drop_entry(m: Terraform) -> None:
        del m.locals["functions"]["admin"]

    assert problems_after(drop_entry) == [
        "local.functions lacks admin",
        "no function for entry point admin",
    ]

    def drop_name(m: Terraform) -> None:
        del m.locals["function_names"]["admin"]

    assert problems_after(drop_name) == ["local.function_names lacks admin"]

    def extra_env(m: Terraform) -> None:
        m.locals["functions"]["play_notifications"]["env"]["PLAY_SECRET"] = "x"

    assert problems_after(extra_env) == ["play_notifications: unknown PLAY_SECRET"]

    def missing_env(m: Terraform) -> None:
        del m.locals["functions"]["apple_notifications"]["env"]["APPLE_ROOT_CERTS"]

    assert problems_after(missing_env) == ["apple_notifications: missing APPLE_ROOT_CERTS"]

    def drop_secret(m: Terraform) -> None:
        m.locals["functions"]["admin"]["secret_env"] = {}

    assert problems_after(drop_secret) == ["admin: missing APPLE_API_PRIVATE_KEY"]

    def extra_common_env(m: Terraform) -> None:
        m.locals["common_env"]["DEBUG"] = "1"

    assert problems_after(extra_common_env) == [
        f"{k}: unknown DEBUG" for k in sorted(config.FUNCTION_ENV)
    ]

    def override_common_env(m: Terraform) -> None:
        m.locals["functions"]["admin"]["env"]["FIRESTORE_DATABASE"] = "other"

    assert problems_after(override_common_env) == [
        "local.functions.admin.env overrides common_env FIRESTORE_DATABASE"
    ]

    def no_lookup_env(m: Terraform) -> None:
        m.locals["functions"]["reconcile"]["lookup_env"] = {}

    assert problems_after(no_lookup_env) == [
        f"reconcile: missing {k}" for k in tf.locals["order_lookup_env"]
    ]

    def other_lookup_env(m: Terraform) -> None:
        m.locals["functions"]["admin"]["lookup_env"] = {"PLAY_API_BASE_URL": "x"}

    problems = problems_after(other_lookup_env)
    assert problems[0] == "local.functions.admin.lookup_env is neither {} nor the local"

    def repeated_lookup_env(m: Terraform) -> None:
        m.locals["functions"]["admin"]["env"]["APPLE_BUNDLE_IDS"] = "x"

    assert problems_after(repeated_lookup_env) == [
        "local.functions.admin.env repeats order_lookup_env APPLE_BUNDLE_IDS"
    ]

    def extra_entry(m: Terraform) -> None:
        entry = copy.deepcopy(m.locals["functions"]["admin"])
        m.locals["functions"]["reconciler"] = entry

    problems = problems_after(extra_entry)
    assert "local.functions has reconciler, unknown to config.FUNCTION_ENV" in problems
    assert any("entry point reconciler unknown" in p for p in problems), problems

    def no_for_each(m: Terraform) -> None:
        del m.resources[(FUNCTION_TYPE, "function")]["for_each"]

    problems = problems_after(no_for_each)
    assert problems[0] == "function does not iterate over local.enabled_functions: None"
    assert "has no for_each" in problems[-1]

    def for_each_over_names(m: Terraform) -> None:
        m.resources[(FUNCTION_TYPE, "function")]["for_each"] = ref("local.function_names")

    problems = problems_after(for_each_over_names)
    assert problems[0].startswith("function does not iterate over local.enabled_functions")
    assert "each.value.description: the entry has no 'description'" in problems[-1]

    def filter_by_something_else(m: Terraform) -> None:
        m.locals["enabled_functions"] = (
            "${{for name, function in local.functions : name => function if function.public}}"
        )

    problems = problems_after(filter_by_something_else)
    assert problems[0] == "local.enabled_functions is not local.functions filtered by .enabled"
    assert "is not a literal map in a locals block" in problems[-1]

    def entry_without_enabled(m: Terraform) -> None:
        del m.locals["functions"]["admin"]["enabled"]

    assert problems_after(entry_without_enabled) == [
        "local.functions.admin does not say whether it is enabled"
    ]

    def three_resources_again(m: Terraform) -> None:
        for address, rendered in instances(m, FUNCTION_TYPE, "function").items():
            m.resources[(FUNCTION_TYPE, address.split('"')[1])] = rendered
        del m.resources[(FUNCTION_TYPE, "function")]

    problems = problems_after(three_resources_again)
    assert problems[0].startswith(f"expected one {FUNCTION_TYPE} resource")


def test_env_helper_flags_missing_and_unknown_names() -> None:
    expected = config.env_vars_for("admin")
    good = dict.fromkeys(expected, "x")
    assert env_mismatch(good, expected) == []
    missing = copy.deepcopy(good)
    del missing[expected[-1]]
    assert env_mismatch(missing, expected) == [f"missing {expected[-1]}"]
    extra = {**good, "ADMIN_SECRET": "x"}
    assert env_mismatch(extra, expected) == ["unknown ADMIN_SECRET"]
    assert env_mismatch("${local.whatever}", expected)


# --------------------------------------------------------------------------------------------------
# IAM
# --------------------------------------------------------------------------------------------------

IAM_SUFFIXES = ("_iam_member", "_iam_binding", "_iam_policy")


def test_function_service_accounts_hold_only_allowed_roles(tf: Terraform) -> None:
    roles = set(re.findall(r'"(roles/[^"]+)"', tf.locals["function_roles"]))
    assert roles == ALLOWED_FUNCTION_ROLES
    grant = tf.resources[("google_project_iam_member", "function_datastore_user")]
    assert grant["for_each"] == ref("local.function_account_roles")
    assert "local.function_roles" in tf.locals["function_account_roles"]
    assert grant["member"] == ref("google_service_account.function[each.value.function].member")
    # Beside it: read access to the one Apple key secret (for the functions that mount it, below)
    # and publishing access-change events, on the events topic alone.
    allowed = {
        ("google_project_iam_member", "function_datastore_user"),
        ("google_secret_manager_secret_iam_member", "apple_api_key_accessor"),
        ("google_pubsub_topic_iam_member", "events_publisher"),
        # The admin function may invoke the reconciler (POST /reconciliation:run), nothing else.
        ("google_cloud_run_service_iam_member", "reconcile_admin_invoker"),
        # Tenants' Apple keys: encrypt and decrypt with the one KMS key (tenant_keys.tf).
        ("google_kms_crypto_key_iam_member", "tenant_keys_encrypter"),
        ("google_kms_crypto_key_iam_member", "tenant_keys_decrypter"),
        # The functions that call the Play Developer API impersonate its one account (Token
        # Creator on that account alone), so creators invite one account (play_api_account.tf).
        ("google_service_account_iam_member", "play_api_token_creator"),
        # The reconciler and its worker publish work messages, on the work topic alone.
        ("google_pubsub_topic_iam_member", "reconcile_work_publisher"),
        # The admin function and the console read the insight dataset (GET /insight): data viewer
        # on that dataset, and job user on the project (a query is a job; insight.tf).
        ("google_bigquery_dataset_iam_member", "insight_reader"),
        ("google_project_iam_member", "insight_job_user"),
    }
    for (rtype, name), body in tf.resources.items():
        if not rtype.endswith(IAM_SUFFIXES):
            continue
        text = json.dumps(body)
        if "google_service_account.function" in text:
            assert (rtype, name) in allowed, (
                f"{rtype}.{name} grants something more to a function service account"
            )
    work = tf.resources[("google_pubsub_topic_iam_member", "reconcile_work_publisher")]
    assert work["for_each"] == ref('toset(["reconcile", "reconcile_worker"])')
    assert work["role"] == "roles/pubsub.publisher"
    assert work["topic"] == ref("google_pubsub_topic.reconcile_work.name")
    publisher = tf.resources[("google_pubsub_topic_iam_member", "events_publisher")]
    assert publisher["role"] == "roles/pubsub.publisher"
    assert publisher["topic"] == ref("google_pubsub_topic.events.name")
    assert publisher["member"] == ref("google_service_account.function[each.key].member")
    for name, body in tf.of_type("google_project_iam_member").items():
        assert name in ("function_datastore_user", "insight_job_user"), (
            f"unexpected project-level grant {name}: {body}"
        )
    job_user = tf.resources[("google_project_iam_member", "insight_job_user")]
    assert job_user["role"] == "roles/bigquery.jobUser"
    assert job_user["for_each"] == ref("local.insight_readers")


def test_apple_key_secret_is_read_only_by_the_functions_that_mount_it(tf: Terraform) -> None:
    """The secret has no version in Terraform (its value never reaches state), and only the
    functions whose code reads APPLE_API_PRIVATE_KEY may access it, on that secret alone."""
    assert not tf.of_type("google_secret_manager_secret_version"), "a secret value in state"
    secret = tf.resources[("google_secret_manager_secret", "apple_api_key")]
    assert secret["secret_id"] == "${var.name_prefix}-apple-api-key"
    grant = tf.resources[("google_secret_manager_secret_iam_member", "apple_api_key_accessor")]
    assert grant["role"] == "roles/secretmanager.secretAccessor"
    assert grant["secret_id"] == ref("google_secret_manager_secret.apple_api_key.secret_id")
    assert grant["member"] == ref("google_service_account.function[each.key].member")
    assert grant["for_each"] == ref("local.apple_api_key_readers")
    readers_expr = tf.locals["apple_api_key_readers"]
    assert "local.functions" in readers_expr and "APPLE_API_PRIVATE_KEY" in readers_expr
    assert "function.enabled &&" in readers_expr, "no grant for a function that is not deployed"
    mounting = {
        key
        for key, entry in tf.locals["functions"].items()
        if "APPLE_API_PRIVATE_KEY" in entry.get("secret_env", {})
    }
    reading = {k for k, names in config.FUNCTION_ENV.items() if "APPLE_API_PRIVATE_KEY" in names}
    assert mounting == reading == {"admin", "admin_console", "reconcile", "reconcile_worker"}
    for entry in tf.locals["functions"].values():
        for value in entry.get("secret_env", {}).values():
            assert value == ref("google_secret_manager_secret.apple_api_key.secret_id")
    # Mounted only once the key is configured (a first apply needs no secret version).
    function = tf.resources[(FUNCTION_TYPE, "function")]
    dynamic = block(function, "service_config")["dynamic"][0][SECRET_BLOCK]
    assert dynamic["for_each"] == ref('var.apple_api_key_id == "" ? {} : each.value.secret_env')
    content = dynamic["content"][0]
    assert content["key"] == ref(f"{SECRET_BLOCK}.key")
    assert content["secret"] == ref(f"{SECRET_BLOCK}.value")
    assert content["version"] == "latest"


def test_play_publisher_grant_on_the_rtdn_topic(tf: Terraform) -> None:
    grants = [
        b
        for b in tf.of_type("google_pubsub_topic_iam_member").values()
        if b["member"] == PLAY_PUBLISHER
    ]
    assert len(grants) == 1
    assert grants[0]["role"] == "roles/pubsub.publisher"
    assert grants[0]["topic"] == ref("google_pubsub_topic.rtdn.name")


def run_invokers(tf: Terraform, function: str) -> list[dict[str, Any]]:
    """Cloud Run invoker grants (v1 or v2 IAM resources) on the given function's service, each
    for_each over a local map expanded (the Cloud Scheduler calls' grants)."""
    target = f"google_cloudfunctions2_function.{function}."
    grants = [
        *bodies(tf, "google_cloud_run_service_iam_member").values(),
        *bodies(tf, "google_cloud_run_v2_service_iam_member").values(),
    ]
    return [
        body
        for body in grants
        if target in str(body.get("service", body.get("name", "")))
        and body["role"] == "roles/run.invoker"
    ]


def test_only_the_push_identity_may_invoke_the_play_function(tf: Terraform) -> None:
    play = function_name_for(tf, "play_notifications")
    invokers = run_invokers(tf, play)
    assert [b["member"] for b in invokers] == [ref("google_service_account.play_push.member")]
    for rtype in (
        "google_cloudfunctions2_function_iam_member",
        "google_cloudfunctions2_function_iam_binding",
    ):
        assert not tf.of_type(rtype), "gen2 invocation is Cloud Run IAM; keep it in one place"


def test_admin_invokers_are_the_admins_accounts_and_admin_members(tf: Terraform) -> None:
    admin = function_name_for(tf, "admin")
    invokers = run_invokers(tf, admin)
    assert len(invokers) == 1
    assert invokers[0]["for_each"] == ref("toset(local.admin_invokers)")
    assert invokers[0]["member"] == ref("each.value")
    members = tf.locals["admin_invokers"]
    assert "google_service_account.admin[email].email" in members and "var.admin_members" in members
    allowed = tf.locals["admin_allow_list"]
    assert "google_service_account.admin[email].email" in allowed and "var.admin_emails" in allowed
    condition = block(tf.variables["admin_members"], "validation")["condition"]
    pattern = re.search(r'regex\("(.+?)", m\)', condition)
    assert pattern, condition
    regex = pattern.group(1).replace("\\\\", "\\")
    assert re.match(regex, "user:alice@example.com")
    assert re.match(regex, "group:support@example.com")
    for bad in PUBLIC_MEMBERS:
        assert not re.match(regex, bad)


def test_each_admin_has_an_account_only_they_may_impersonate(tf: Terraform) -> None:
    """The admin CLI's recommended path: a person impersonates their own service account, so
    every action in the history names one person's account, never a shared one."""
    account = tf.resources[("google_service_account", "admin")]
    assert account["for_each"] == ref("local.admin_account_ids")
    grant = tf.resources[("google_service_account_iam_member", "admin_impersonation")]
    assert grant["for_each"] == ref("local.admin_account_ids")
    assert grant["role"] == "roles/iam.serviceAccountTokenCreator"
    assert grant["member"] == "user:${each.key}"
    assert grant["service_account_id"] == ref("google_service_account.admin[each.key].name")
    ids = tf.locals["admin_account_ids"]
    assert "for email in var.admins" in ids and "sha256(lower(email))" in ids


def test_the_play_api_is_called_as_one_account_the_callers_impersonate(tf: Terraform) -> None:
    """One account for the Play Developer API (the one a creator invites): no project role, no
    key; Token Creator on it (resource-level) for exactly the functions whose code reads
    PLAY_API_SERVICE_ACCOUNT, each given its email; the API that mints its tokens is on."""
    account = tf.resources[("google_service_account", "play_api")]
    assert account["account_id"] == "${var.name_prefix}-play-api"
    assert not tf.of_type("google_service_account_key")
    for rtype, name in tf.resources:
        if rtype.endswith(IAM_SUFFIXES) and rtype.startswith(("google_project", "google_folder")):
            body = json.dumps(tf.resources[(rtype, name)])
            assert "google_service_account.play_api" not in body, f"project role: {name}"
    grants = [
        (name, body)
        for (rtype, name), body in tf.resources.items()
        if rtype.endswith(IAM_SUFFIXES) and "google_service_account.play_api" in json.dumps(body)
    ]
    assert [name for name, _ in grants] == ["play_api_token_creator"]
    grant = tf.resources[("google_service_account_iam_member", "play_api_token_creator")]
    assert grant["service_account_id"] == ref("google_service_account.play_api.name")
    assert grant["role"] == "roles/iam.serviceAccountTokenCreator"
    assert grant["member"] == ref("google_service_account.function[each.key].member")
    assert grant["for_each"] == ref("local.play_api_impersonators")
    impersonators = tf.locals["play_api_impersonators"]
    assert "local.play_api_callers" in impersonators
    assert "contains(keys(local.enabled_functions), name)" in impersonators
    readers = {k for k, names in config.FUNCTION_ENV.items() if "PLAY_API_SERVICE_ACCOUNT" in names}
    assert set(tf.locals["play_api_callers"]) == readers
    assert readers >= {"play_notifications", "admin", "admin_console", "reconcile"}
    for entry_point, (_, body) in functions_by_entry_point(tf).items():
        env = function_env(tf, body)
        expected = ref("google_service_account.play_api.email") if entry_point in readers else None
        assert env.get("PLAY_API_SERVICE_ACCOUNT") == expected, entry_point
    assert "iamcredentials.googleapis.com" in tf.resolve(tf.locals["required_apis"])


def test_public_access_only_on_the_apple_function_and_the_console(tf: Terraform) -> None:
    assert public_grants(tf) == [
        ("google_cloud_run_service_iam_member", "apple_public_invoker"),
        ("google_cloud_run_service_iam_member", "console_public_invoker"),
    ]
    grant = tf.resources[("google_cloud_run_service_iam_member", "apple_public_invoker")]
    assert grant["member"] == "allUsers"
    assert grant["role"] == "roles/run.invoker"
    apple = function_name_for(tf, "apple_notifications")
    assert grant["service"] == ref(
        f"google_cloudfunctions2_function.{apple}.service_config[0].service"
    )
    text = (INFRA / "iam.tf").read_text(encoding="utf-8")
    block_text = text[text.index('"apple_public_invoker"') :].split("\n}\n", 1)[0]
    assert "checkov:skip=CKV_GCP_102" in block_text
    assert "JWS" in block_text, "the skip must say why public is safe"


def test_the_console_is_public_only_when_deployed_and_says_why(tf: Terraform) -> None:
    grant = tf.resources[("google_cloud_run_service_iam_member", "console_public_invoker")]
    assert grant["member"] == "allUsers" and grant["role"] == "roles/run.invoker"
    console = function_name_for(tf, "admin_console")
    assert grant["service"] == ref(
        f"google_cloudfunctions2_function.{console}.service_config[0].service"
    )
    assert grant["count"] == ref("local.functions.admin_console.enabled ? 1 : 0")
    assert run_invokers(tf, console) == [grant], "the console's one invoker grant"
    text = (INFRA / "iam.tf").read_text(encoding="utf-8")
    block_text = text[text.index('"console_public_invoker"') :].split("\n}\n", 1)[0]
    assert "checkov:skip=CKV_GCP_102" in block_text
    assert "ID token" in block_text and "ADMIN_EMAILS" in block_text


def test_the_console_is_deployed_only_with_its_oauth_client_id(tf: Terraform) -> None:
    entry = tf.locals["functions"]["admin_console"]
    assert entry["enabled"] == ref('var.console_oauth_client_id != ""')
    assert all(
        e["enabled"] is True for k, e in tf.locals["functions"].items() if k != "admin_console"
    )
    variable = tf.variables["console_oauth_client_id"]
    assert variable["default"] == ""
    condition = block(variable, "validation")["condition"]
    pattern = re.search(r'regex\("(.+?)", var', condition)
    assert pattern, condition
    regex = pattern.group(1).replace("\\\\", "\\")
    assert re.match(regex, "1234567890-abc123def456.apps.googleusercontent.com")
    for bad in ("https://admin.example.run.app", "a.apps.googleusercontent.com.evil.test", "x y"):
        assert not re.match(regex, bad), bad
    output = tf.outputs["console_url"]["value"]
    assert "google_cloudfunctions2_function.function" in output
    assert 'if name == "admin_console"' in output and output.startswith("${one(")


def test_the_console_reads_its_client_id_and_the_admin_allow_list(tf: Terraform) -> None:
    functions = functions_by_entry_point(tf)
    env = block(functions["admin_console"][1], "service_config")["environment_variables"]
    admin = block(functions["admin"][1], "service_config")["environment_variables"]
    assert env["CONSOLE_OAUTH_CLIENT_ID"] == ref("var.console_oauth_client_id")
    assert tf.resolve(env["CONSOLE_GIS_CLIENT_URL"]) == "https://accounts.google.com/gsi/client"
    assert "ADMIN_AUDIENCES" not in env, "the console's one audience is its client id"
    for name in ("ADMIN_CERTS_URL", "PLAY_DEVELOPER_API", "APPLE_API_KEY_ID"):
        assert env[name] == admin[name], name
    # People sign in to the console as themselves; to the admin function (the CLI) through their
    # own admin service accounts.
    assert env["ADMIN_EMAILS"] == ref('join(",", local.console_allow_list)')
    assert "var.admins" in tf.locals["console_allow_list"]
    assert "var.admin_emails" in tf.locals["console_allow_list"]
    assert block(functions["admin_console"][1], "service_config")["ingress_settings"] == (
        "ALLOW_ALL"
    )


def test_public_grant_scan_catches_a_new_public_member(tf: Terraform) -> None:
    mutated = copy.deepcopy(tf)
    key = ("google_cloud_run_service_iam_member", "admin_invoker")
    mutated.resources[key]["member"] = "allAuthenticatedUsers"
    assert key in public_grants(mutated)


# --------------------------------------------------------------------------------------------------
# Apple root, Firestore, APIs, versions, outputs
# --------------------------------------------------------------------------------------------------


def test_apple_root_is_downloaded_and_its_sha256_pinned(tf: Terraform) -> None:
    assert tf.locals["apple_root_ca_g3_sha256"] == APPLE_ROOT_G3_SHA256
    assert "apple_root_ca_g3_sha256" not in tf.variables, "the pin must not be overridable"
    download = tf.data[("http", "apple_root_ca_g3")]
    assert tf.resolve(download["url"]) == APPLE_ROOT_URL
    hashed = tf.data[("external", "apple_root_ca_g3_sha256")]
    assert hashed["query"]["base64"] == ref("data.http.apple_root_ca_g3.response_body_base64")
    assert "scripts/sha256_of_base64.sh" in " ".join(hashed["program"])
    conditions = [p["condition"] for p in block(hashed, "lifecycle")["postcondition"]]
    assert ref("self.result.sha256 == local.apple_root_ca_g3_sha256") in conditions
    # What ships is built from the bytes that were hashed.
    assert (
        "data.external.apple_root_ca_g3_sha256.result.base64" in tf.locals["apple_root_ca_g3_pem"]
    )
    archive = tf.data[("archive_file", "function_source")]
    cert_sources = [
        s for s in archive["source"] if s["filename"] == ref("local.apple_root_ca_g3_path")
    ]
    assert [s["content"] for s in cert_sources] == [ref("local.apple_root_ca_g3_pem")]
    providers = tf.terraform[0]["required_providers"][0]
    assert providers["http"]["version"] in {"~> 3.4", ">= 3.4"}


def run_sha_script(query: dict[str, str]) -> subprocess.CompletedProcess[str]:
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no POSIX sh on this machine: cannot run infra/scripts/sha256_of_base64.sh")
    return subprocess.run(
        [sh, str(SHA_SCRIPT)],
        input=json.dumps(query),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.mark.parametrize("size", [1, 583, 4096])
def test_sha256_script_hashes_the_decoded_bytes(size: int) -> None:
    data = os.urandom(size)
    encoded = base64.b64encode(data).decode()
    result = run_sha_script({"base64": encoded})
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": str(size),
        "base64": encoded,
    }
    assert answer["sha256"] != hashlib.sha256(encoded.encode()).hexdigest()


def test_sha256_script_refuses_a_query_without_base64() -> None:
    result = run_sha_script({"body": "abc"})
    assert result.returncode != 0
    assert "base64" in result.stderr


def test_firestore_database_native_with_delete_protection(tf: Terraform) -> None:
    databases = tf.of_type("google_firestore_database")
    assert list(databases) == ["ledger"]
    db = databases["ledger"]
    assert db["type"] == "FIRESTORE_NATIVE"
    assert db["delete_protection_state"] == "DELETE_PROTECTION_ENABLED"
    assert db["location_id"] == ref("var.firestore_location")
    assert db["name"] == ref("var.firestore_database")


def test_required_apis_never_disabled_on_destroy(tf: Terraform) -> None:
    services = tf.of_type("google_project_service")
    assert services, "no google_project_service"
    for body in services.values():
        assert body["disable_on_destroy"] is False
    apis = set(re.findall(r'"([a-z]+\.googleapis\.com)"', tf.locals["required_apis"]))
    needed = {
        "cloudfunctions.googleapis.com",
        "run.googleapis.com",
        "cloudbuild.googleapis.com",
        "artifactregistry.googleapis.com",
        "firestore.googleapis.com",
        "pubsub.googleapis.com",
        "storage.googleapis.com",
        "iam.googleapis.com",
    }
    assert needed <= apis


def test_provider_pins(tf: Terraform) -> None:
    providers = tf.terraform[0]["required_providers"][0]
    assert providers["google"]["source"] == "hashicorp/google"
    assert re.fullmatch(r"~> 7\.\d+(\.\d+)?", providers["google"]["version"])
    assert "gcs" in tf.terraform[0]["backend"][0]


def test_outputs_for_the_store_consoles(tf: Terraform) -> None:
    apple = function_name_for(tf, "apple_notifications")
    admin = function_name_for(tf, "admin")
    assert tf.outputs["apple_notifications_url"]["value"] == ref(
        f"google_cloudfunctions2_function.{apple}.url"
    )
    assert tf.outputs["admin_url"]["value"] == ref(f"google_cloudfunctions2_function.{admin}.url")
    assert tf.outputs["play_rtdn_topic"]["value"] == ref("google_pubsub_topic.rtdn.id")
    invite = tf.outputs["play_console_service_accounts"]
    assert "View financial data" in invite["description"]
    assert "Manage orders and subscriptions" in invite["description"]
    assert invite["value"] == [ref("google_service_account.play_api.email")]  # one account
    assert tf.outputs["apple_api_key_secret"]["value"] == ref(
        "google_secret_manager_secret.apple_api_key.id"
    )


def test_every_variable_is_documented_and_required_ones_are_in_the_example(tf: Terraform) -> None:
    example = (INFRA / "terraform.tfvars.example").read_text(encoding="utf-8")
    set_in_example = set(re.findall(r"^([a-z_]+)\s*=", example, flags=re.MULTILINE))
    required = {name for name, body in tf.variables.items() if "default" not in body}
    assert required <= set_in_example, (
        f"missing from terraform.tfvars.example: {required - set_in_example}"
    )
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    undocumented = sorted(name for name in tf.variables if f"`{name}`" not in doc)
    assert undocumented == [], f"variables not explained in docs/deploy.md: {undocumented}"
    for name, body in tf.variables.items():
        assert body.get("description"), f"variable {name} has no description"


# --------------------------------------------------------------------------------------------------
# checkov and terraform fmt
# --------------------------------------------------------------------------------------------------


def checkov_bin() -> str | None:
    configured = os.environ.get("CHECKOV_BIN")
    if configured and Path(configured).is_file():
        return configured
    return shutil.which("checkov")


def test_checkov_reports_zero_failures() -> None:
    binary = checkov_bin()
    if binary is None:
        pytest.skip(
            "CHECKOV NOT FOUND: set CHECKOV_BIN (make test builds .venv-checkov from "
            ".ci/checkov-requirements.txt) or put checkov on PATH; infra/ was NOT security-scanned"
        )
    result = subprocess.run(
        [
            binary,
            "-d",
            "infra",
            "--skip-download",
            "--framework",
            "terraform",
            "-o",
            "json",
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.stdout.strip(), f"checkov printed nothing: {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    summary = [r.get("summary", {}) for r in reports]
    assert not failed, "\n".join(
        f"{c['check_id']} {c['resource']} {c.get('file_path')}: {c['check_name']}" for c in failed
    )
    assert sum(s.get("passed", 0) for s in summary) > 0, f"checkov checked nothing: {summary}"
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_checkov_skip_has_a_written_reason() -> None:
    skips = 0
    problems = []
    for path in sorted(INFRA.rglob("*.tf")):
        lines = path.read_text(encoding="utf-8").splitlines()
        skips += sum(1 for line in lines if SKIP_RE.search(line))
        problems += [f"{path.name} {p}" for p in skip_problems(lines)]
    assert problems == []
    assert skips > 0


def test_skip_reason_helper_rejects_bare_skips() -> None:
    assert skip_problems(["# checkov:skip=CKV_GCP_1"]) == [
        "line 1: CKV_GCP_1 has no written reason"
    ]
    assert skip_problems(["# checkov:skip=CKV_GCP_1: reason: ok"]) != []
    assert (
        skip_problems(
            ["# checkov:skip=CKV_GCP_1: reason: nothing secret, Google-managed keys suffice"]
        )
        == []
    )


def test_terraform_fmt_is_canonical() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip(
            "no terraform binary here: formatting not checked (the hcl2 checks above still ran)"
        )
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", "infra"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------------------------------
# cloudbuild.yaml
# --------------------------------------------------------------------------------------------------


def load_cloudbuild() -> dict[str, Any] | None:
    """cloudbuild.yaml parsed by PyYAML (here or in checkov's venv); None if neither has it."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        binary = checkov_bin()
        python = Path(binary).resolve().parent / "python" if binary else None
        if python is None or not python.exists():
            return None
        code = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"
        result = subprocess.run(
            [str(python), "-c", code, str(CLOUDBUILD)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)
    return yaml.safe_load(CLOUDBUILD.read_text(encoding="utf-8"))


def test_cloudbuild_steps_test_init_plan_apply() -> None:
    text = CLOUDBUILD.read_text(encoding="utf-8")
    ids = re.findall(r"^\s*-?\s*id:\s*['\"]?([\w-]+)", text, flags=re.MULTILINE)
    order = [i for i in ids if i in {"test", "init", "plan", "apply"}]
    assert order == ["test", "init", "plan", "apply"], ids
    parsed = load_cloudbuild()
    if parsed is None:
        # Structural fallback: the commands are there, in order.
        for needle in (
            "make test",
            "init",
            "-backend-config=bucket=${_TF_STATE_BUCKET}",
            "-out=",
            "apply",
        ):
            assert needle in text
        return
    steps = {s["id"]: s for s in parsed["steps"]}
    test_cmd = " ".join(steps["test"].get("args", []))
    assert "make test" in test_cmd and "pip" not in steps["test"].get("entrypoint", "")
    for step in ("init", "plan", "apply"):
        assert steps[step]["name"].startswith("hashicorp/terraform"), step
    init_args = steps["init"]["args"]
    assert "init" in init_args
    assert "-backend-config=bucket=${_TF_STATE_BUCKET}" in init_args
    plan_args = steps["plan"]["args"]
    out = next(a for a in plan_args if a.startswith("-out="))
    plan_file = out.removeprefix("-out=")
    apply_args = steps["apply"]["args"]
    assert "apply" in apply_args and apply_args[-1] == plan_file
    assert "_TF_STATE_BUCKET" in parsed.get("substitutions", {})
