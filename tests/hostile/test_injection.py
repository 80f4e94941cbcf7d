"""Class 1: workflow-command injection through echoed text. Every payload in PAYLOADS, in every
place a user's file or input can put text that we might echo, run through the action's entry point."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hostile.support import (
    DEPLOYMENT,
    PAYLOADS,
    action_env,
    check,
    run_action,
    run_cli,
    workspace,
    yaml_string,
)

MANIFEST = "deploy/deployment.yaml"

# Where a manifest can carry text: the manifest with the payload (a YAML string) in that place.
MANIFEST_FIELDS: dict[str, Callable[[str], str]] = {
    "metadata.name": lambda y: DEPLOYMENT.replace("  name: web\n", f"  name: {y}\n", 1),
    "container name": lambda y: DEPLOYMENT.replace("- name: app", f"- name: {y}"),
    "namespace": lambda y: DEPLOYMENT.replace(
        "  name: web\n", f"  name: web\n  namespace: {y}\n", 1
    ),
    "kind": lambda y: DEPLOYMENT.replace("kind: Deployment", f"kind: {y}"),
    "apiVersion": lambda y: DEPLOYMENT.replace("apiVersion: apps/v1", f"apiVersion: {y}"),
    "env name": lambda y: DEPLOYMENT.replace(
        "image: <IMAGE>\n",
        f"image: <IMAGE>\n          env:\n            - {{name: {y}, value: v}}\n",
    ),
    "volume name": lambda y: (
        DEPLOYMENT + f"      volumes:\n        - {{name: {y}, emptyDir: {{}}}}\n"
    ),
    "reference name": lambda y: DEPLOYMENT.replace(
        "secretRef: {name: app-secrets}", f"configMapRef: {{name: {y}}}"
    ),
    "sidecar image": lambda y: DEPLOYMENT + f"        - {{name: side, image: {y}}}\n",
    "duplicate key": lambda y: DEPLOYMENT.replace(
        "    metadata: {labels: {app: web}}", f"    metadata: {{labels: {{{y}: a, {y}: b}}}}"
    ),
    "scalar document": lambda y: DEPLOYMENT + f"---\n{y}\n",
    "longer image": lambda y: DEPLOYMENT.replace(
        "image: <IMAGE>", f"image: {yaml_string('<IMAGE>' + '{}')}"
    ).replace("{}", y.replace("\\", "\\\\").replace('"', '\\"')),
}


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
@pytest.mark.parametrize("field", list(MANIFEST_FIELDS))
def test_text_in_a_manifest_never_becomes_a_workflow_command(
    tmp_path: Path, digitalocean: str, field: str, payload: str
) -> None:
    manifest = MANIFEST_FIELDS[field](yaml_string(payload))
    ws = workspace(tmp_path, manifest)
    run = run_action(action_env(ws, {}, digitalocean))
    # Kubernetes allows `::x` as an env var name: accepted, echoed harmlessly, stopped at `cluster`.
    accepted = field == "env name" and payload.startswith("::")
    check(run, 2, "cluster" if accepted else MANIFEST, "1 injection: manifests")


# Inputs that are echoed when wrong: each with the payload as its value.
INPUT_FIELDS = (
    "image",
    "sha",
    "namespace",
    "wait-for",
    "placeholder",
    "secret-name",
    "build",
    "timeout",
    "pin-digest",
    "manifests",
    "cluster",
    "build-args",
)


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
@pytest.mark.parametrize("name", INPUT_FIELDS)
def test_text_in_an_input_never_becomes_a_workflow_command(
    tmp_path: Path, digitalocean: str, name: str, payload: str
) -> None:
    ws = workspace(tmp_path)
    value = f"{payload}=x" if name == "build-args" else payload
    run = run_action(action_env(ws, {name: value}, digitalocean))
    where = "build-args line" if name == "build-args" else name
    check(run, 2, where, "1 injection: inputs")


@pytest.mark.parametrize("payload", PAYLOADS[:6], ids=range(6))
def test_text_in_cli_arguments_never_becomes_a_workflow_command(
    tmp_path: Path, payload: str
) -> None:
    ws = workspace(tmp_path)
    env = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(ws)}
    manifest = str(ws / MANIFEST)
    run = run_cli(["render", "--manifest", manifest, "--image", payload], env)
    check(run, 2, manifest, "1 injection: CLI arguments")
    usage = run_cli(["deploy", f"--no-such{payload}"], env)
    check(usage, 2, "unrecognized arguments", "1 injection: CLI arguments", plain=True)


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
@pytest.mark.parametrize("flag", ["--deployment", "--namespace"])
def test_names_given_to_wait_are_checked_before_they_are_shown(flag: str, payload: str) -> None:
    argv = ["wait", "--deployment", "web", flag, payload]
    check(run_cli(argv, {"GITHUB_ACTIONS": "true"}), 2, flag, "1 injection: CLI arguments")


@pytest.mark.parametrize("payload", PAYLOADS[:6], ids=range(6))
def test_a_cluster_given_to_kubeconfig_is_checked_before_it_is_shown(payload: str) -> None:
    env = {"GITHUB_ACTIONS": "true", "DIGITALOCEAN_ACCESS_TOKEN": "dop_v1_" + "x" * 20}
    argv = ["kubeconfig", "--cluster", payload, "--env-file", "/nonexistent"]
    check(run_cli(argv, env), 2, "--cluster", "1 injection: CLI arguments")
