"""The release, rehearsed without GitHub (scripts/release_rehearsal.py): release.yml's own scripts
against the stack's registry and a throwaway bare repository make the pinned action.yml, the
vX.Y.Z and v1 tags and the notes; then the action is run from `v1` as the runner runs
`uses: org/django-k8s-deploy@v1` — the tag's action.yml, its docker:// image pulled in "Set up
job" — and deploys."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.support import stack_env, stack_inputs, web_deployment, workspace_with
from tests.harness.runner import REPO_ROOT, run_action

pytestmark = [pytest.mark.stack, pytest.mark.docker]


def git(git_dir: str, *args: str) -> str:
    done = subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def unreleased_section(changelog: str) -> str:
    start = changelog.index("## [Unreleased]\n") + len("## [Unreleased]\n")
    following = re.search(r"^## ", changelog[start:], re.M)
    return changelog[start : start + following.start() if following else None].strip("\n") + "\n"


def test_the_rehearsed_release_tags_pins_and_notes_and_v1_deploys_as_the_runner_runs_it(
    stack: dict[str, str], namespace: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    env = {**os.environ, **stack}
    env.pop("GITHUB_OUTPUT", None)
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "release_rehearsal.py"),
            "--version=v1.0.0",
            f"--dir={tmp_path / 'rehearsal'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = dict(line.split("=", 1) for line in done.stdout.splitlines())
    git_dir, commit, reference = out["git_dir"], out["commit"], out["reference"]

    # The tags: v1.0.0 and v1 at the release commit, whose only parent is the commit released.
    tags = git(git_dir, "for-each-ref", "refs/tags", "--format=%(refname:strip=2) %(objectname)")
    assert sorted(tags.splitlines()) == [f"v1 {commit}", f"v1.0.0 {commit}"]
    assert git(git_dir, "log", "-1", "--format=%P", commit) == out["source"]
    assert git(git_dir, "diff", "--name-only", out["source"], commit).split() == [
        "CHANGELOG.md",
        "action.yml",
    ]
    assert re.fullmatch(
        rf"{re.escape(stack['DJK_REGISTRY'])}/djk/release-rehearsal@sha256:[0-9a-f]{{64}}",
        reference,
    )
    # The notes are what main's CHANGELOG had under Unreleased; the tag's CHANGELOG has the heading.
    main_changelog = git(git_dir, "show", f"{out['source']}:CHANGELOG.md") + "\n"
    assert Path(out["notes"]).read_text() == unreleased_section(main_changelog)
    assert re.search(
        r"^## \[v1\.0\.0\] - \d{4}-\d{2}-\d{2}$",
        git(git_dir, "show", f"{commit}:CHANGELOG.md"),
        re.M,
    )

    # `uses: …@v1`: the runner fetches the repository at v1 and runs that action.yml.
    action = tmp_path / "action-at-v1"
    subprocess.run(
        ["git", "clone", "--quiet", "--depth=1", "--branch=v1", f"file://{git_dir}", str(action)],
        check=True,
    )
    assert f"  image: 'docker://{reference}'" in (action / "action.yml").read_text().splitlines()
    workspace = workspace_with(tmp_path, web_deployment(), f"FROM {stack['DJK_BASE_IMAGE']}\n")
    sha = secrets.token_hex(20)
    result = run_action(
        stack_inputs(
            stack, image=f"{stack['DJK_REGISTRY']}/djk-e2e/rehearsed", sha=sha, namespace=namespace
        ),
        workspace,
        extra_env=stack_env(stack, sha),
        action_dir=action,
    )
    assert result.exit_code == 0, result.visible_log[-3000:]
    assert result.outputs["result"] == "succeeded"
    # Set up job pulled the pinned image (no build of the Dockerfile), and that image ran.
    assert f"[harness] pulled {reference}" in capfd.readouterr().err
    assert result.image == reference
    assert reference in result.argv
