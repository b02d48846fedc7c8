"""The README stays true of the code: every test it cites exists, every setting a function reads
and every port `make run` uses is in it, and every file it names is in the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from refundguard import config
from refundguard_dev.stack import PORTS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_every_cited_test_exists() -> None:
    cited = re.findall(r"`(tests/(?:unit|integration|e2e)/test_\w+\.py)(?:::(\w+))?`", README)
    assert cited, "the README cites no test"
    assert not re.findall(r"`tests/test_\w+\.py", README), "a cited test without its layer"
    assert len(cited) >= 10
    for path, name in cited:
        assert (ROOT / path).is_file(), path
        if name:
            assert name in _tests_in(ROOT / path), f"{path}::{name}"


def test_every_setting_a_function_reads_is_documented() -> None:
    names = set(config.COMMON_ENV)
    for entry_point in config.FUNCTION_ENV:
        names.update(config.env_vars_for(entry_point))
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert missing == []


def test_every_make_run_port_is_documented() -> None:
    for variable, default in PORTS.values():
        assert f"`{variable}`" in README and f":{default}" in README, variable


def test_every_file_the_readme_names_exists() -> None:
    named = set(re.findall(r"\]\(((?:docs|examples|infra|scripts|cli|dev)/[^)#]+)\)", README))
    named |= set(
        re.findall(r"`((?:scripts|docs|examples|functions|cli|dev|infra|bench)/[\w./-]+)`", README)
    )
    assert named
    made_by_the_operator = {"infra/terraform.tfvars"}  # copied from terraform.tfvars.example
    missing = sorted(p for p in named - made_by_the_operator if not (ROOT / p.rstrip("/")).exists())
    assert missing == []
