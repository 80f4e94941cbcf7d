"""scripts/workflow_permissions.py: a called workflow's jobs ask for no more than their caller grants
(GitHub refuses the whole run otherwise, and actionlint does not notice)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.unit.scripts import ROOT, load_script

perms = load_script("workflow_permissions")

CALLED = """\
    on: workflow_call
    permissions: {}
    jobs:
      build:
        runs-on: ubuntu-24.04
        permissions:
          contents: read
        steps: [{run: "true"}]
      annotations:
        runs-on: ubuntu-24.04
        permissions:
          actions: read
          checks: read
        steps: [{run: "true"}]
"""


def repo(tmp_path: Path, caller: str, called: str = CALLED) -> Path:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    (workflows / "ci.yml").write_text(textwrap.dedent(called))
    (workflows / "release.yml").write_text(textwrap.dedent(caller))
    return workflows / "release.yml"


def caller_granting(permissions: str) -> str:
    return f"""\
    on: workflow_dispatch
    permissions: {{}}
    jobs:
      ci:
        uses: ./.github/workflows/ci.yml
        permissions: {permissions}
    """


def test_a_caller_granting_less_than_a_called_job_asks_for_is_named_with_both_sides(
    tmp_path: Path,
) -> None:
    findings = perms.check([repo(tmp_path, caller_granting("{contents: read}"))])
    assert [str(f) for f in findings] == [
        f"{tmp_path}/.github/workflows/ci.yml:9: job 'annotations' asks for "
        "{actions: read, checks: read}, but "
        f"{tmp_path}/.github/workflows/release.yml:4 (job 'ci') grants only "
        "{contents: read}; GitHub refuses the whole run"
    ]


@pytest.mark.parametrize(
    "granted",
    [
        "{contents: read, actions: read, checks: read}",
        "{contents: write, actions: write, checks: read, packages: write}",
        "read-all",
        "write-all",
    ],
)
def test_a_caller_granting_at_least_what_every_called_job_asks_for_passes(
    tmp_path: Path, granted: str
) -> None:
    assert perms.check([repo(tmp_path, caller_granting(granted))]) == []


@pytest.mark.parametrize(
    ("granted", "over"),
    [
        ("{}", "{actions: read, checks: read}"),
        ("{contents: read, actions: read, checks: none}", "{checks: read}"),
        ("{contents: none, actions: read, checks: read}", "{contents: read}"),
    ],
)
def test_empty_grants_and_none_levels_grant_nothing(
    tmp_path: Path, granted: str, over: str
) -> None:
    findings = perms.check([repo(tmp_path, caller_granting(granted))])
    assert any(f"asks for {over}" in str(f) for f in findings), findings


def test_a_write_asked_for_where_read_is_granted_is_refused(tmp_path: Path) -> None:
    called = CALLED.replace("contents: read", "contents: write")
    caller = caller_granting("{contents: read, actions: read, checks: read}")
    findings = perms.check([repo(tmp_path, caller, called)])
    assert len(findings) == 1
    assert "job 'build' asks for {contents: write}" in str(findings[0])


def test_read_all_in_a_called_job_exceeds_a_narrow_grant(tmp_path: Path) -> None:
    called = CALLED.replace("contents: read", "read-all").replace(
        "permissions:\n          read-all", "permissions: read-all"
    )
    findings = perms.check([repo(tmp_path, caller_granting("{contents: read}"), called)])
    assert any(
        "job 'build' asks for {actions: read, attestations: read" in str(f) for f in findings
    )


def test_a_called_job_without_permissions_takes_the_called_workflows(tmp_path: Path) -> None:
    called = """\
    on: workflow_call
    permissions:
      pull-requests: write
    jobs:
      comment:
        runs-on: ubuntu-24.04
        steps: [{run: "true"}]
    """
    findings = perms.check([repo(tmp_path, caller_granting("{pull-requests: read}"), called)])
    assert [f.message.split(",")[0] for f in findings] == [
        "workflow permissions ask for {pull-requests: write}",
        "job 'comment' asks for {pull-requests: write}",
    ]


def test_without_any_permissions_a_called_job_inherits_the_grant(tmp_path: Path) -> None:
    called = """\
    on: workflow_call
    jobs:
      build:
        runs-on: ubuntu-24.04
        steps: [{run: "true"}]
    """
    assert perms.check([repo(tmp_path, caller_granting("{contents: read}"), called)]) == []


def test_the_caller_workflows_permissions_apply_when_the_job_has_none(tmp_path: Path) -> None:
    caller = """\
    on: workflow_dispatch
    permissions:
      contents: read
    jobs:
      ci:
        uses: ./.github/workflows/ci.yml
    """
    findings = perms.check([repo(tmp_path, caller)])
    assert "grants only {contents: read}" in str(findings[0])


def test_a_call_with_no_permissions_anywhere_is_a_finding(tmp_path: Path) -> None:
    caller = """\
    on: workflow_dispatch
    jobs:
      ci:
        uses: ./.github/workflows/ci.yml
    """
    findings = perms.check([repo(tmp_path, caller)])
    assert len(findings) == 1
    assert "repository's default" in str(findings[0])


def test_nested_calls_narrow_the_grant_at_each_level(tmp_path: Path) -> None:
    middle = """\
    on: workflow_call
    jobs:
      inner:
        uses: ./.github/workflows/inner.yml
        permissions: {contents: read, checks: read}
    """
    caller = caller_granting("{contents: read}")
    path = repo(tmp_path, caller, middle)
    (path.parent / "inner.yml").write_text(textwrap.dedent(CALLED))
    messages = [str(f) for f in perms.check([path])]
    # The middle job asks for checks its caller never had; the inner jobs then have only contents.
    assert any("job 'inner' asks for {checks: read}" in m for m in messages)
    assert any("job 'annotations' asks for {actions: read, checks: read}" in m for m in messages)


def test_a_missing_called_workflow_is_a_finding(tmp_path: Path) -> None:
    caller = caller_granting("{contents: read}").replace("ci.yml", "gone.yml")
    findings = perms.check([repo(tmp_path, caller)])
    assert "does not exist" in str(findings[0])


def test_a_bad_level_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = repo(tmp_path, caller_granting("{contents: admin}"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "workflow_permissions.py"), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "'admin' is not none/read/write" in done.stderr


def test_the_repositorys_own_workflows_pass() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/workflow_permissions.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
