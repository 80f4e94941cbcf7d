"""apply: false through the action as the runner runs it: another tool (here `kubectl apply`, as a
`helm upgrade` step would) applied the workloads; the action only judges and diagnoses them, with
the same verdicts, outputs and exit codes, and builds, pushes and applies nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.harness.runner import ActionRun, run_action

pytestmark = [pytest.mark.stack, pytest.mark.docker]


def applied_by_another_tool(stack: dict[str, str], namespace: str, behavior: str) -> None:
    annotations = f'        deploy.test/behavior: "{behavior}"\n' if behavior else ""
    manifest = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
        "  labels: {app.kubernetes.io/instance: shop}\nspec:\n  replicas: 2\n"
        "  selector:\n    matchLabels: {app: web}\n  template:\n"
        "    metadata:\n      labels: {app: web}\n"
        + (f"      annotations:\n{annotations}" if annotations else "")
        + "    spec:\n      containers:\n        - name: web\n"
        "          image: registry.example/shop/web:1\n"
    )
    subprocess.run(
        ["kubectl", "--kubeconfig", stack["KUBECONFIG"], "-n", namespace, "apply", "-f", "-"],
        input=manifest,
        text=True,
        check=True,
        capture_output=True,
    )


def watch(stack: dict[str, str], tmp_path: Path, namespace: str, **inputs: str) -> ActionRun:
    given = {
        "apply": "false",
        "digitalocean-token": stack["DIGITALOCEAN_ACCESS_TOKEN"],
        "cluster": stack["DJK_CLUSTER_NAME"],
        "namespace": namespace,
        "timeout": "2m",
        # kwok's pods are Ready the instant they start: a short settle window keeps the suite
        # fast (the quick start's e2e runs the default 10s).
        "settle": "2s",
        **inputs,
    }
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    return run_action(
        given, workspace, extra_env={"DIGITALOCEAN_API_URL": stack["DIGITALOCEAN_API_URL"]}
    )


def test_watch_only_is_green_for_what_another_tool_applied_and_changes_nothing(
    stack: dict[str, str], tmp_path: Path, namespace: str
) -> None:
    applied_by_another_tool(stack, namespace, "")
    result = watch(stack, tmp_path, namespace, **{"wait-for": "deployment/web"})
    assert result.exit_code == 0, result.log[-4000:]
    assert result.outputs["result"] == "succeeded"
    [web] = json.loads(result.outputs["deployments"])
    assert (web["name"], web["result"]) == ("web", "succeeded")
    assert "::group::Build" not in result.log and "applied deployment/web" not in result.log
    assert "this action built, pushed and applied nothing" in result.log


def test_watch_only_by_selector_is_red_fast_with_the_pod_and_why(
    stack: dict[str, str], tmp_path: Path, namespace: str
) -> None:
    applied_by_another_tool(stack, namespace, "crash-loop")
    result = watch(stack, tmp_path, namespace, selector="app.kubernetes.io/instance=shop")
    assert result.exit_code == 1, result.log[-4000:]
    assert result.outputs["result"] == "failed"
    assert "::group::Diagnosis: deployment/web" in result.log
    assert "container `web` is crash-looping" in result.log
