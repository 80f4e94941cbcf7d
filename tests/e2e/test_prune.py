# ruff: noqa: F811 - the fixtures imported from test_deploy_action are parameters here
"""prune: true through the action container against the stack, and kubectl 1.32
(`KUBECTL_APPLYSET=true kubectl apply --prune --applyset=…`), the reference peer, agreeing on
what belongs to the app."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from deployer import applyset
from tests.e2e.test_deploy_action import (  # noqa: F401 - fixtures
    Deploy,
    built_sha,
    deploy,
    image_repo,
    kubectl,
    workspace,
)
from tests.e2e.test_workload_kinds import CONFIG, deployment, get

pytestmark = [pytest.mark.stack, pytest.mark.docker]

OLD_CONFIG = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old-config\ndata: {A: "1"}\n'
BY_HAND = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: by-hand\ndata: {B: "2"}\n'
PARENT = "antisocial-applyset"  # the image repository is …/djk-e2e/antisocial


def members(stack: dict[str, str], namespace: str, set_id: str) -> set[str]:
    """What kubectl's label selector calls the set's members (the kinds we deploy)."""
    out = kubectl(
        stack,
        "-n",
        namespace,
        "get",
        "deployments,configmaps,secrets",
        "-l",
        f"{applyset.PART_OF_LABEL}={set_id}",
        "-o",
        "name",
    )
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def kubectl_prune_dry_run(
    stack: dict[str, str], namespace: str, manifest: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """kubectl given what the action applies: the manifests and the Secret from `secrets`."""
    path = tmp_path / "kubectl.yaml"
    env_secret = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-secrets\nstringData: {K: v}\n"
    )
    rendered = manifest.replace("<IMAGE>", "registry.invalid/app:kubectl")
    path.write_text("---\n".join([rendered, env_secret]))
    return subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            stack["KUBECONFIG"],
            "apply",
            "--server-side",
            "--force-conflicts",
            "--prune",
            f"--applyset=secret/{PARENT}",
            "-n",
            namespace,
            "-f",
            str(path),
            "--dry-run=server",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECTL_APPLYSET": "true"},
    )


def test_prune_deletes_what_left_the_manifests_after_a_green_deploy_and_kubectl_agrees(
    deploy: Deploy, stack: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    first = "---\n".join([CONFIG, OLD_CONFIG, deployment("web"), deployment("worker")])
    result = deploy(first, prune="true")
    assert result.exit_code == 0, result.log[-4000:]
    set_id = applyset.applyset_id(PARENT, namespace)
    labels = json.loads(get(stack, namespace, f"secret/{PARENT}", "{.metadata.labels}"))
    assert labels == {applyset.ID_LABEL: set_id}
    annotations = json.loads(get(stack, namespace, f"secret/{PARENT}", "{.metadata.annotations}"))
    # The Secret made from the secrets input belongs to the app too.
    assert annotations[applyset.KINDS_ANNOTATION] == "ConfigMap,Deployment.apps,Secret"
    assert annotations[applyset.TOOLING_ANNOTATION] == applyset.TOOLING
    assert members(stack, namespace, set_id) == {
        "deployment.apps/web",
        "deployment.apps/worker",
        "configmap/app-config",
        "configmap/old-config",
        "secret/app-secrets",
    }
    # Beside the set, applied by hand: never touched.
    hand = subprocess.run(
        ["kubectl", "--kubeconfig", stack["KUBECONFIG"], "-n", namespace, "apply", "-f", "-"],
        input=BY_HAND,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert hand.returncode == 0, hand.stderr

    second = "---\n".join([CONFIG, deployment("web")])
    preview = deploy(second, prune="true", **{"dry-run": "true"})
    assert preview.exit_code == 0, preview.log[-4000:]
    ours = set(re.findall(r"would prune (\S+) in ", preview.log))
    assert ours == {"deployment/worker", "configmap/old-config"}
    assert "Prune would delete: " in preview.log
    assert kubectl(stack, "-n", namespace, "get", "deployment/worker").returncode == 0

    # kubectl reads our parent and members as its own set (tooling handed over to it for the
    # check, as a team moving to kubectl would) and would prune the very same objects.
    handover = ("annotate", f"secret/{PARENT}", "--overwrite")
    kubectl_tooling = "kubectl/v1.32.4"
    assert (
        kubectl(
            stack, "-n", namespace, *handover, f"{applyset.TOOLING_ANNOTATION}={kubectl_tooling}"
        ).returncode
        == 0
    )
    peer = kubectl_prune_dry_run(stack, namespace, second, tmp_path)
    assert peer.returncode == 0, peer.stderr
    pruned_by_kubectl = set(re.findall(r"^(\S+) pruned \(server dry run\)$", peer.stdout, re.M))
    assert pruned_by_kubectl == {"deployment.apps/worker", "configmap/old-config"}, peer.stdout
    # While kubectl manages it, our action refuses the set in one line and applies nothing.
    refused = deploy(second, prune="true")
    assert refused.exit_code == 2, refused.log[-3000:]
    assert (
        f"secret/{PARENT} in namespace {namespace} is the ApplySet parent of another tool "
        f"({kubectl_tooling}), not of django-k8s-deploy" in refused.log
    )
    assert "State: nothing was applied to the cluster" in refused.log
    assert (
        kubectl(
            stack, "-n", namespace, *handover, f"{applyset.TOOLING_ANNOTATION}={applyset.TOOLING}"
        ).returncode
        == 0
    )

    # A failed deploy prunes nothing.
    failing = "---\n".join([CONFIG, deployment("web", {"deploy.test/behavior": "crash-loop"})])
    failed = deploy(failing, prune="true")
    assert failed.exit_code == 1
    assert "pruned" not in failed.log.replace("Pruned", "")
    assert kubectl(stack, "-n", namespace, "get", "deployment/worker").returncode == 0

    # A green one does, after the rollouts, and lists what went.
    green = deploy(second, prune="true")
    assert green.exit_code == 0, green.log[-4000:]
    assert set(re.findall(r"pruned (\S+) in ", green.log)) == ours
    assert green.log.index("pruned deployment/worker") > green.log.index("deployment/web: succ")
    assert "### Pruned" in green.summary
    assert "Pruned (no longer in the manifests): " in green.log
    for what in ("deployment/worker", "configmap/old-config"):
        gone = kubectl(stack, "-n", namespace, "get", what)
        assert gone.returncode != 0 or "Terminating" in gone.stdout, what
    assert kubectl(stack, "-n", namespace, "get", "configmap/by-hand").returncode == 0
    assert members(stack, namespace, set_id) == {
        "deployment.apps/web",
        "configmap/app-config",
        "secret/app-secrets",
    }


def test_prune_refuses_manifests_that_render_no_object_and_deletes_nothing(
    deploy: Deploy, stack: dict[str, str], namespace: str
) -> None:
    assert deploy("---\n".join([CONFIG, deployment("web")]), prune="true").exit_code == 0
    result = deploy("# every object was removed\n", prune="true")
    assert result.exit_code == 2, result.log[-3000:]
    errors = [line for line in result.log.splitlines() if line.startswith("::error")]
    assert errors == [
        "::error title=Invalid input::manifests: the manifests hold no Kubernetes objects. "
        "Check the manifests input."
    ]
    assert "::group::Build" not in result.log
    assert kubectl(stack, "-n", namespace, "get", "deployment/web").returncode == 0


def test_an_object_kubectl_keeps_in_its_own_set_is_refused_before_the_build(
    deploy: Deploy, stack: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    path = tmp_path / "theirs.yaml"
    path.write_text(CONFIG)
    theirs = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            stack["KUBECONFIG"],
            "apply",
            "--server-side",
            "--prune",
            "--applyset=secret/theirs",
            "-n",
            namespace,
            "-f",
            str(path),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECTL_APPLYSET": "true"},
    )
    assert theirs.returncode == 0, theirs.stderr
    result = deploy("---\n".join([CONFIG, deployment("web")]), prune="true")
    assert result.exit_code == 2, result.log[-3000:]
    other = applyset.applyset_id("theirs", namespace)
    errors = [line for line in result.log.splitlines() if line.startswith("::error")]
    assert len(errors) == 1
    assert (
        f"configmap/app-config in namespace {namespace} belongs to another ApplySet "
        f"({applyset.PART_OF_LABEL}={other})" in errors[0]
    )
    assert "::group::Build" not in result.log
    assert kubectl(stack, "-n", namespace, "get", f"secret/{PARENT}").returncode != 0
