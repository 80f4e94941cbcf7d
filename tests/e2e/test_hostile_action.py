"""The hostile-input classes that only the real thing can show, through the action's container
run as the runner runs it, against the local stack: each run carries several hostile inputs at
once, and after each non-zero exit the test namespace holds exactly what it held before.

The many cheap cases run in-process in tests/hostile/; these few prove the same in the container
(the log the runner reads, the environment a kubeconfig exec plugin really inherits, the API
server's own refusal of a wrongly typed field)."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.harness.runner import ActionRun, run_action
from tests.hostile.support import MARK, PAYLOADS

pytestmark = [pytest.mark.stack, pytest.mark.docker]

SECRET_VALUE = "hostile-e2e-secret-value-51"

GOOD = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {A: b}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: <IMAGE>
          envFrom: [{configMapRef: {name: app-config}}]
"""


def snapshot(kube_admin: Any, namespace: str) -> dict[str, str]:
    """What a deploy could have changed in the namespace: name → resourceVersion."""
    core, apps = client.CoreV1Api(kube_admin), client.AppsV1Api(kube_admin)
    objects = {
        **{
            f"cm/{o.metadata.name}": o.metadata.resource_version
            for o in core.list_namespaced_config_map(namespace).items
        },
        **{
            f"secret/{o.metadata.name}": o.metadata.resource_version
            for o in core.list_namespaced_secret(namespace).items
        },
        **{
            f"svc/{o.metadata.name}": o.metadata.resource_version
            for o in core.list_namespaced_service(namespace).items
        },
        **{
            f"deploy/{o.metadata.name}": o.metadata.resource_version
            for o in apps.list_namespaced_deployment(namespace).items
        },
    }
    objects.pop("cm/kube-root-ca.crt", None)  # published by a controller whenever it gets to it
    return objects


def run(
    stack: dict[str, str], workspace: Path, namespace: str, manifests: str, **inputs: str
) -> ActionRun:
    (workspace / "deploy").mkdir(parents=True, exist_ok=True)
    (workspace / "deploy" / "deployment.yaml").write_text(manifests)
    given = {
        "image": f"{stack['DJK_REGISTRY']}/djk-e2e/hostile",
        "sha": "0" * 40,
        "digitalocean-token": stack["DIGITALOCEAN_ACCESS_TOKEN"],
        "cluster": stack["DJK_CLUSTER_NAME"],
        "namespace": namespace,
        "registry-username": stack["DJK_REGISTRY_USER"],
        "registry-password": stack["DJK_REGISTRY_PASSWORD"],
        "secrets": f"SECRET_KEY={SECRET_VALUE}\n",
        "secret-name": "app-secrets",
        "build": "never",
        "timeout": "1m",
    }
    given.update(inputs)
    return run_action(
        given,
        workspace,
        extra_env={"DIGITALOCEAN_API_URL": stack["DIGITALOCEAN_API_URL"], "GITHUB_SHA": "0" * 40},
    )


def assert_hostile_contract(result: ActionRun, stack: dict[str, str], code: int) -> list[str]:
    """Exit code, one-line errors, no secret shown, no command from the payloads; returns the
    error annotations' texts."""
    assert result.exit_code == code, result.log[-3000:]
    shown = result.visible_log + "\n".join(result.outputs.values()) + result.summary
    for secret in (
        SECRET_VALUE,
        stack["DIGITALOCEAN_ACCESS_TOKEN"],
        stack["DJK_REGISTRY_PASSWORD"],
    ):
        assert secret not in shown
    assert "Traceback" not in result.log and "internal error" not in result.log
    for command in result.commands:
        assert MARK not in command.name and not command.data.startswith(MARK), command
        if command.name == "stop-commands":
            assert re.fullmatch(r"[0-9a-f]{32}", command.data), command
    assert not [line for line in result.visible_log.splitlines() if line.lstrip().startswith(MARK)]
    errors = [c for c in result.commands if c.name == "error"]
    assert errors and all("\n" not in c.data for c in errors)
    return [
        f"{c.properties.get('file', '')}:{c.properties.get('line', '')} {c.data}" for c in errors
    ]


def test_hostile_inputs_in_one_run_are_one_line_each_and_apply_nothing(
    stack: dict[str, str], tmp_path: Path, namespace: str, kube_admin: Any
) -> None:
    before = snapshot(kube_admin, namespace)
    result = run(
        stack,
        tmp_path / "ws",
        namespace,
        GOOD,
        **{
            "wait-for": PAYLOADS[0],
            "timeout": PAYLOADS[3],  # U+2028 then ::stop-commands::
            "build-args": f"{PAYLOADS[8]}=x",  # the legacy ##[error] form
            "placeholder": PAYLOADS[5],
            "pin-digest": PAYLOADS[9],  # a forged line
            "secret-name": PAYLOADS[11],
        },
    )
    errors = assert_hostile_contract(result, stack, 2)
    named = " ".join(errors)
    for where in (
        "wait-for:",
        "timeout:",
        "build-args line 1:",
        "placeholder:",
        "pin-digest:",
        "secret-name:",
    ):
        assert where in named, named
    assert snapshot(kube_admin, namespace) == before


def test_hostile_manifests_are_refused_at_file_and_line_and_apply_nothing(
    stack: dict[str, str], tmp_path: Path, namespace: str, kube_admin: Any
) -> None:
    before = snapshot(kube_admin, namespace)
    manifests = GOOD.replace(
        "metadata: {name: app-config}", 'metadata: {name: "cfg\\n::add-mask::PWNED"}'
    )
    result = run(stack, tmp_path / "ws", namespace, manifests)
    (error,) = assert_hostile_contract(result, stack, 2)
    assert error.startswith("deploy/deployment.yaml:3 metadata.name"), error
    duplicate = (
        GOOD
        + "---\n"
        + GOOD.split("---\n")[1].replace("image: <IMAGE>", "image: other.example/app:old")
    )
    again = run(stack, tmp_path / "ws2", namespace, duplicate)
    (error,) = assert_hostile_contract(again, stack, 2)
    assert (
        error.startswith("deploy/deployment.yaml:20 deployment/web") and "defined twice" in error
    ), error
    assert snapshot(kube_admin, namespace) == before


def test_a_kubeconfig_exec_plugin_in_the_container_gets_no_inputs_and_its_stderr_stays_text(
    stack: dict[str, str], tmp_path: Path, namespace: str, kube_admin: Any
) -> None:
    admin = yaml.safe_load(Path(stack["KUBECONFIG"]).read_text())
    cluster = admin["clusters"][0]["cluster"]
    ws = tmp_path / "ws"
    ws.mkdir()
    plugin = ws / "plugin.sh"
    stderr = PAYLOADS[0].replace("\n", "\\n") + " " + PAYLOADS[8]
    plugin.write_text(
        f"#!/bin/sh\nenv > /github/workspace/plugin-env.txt\nprintf '{stderr}' >&2\nexit 1\n"
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    kubeconfig = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "c",
            "clusters": [{"name": "k", "cluster": cluster}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            "users": [
                {
                    "name": "u",
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1",
                            "command": "/github/workspace/plugin.sh",
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
        }
    )
    before = snapshot(kube_admin, namespace)
    result = run(
        stack,
        ws,
        namespace,
        GOOD,
        kubeconfig=kubeconfig,
        **{"digitalocean-token": "", "cluster": ""},
    )
    assert_hostile_contract(result, stack, result.exit_code if result.exit_code in (2, 3) else -1)
    child = (ws / "plugin-env.txt").read_text()
    assert "INPUT_" not in child and SECRET_VALUE not in child
    assert snapshot(kube_admin, namespace) == before


@pytest.mark.parametrize(
    ("manifests", "where", "says"),
    [
        (
            GOOD.replace("replicas: 1", 'replicas: "two"'),
            "deploy/deployment.yaml:6",
            ".spec.replicas",
        ),
        (GOOD.replace("data: {A: b}", "data: {A: 1}"), "deploy/deployment.yaml:1", ".data.A"),
        (
            GOOD.replace(
                "selector: {matchLabels: {app: web}}", "selector: {matchLabels: {app: other}}"
            ),
            "deploy/deployment.yaml:6",
            "selector",
        ),
    ],
    ids=[
        "wrongly typed field (a 500)",
        "wrongly typed ConfigMap value (a 500)",
        "invalid object (a 422)",
    ],
)
def test_a_document_the_api_server_refuses_is_exit_2_at_its_line_and_nothing_is_applied(
    stack: dict[str, str],
    tmp_path: Path,
    namespace: str,
    kube_admin: Any,
    manifests: str,
    where: str,
    says: str,
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "Dockerfile").write_text(f"FROM {stack['DJK_BASE_IMAGE']}\n")
    before = snapshot(kube_admin, namespace)
    # Built once (the first case), then found in the registry: apply is reached.
    result = run(stack, ws, namespace, manifests, build="auto", **{"build-network": "host"})
    errors = assert_hostile_contract(result, stack, 2)
    print(f"\n[refused] {errors[0]}")
    assert errors[0].startswith(f"{where} the API server rejected") and says in errors[0], errors
    assert "nothing was applied" in result.log
    assert (
        snapshot(kube_admin, namespace) == before
    )  # the ConfigMap before it was not applied either
