"""The preview on the pull request, end to end: the action's container, run as the runner runs
it on a pull_request event, dry-runs against the stack's cluster and posts its preview to the
GitHub stand-in (stack/github_api.py, a server process of its own on 127.0.0.1); a second run on
a new commit updates the same comment. Every request the action made is checked against
GitHub's published description (tests/spec/github-openapi), and the token is nowhere to be seen
but in the Authorization header the stand-in received."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import contract
from tests.e2e.support import stack_env, stack_inputs, web_deployment, workspace_with
from tests.harness.runner import REPO_ROOT, ActionRun, run_action

REPOSITORY = "team/shop"
NUMBER = 12


class GitHubStandIn:
    """stack/github_api.py as a server process; its control endpoints read back what it got."""

    def __init__(self, tmp_path: Path) -> None:
        self.token = "ghs_" + secrets.token_hex(18)
        token_file = tmp_path / "gh-token"
        token_file.write_text(self.token)
        token_file.chmod(0o600)
        port_file = tmp_path / "gh-port"
        self.log = (tmp_path / "gh.log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(REPO_ROOT / "stack" / "github_api.py"),
                "--port-file",
                str(port_file),
                "--token-file",
                str(token_file),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the GitHub stand-in did not start: {(tmp_path / 'gh.log').read_text()}"
                )
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{int(port_file.read_text())}"

    def control(self, method: str, path: str, body: object = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return json.loads(response.read())

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GitHubStandIn]:
    stand_in = GitHubStandIn(tmp_path)
    try:
        yield stand_in
    finally:
        stand_in.stop()


def preview(
    stack: dict[str, str],
    github: GitHubStandIn,
    workspace: Path,
    namespace: str,
    sha: str,
    *,
    head: str = REPOSITORY,
) -> ActionRun:
    event = {
        "action": "synchronize",
        "number": NUMBER,
        "pull_request": {
            "number": NUMBER,
            "head": {"sha": sha, "repo": {"full_name": head}},
            "base": {"repo": {"full_name": REPOSITORY}},
        },
    }
    return run_action(
        stack_inputs(
            stack,
            image=f"{stack['DJK_REGISTRY']}/djk-e2e/pr-preview",
            sha=sha,
            namespace=namespace,
            **{"dry-run": "true", "github-token": github.token},
        ),
        workspace,
        extra_env={
            **stack_env(stack, sha),
            "GITHUB_API_URL": github.url,
            "GITHUB_REPOSITORY": REPOSITORY,
        },
        stack=stack,
        event_name="pull_request",
        event=event,
    )


def assert_token_hidden(result: ActionRun, token: str) -> None:
    assert token not in result.visible_log
    assert all(token not in arg for arg in result.argv)
    assert token not in result.summary_file.read_text()
    assert token not in result.output_file.read_text()


def test_a_pull_request_preview_is_posted_once_then_updated_in_place(
    stack: dict[str, str], namespace: str, tmp_path: Path, github: GitHubStandIn
) -> None:
    workspace = workspace_with(tmp_path, web_deployment(), "FROM scratch\n")
    first_sha, second_sha = secrets.token_hex(20), secrets.token_hex(20)

    first = preview(stack, github, workspace, namespace, first_sha)
    assert first.exit_code == 0, first.visible_log[-4000:]
    comments = github.control("GET", "/_fake/comments")
    assert len(comments) == 1, comments
    body = comments[0]["body"]
    marker = f"<!-- django-k8s-deploy preview: {stack['DJK_CLUSTER_NAME']}/{namespace} -->"
    assert body.startswith(marker + "\n")
    assert f"deployment/web in {namespace}: would be created" in body
    assert first_sha in body
    assert f"posted the preview on pull request #{NUMBER}" in first.visible_log
    assert_token_hidden(first, github.token)

    second = preview(stack, github, workspace, namespace, second_sha)
    assert second.exit_code == 0, second.visible_log[-4000:]
    comments = github.control("GET", "/_fake/comments")
    assert len(comments) == 1, comments  # the same comment, updated
    assert second_sha in comments[0]["body"] and first_sha not in comments[0]["body"]
    assert f"updated the preview on pull request #{NUMBER}" in second.visible_log
    assert_token_hidden(second, github.token)

    requests = github.control("GET", "/_fake/requests")
    assert [(r["method"], r["status"], r["auth"]) for r in requests] == [
        ("GET", 200, "ok"),
        ("POST", 201, "ok"),
        ("GET", 200, "ok"),
        ("PATCH", 200, "ok"),
    ]
    for entry in requests:
        contract.check_github_exchange(entry)


def test_a_fork_pull_request_gets_a_notice_and_exit_0(
    stack: dict[str, str], namespace: str, tmp_path: Path, github: GitHubStandIn
) -> None:
    github.control("POST", "/_fake/faults", {"read_only": True})
    workspace = workspace_with(tmp_path, web_deployment(), "FROM scratch\n")
    result = preview(
        stack, github, workspace, namespace, secrets.token_hex(20), head="someone/shop"
    )
    assert result.exit_code == 0, result.visible_log[-4000:]
    notices = [line for line in result.log.splitlines() if line.startswith("::notice")]
    assert any("Preview not posted" in n and "comes from a fork" in n for n in notices), notices
    assert github.control("GET", "/_fake/comments") == []
    requests = github.control("GET", "/_fake/requests")
    assert [(r["method"], r["status"]) for r in requests] == [("GET", 200), ("POST", 403)]
    for entry in requests:
        contract.check_github_exchange(entry)
