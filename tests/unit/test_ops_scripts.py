"""The operator's scripts, without ever reaching Google Cloud: ``scripts/bootstrap.py`` prints its
gcloud commands and runs none unless told to (a stand-in ``gcloud`` on PATH records what would
have run), and ``scripts/smoke_check.py`` prints help and refuses to guess where to check (it is
run against ``make run``'s stack in tests/e2e/test_run_local.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _fake_gcloud(tmp_path: Path, *, bucket_exists: bool) -> dict[str, str]:
    """A ``gcloud`` that only appends its arguments to a file (describe: exists or not)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "gcloud.log"
    script = bin_dir / "gcloud"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        f'case "$*" in *"buckets describe"*) exit {0 if bucket_exists else 1};; esac\n'
        "exit 0\n"
    )
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def _run(script: str, *argv: str, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, f"scripts/{script}", *argv],
        cwd=ROOT,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("script", ["bootstrap.py", "smoke_check.py", "run_local.py"])
def test_each_operator_script_prints_help(script: str) -> None:
    done = _run(script, "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: scripts/"), done.stderr


def test_bootstrap_dry_run_prints_every_command_and_runs_none(tmp_path: Path) -> None:
    env = _fake_gcloud(tmp_path, bucket_exists=False)
    done = _run("bootstrap.py", "--project", "my-project-1", env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Dry run" in out
    assert "gcloud services enable serviceusage.googleapis.com" in out
    assert "gcloud beta services identity create --service=pubsub.googleapis.com" in out
    assert "gcloud storage buckets create gs://my-project-1-tfstate" in out
    assert "--public-access-prevention" in out and "--versioning" in out
    assert "terraform init -backend-config=bucket=my-project-1-tfstate" in out
    assert not (tmp_path / "gcloud.log").exists()


@pytest.mark.parametrize("exists", [False, True])
def test_bootstrap_apply_runs_the_commands_in_order_and_keeps_an_existing_bucket(
    tmp_path: Path, exists: bool
) -> None:
    env = _fake_gcloud(tmp_path, bucket_exists=exists)
    done = _run("bootstrap.py", "--project", "my-project-1", "--apply", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    ran = (tmp_path / "gcloud.log").read_text().splitlines()
    verbs = [" ".join(line.split()[:3]) for line in ran]
    expected = ["services enable serviceusage.googleapis.com", "beta services identity"]
    expected += ["storage buckets describe"]
    expected += [] if exists else ["storage buckets create"]
    expected += ["storage buckets update"]
    assert verbs == expected
    assert ("the bucket exists: kept" in done.stdout) is exists


def test_bootstrap_apply_asks_and_a_no_runs_nothing_more(tmp_path: Path) -> None:
    env = _fake_gcloud(tmp_path, bucket_exists=False)
    done = subprocess.run(
        [sys.executable, "scripts/bootstrap.py", "--project", "my-project-1", "--apply"],
        cwd=ROOT,
        env=env,
        input="n\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "stopped" in done.stderr
    assert not (tmp_path / "gcloud.log").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--project", "X"],
        ["--project", "my-project-1", "--bucket", "gs://no"],
        ["--project", "my-project-1; rm -rf /"],
        ["--project", "my-project-1", "--region", "us central"],
    ],
)
def test_bootstrap_refuses_bad_names_before_running_anything(
    tmp_path: Path, argv: list[str]
) -> None:
    env = _fake_gcloud(tmp_path, bucket_exists=False)
    done = _run("bootstrap.py", *argv, "--apply", "--yes", env=env)
    assert done.returncode == 2 and "must be" in done.stderr
    assert not (tmp_path / "gcloud.log").exists()


def test_smoke_check_needs_to_be_told_where() -> None:
    done = _run("smoke_check.py")
    assert done.returncode == 2 and "give the URLs to check" in done.stderr


def test_the_tfvars_example_names_admins_and_the_docs_say_what_each_admin_list_is_for() -> None:
    """The CLI's token path depends on ``admins``: the example sets it; deploy.md calls none of
    the three lists required (each defaults to []) and says what happens when each is empty."""
    import re

    example = (ROOT / "infra" / "terraform.tfvars.example").read_text()
    assert re.search(r"^admins\s*=\s*\[\"", example, flags=re.MULTILINE)
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for name in ("admins", "admin_members", "admin_emails"):
        row = next(line for line in deploy.splitlines() if line.startswith(f"| `{name}`"))
        assert "Empty:" in row, name
        assert f"**`{name}`**" not in deploy, f"{name} is not required (default [])"
    assert "Only the admin function uses it" not in deploy
    assert "The only manual steps are in" not in deploy


def test_make_help_and_the_readme_document_every_target_and_pytest_args() -> None:
    import re
    import shutil

    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z]+):", makefile, flags=re.MULTILINE)) - {"help"}
    readme = (ROOT / "README.md").read_text()
    for target in targets:
        assert f"make {target}" in readme, target
    assert "PYTEST_ARGS" in readme and "PORT_BASE" in readme
    if shutil.which("make") is None:
        return
    shown = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    for target in targets:
        assert f"make {target}" in shown, target
    assert "PYTEST_ARGS" in shown and "PORT_BASE" in shown
