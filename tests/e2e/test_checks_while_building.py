"""Cluster checks while the image builds, through the action on the real stack: a manifest the
API server refuses (found by a server-side dry run with the reference about to be pushed) fails
the job while a long build is still running; the build is stopped, nothing is pushed or applied,
and the log shows the checks' groups, not a half build."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest
import requests

from tests.e2e.support import stack_env, stack_inputs, web_deployment, workspace_with
from tests.harness.runner import run_action

pytestmark = [pytest.mark.stack, pytest.mark.docker]

# Valid YAML, a Deployment our preflight accepts, but the API server refuses: a negative
# replica count fails validation (422), which only the server knows to check.
REFUSED = web_deployment(replicas=-3)


def test_a_manifest_the_api_server_refuses_stops_the_build_before_it_ends(
    stack: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    marker = secrets.token_hex(6)
    # A build that would take two minutes: the job must end long before it.
    workspace = workspace_with(
        tmp_path, REFUSED, f"FROM {stack['DJK_BASE_IMAGE']}\nRUN echo {marker} && sleep 120\n"
    )
    sha = secrets.token_hex(20)
    repo = f"{stack['DJK_REGISTRY']}/djk-e2e/refused"
    result = run_action(
        stack_inputs(stack, image=repo, sha=sha, namespace=namespace, **{"build-cache": "false"}),
        workspace,
        extra_env=stack_env(stack, sha),
        timeout=100,  # the harness fails the test if the action is still running by then
    )
    assert result.exit_code == 2, result.visible_log[-3000:]
    errors = [line for line in result.log.splitlines() if line.startswith("::error")]
    assert len(errors) == 1 and "replicas" in errors[0], errors
    groups = result.groups()
    assert any(g.startswith("Dry run") for g in groups), groups
    assert not any(g.startswith("Build") for g in groups), groups
    assert "the image build started alongside was stopped" in result.log
    assert "State: nothing was applied to the cluster" in result.log
    # Nothing pushed, nothing applied.
    answer = requests.head(
        f"http://{stack['DJK_REGISTRY']}/v2/djk-e2e/refused/manifests/{sha}",
        auth=(stack["DJK_REGISTRY_USER"], stack["DJK_REGISTRY_PASSWORD"]),
        timeout=30,
    )
    assert answer.status_code == 404
    applied = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            stack["KUBECONFIG"],
            "-n",
            namespace,
            "get",
            "all",
            "-o",
            "name",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert applied.stdout == ""
    # The build's RUN step is not left running on the daemon.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert not [line for line in ps.stdout.splitlines() if marker in line and "sleep" in line]


def test_cancel_during_the_build_stops_the_build_and_the_checks_within_seconds(
    stack: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    marker = secrets.token_hex(6)
    workspace = workspace_with(
        tmp_path,
        web_deployment(),
        f"FROM {stack['DJK_BASE_IMAGE']}\nRUN echo {marker} && sleep 120\n",
    )
    sha = secrets.token_hex(20)
    image = f"{stack['DJK_REGISTRY']}/djk-e2e/cancelled"
    result = run_action(
        stack_inputs(stack, image=image, sha=sha, namespace=namespace, **{"build-cache": "false"}),
        workspace,
        extra_env=stack_env(stack, sha),
        cancel_after=6,
    )
    assert result.cancelled
    # Exit 1 and our own closing line: the action handled SIGINT itself and ended before the
    # runner's SIGTERM (7.5 s later) or kill (a killed CLI would not exit 1).
    assert result.exit_code == 1, result.visible_log[-3000:]
    assert "State: nothing was applied to the cluster (stopped during the build)." in result.log
    # The checks (done by then) are in the log, then the build's lines up to the cancel.
    groups = result.groups()
    assert groups.index("Credentials: cluster access") < next(
        i for i, g in enumerate(groups) if g.startswith("Build")
    )
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert not [line for line in ps.stdout.splitlines() if marker in line and "sleep" in line]
