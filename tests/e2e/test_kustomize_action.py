"""The example's staging overlay deployed by the action, run as the runner runs it, on the stack:
kustomize (shipped in the action image) builds overlays/staging over deploy/, `<IMAGE>` is
rendered after it, the run-first migration and the rollouts go green, and what reaches the
cluster is the overlay's (replicas, config, no disruption budget) without kustomize's origin
annotation. A kustomization kustomize itself refuses is one error naming its file."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.support import stack_env, stack_inputs
from tests.harness.runner import _docker_binary, _docker_cli_env, build_action_image, run_action

pytestmark = [pytest.mark.stack, pytest.mark.docker]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "antisocial"
SECRETS = "SECRET_KEY=staging-only-key\nDATABASE_URL=postgres://a:b@db/antisocial\n"


@pytest.fixture
def checkout(tmp_path: Path, stack: dict[str, str]) -> Path:
    """The example's manifests and overlays as checked out, with a small image to build (kwok
    runs no container, so the app itself need not be built here: test_example_app does that)."""
    ws = tmp_path / "antisocial"
    for part in ("deploy", "overlays"):
        shutil.copytree(EXAMPLE / part, ws / part)
    (ws / "Dockerfile").write_text(f"FROM {stack['DJK_BASE_IMAGE']}\nCOPY app.txt /srv/app.txt\n")
    (ws / "app.txt").write_text("antisocial stand-in\n")
    return ws


def kubectl_json(stack: dict[str, str], *args: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run(
        ["kubectl", "--kubeconfig", stack["KUBECONFIG"], *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict = json.loads(done.stdout)  # type: ignore[type-arg]
    return result


def test_the_action_image_ships_the_pinned_kustomize(stack: dict[str, str]) -> None:
    image = build_action_image(stack=stack)
    done = subprocess.run(
        [
            _docker_binary(),
            "run",
            "--rm",
            "--network=none",
            "--entrypoint",
            "kustomize",
            image,
            "version",
        ],
        capture_output=True,
        text=True,
        env=_docker_cli_env(stack),
        timeout=120,
        check=False,
    )
    from deployer.manifests.kustomize import KUSTOMIZE_VERSION

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == KUSTOMIZE_VERSION


def test_the_staging_overlay_is_deployed_through_the_action(
    stack: dict[str, str], checkout: Path, namespace: str
) -> None:
    sha = "5" * 40
    image = f"{stack['DJK_REGISTRY']}/djk-e2e/antisocial-staging"
    run = run_action(
        stack_inputs(
            stack,
            image=image,
            sha=sha,
            namespace=namespace,
            manifests="overlays/staging",
            secrets=SECRETS,
            **{"secret-name": "antisocial-secrets"},
        ),
        checkout,
        stack=stack,
        extra_env=stack_env(stack, sha),
    )
    assert run.exit_code == 0, run.visible_log[-4000:]
    # The four files of deploy/ (the disruption budget deleted; the overlay adds no object).
    assert "6 objects in 4 file(s) (kustomize built overlays/staging)" in run.visible_log
    rolled = {d["name"]: d["result"] for d in json.loads(run.outputs["deployments"])}
    assert {name: result for name, result in rolled.items() if "migrate" not in name} == {
        "antisocial-web": "succeeded",
        "antisocial-worker": "succeeded",
        "antisocial-beat": "succeeded",
    }
    assert [r for n, r in rolled.items() if n.startswith("antisocial-migrate-")] == ["succeeded"]
    deployments = kubectl_json(stack, "-n", namespace, "get", "deployments")["items"]
    by_name = {d["metadata"]["name"]: d for d in deployments}
    assert by_name["antisocial-web"]["spec"]["replicas"] == 1  # the overlay's, base says 2
    web = by_name["antisocial-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["image"] == f"{image}:{sha}"
    assert web["resources"]["requests"]["cpu"] == "50m"
    config = kubectl_json(stack, "-n", namespace, "get", "configmap", "antisocial-config")
    assert config["data"]["ALLOWED_HOSTS"] == "staging.antisocial.example.com"
    budgets = kubectl_json(stack, "-n", namespace, "get", "poddisruptionbudgets")["items"]
    assert budgets == []  # the overlay deletes it
    for d in [*deployments, config]:
        assert "config.kubernetes.io/origin" not in (d["metadata"].get("annotations") or {})
    jobs = kubectl_json(stack, "-n", namespace, "get", "jobs")["items"]
    assert [j["metadata"]["name"].startswith("antisocial-migrate-") for j in jobs] == [True]


def test_a_kustomization_kustomize_refuses_is_one_error_naming_its_file(
    stack: dict[str, str], checkout: Path, namespace: str
) -> None:
    overlay = checkout / "overlays" / "staging"
    (overlay / "broken.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: no-such-deployment}\n"
        "spec: {replicas: 2}\n"
    )
    text = (overlay / "kustomization.yaml").read_text()
    (overlay / "kustomization.yaml").write_text(text + "  - path: broken.yaml\n")
    sha = "6" * 40
    run = run_action(
        stack_inputs(
            stack,
            image=f"{stack['DJK_REGISTRY']}/djk-e2e/antisocial-staging",
            sha=sha,
            namespace=namespace,
            manifests="overlays/staging",
            build="never",
        ),
        checkout,
        stack=stack,
        extra_env=stack_env(stack, sha),
    )
    assert run.exit_code == 2, run.visible_log[-4000:]
    [error] = run.annotations("error")
    assert error.properties.get("file") == "overlays/staging/kustomization.yaml"
    assert "kustomize could not build it" in error.data
    assert "no-such-deployment" in error.data
    assert "\n" not in error.data
