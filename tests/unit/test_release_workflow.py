"""release.yml's shape, where a later edit could quietly undo a fix of issue 22: the order of the
jobs (nothing is published or moved before the tag has been run), who may write, the guard, the
environment, and the scripts it calls."""

from __future__ import annotations

from typing import Any

import yaml

from tests.unit.scripts import ROOT

WORKFLOW: dict[str, Any] = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
JOBS: dict[str, Any] = WORKFLOW["jobs"]
APP_TOKEN = "actions/create-github-app-token@1b10c78c7865c340bc4f6099eb2f838309f1e8c3"


def needs(job: str) -> set[str]:
    """Every job `job` waits for, directly or not."""
    direct = JOBS[job].get("needs", [])
    direct = [direct] if isinstance(direct, str) else direct
    return set(direct).union(*(needs(n) for n in direct))


def runs(job: str) -> str:
    return "\n".join(step.get("run", "") for step in JOBS[job].get("steps", []))


def test_the_release_is_published_and_the_major_moved_only_after_the_tag_ran_as_users_run_it() -> (
    None
):
    assert {"plan", "ci", "image", "tag", "verify"} <= needs("publish")
    assert {"plan", "ci", "image", "tag"} <= needs("verify")
    assert "release.py major" in runs("publish")
    assert "gh release create" in runs("publish")
    for job in JOBS:
        if job != "publish":
            assert "release.py major" not in runs(job)
            assert "gh release" not in runs(job)


def test_the_first_step_fails_unless_the_run_is_on_main() -> None:
    guard = JOBS["plan"]["steps"][0]
    assert guard["if"] == "github.ref != 'refs/heads/main'"
    assert "exit 2" in guard["run"]
    assert "if" not in JOBS["plan"]  # a skipped job would leave the run green


def test_only_the_jobs_in_the_release_environment_write_and_only_with_the_app_token() -> None:
    assert WORKFLOW["permissions"] == {}
    for name, job in JOBS.items():
        granted = job.get("permissions", {})
        assert granted.get("contents") in (None, "read"), name  # no GITHUB_TOKEN writes to git
        tokens = [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(APP_TOKEN)]
        if name in ("tag", "publish"):
            assert job["environment"] == "release"
            assert len(tokens) == 1
            assert tokens[0]["with"]["permission-contents"] == "write"
            assert tokens[0]["with"]["permission-workflows"] == "write"
            assert "github.token" not in str(job)
        else:
            assert "environment" not in job, name
            assert tokens == [], name
    assert JOBS["image"]["permissions"] == {"contents": "read", "packages": "write"}


def test_the_verify_job_checks_out_the_tag_runs_both_platforms_and_uses_the_checkout() -> None:
    verify = JOBS["verify"]
    checkout = verify["steps"][0]
    assert checkout["with"]["ref"] == "refs/tags/${{ needs.plan.outputs.version }}"
    assert "--platform" in runs("verify")
    assert "linux/arm64 linux/amd64" in runs("verify")
    assert any(step.get("uses") == "./" for step in verify["steps"])
    assert "setup-qemu-action" in str(verify["steps"])


def test_the_version_logic_is_the_script_not_inline_shell() -> None:
    assert "release.py plan" in runs("plan")
    assert "release.py commit" in runs("tag")
    assert "=~" not in runs("plan")  # the old inline version check
    assert "git/refs" not in "".join(runs(job) for job in JOBS)  # tag writes go through the script
