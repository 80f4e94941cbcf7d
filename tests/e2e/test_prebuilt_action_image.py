"""The release's prebuilt action image, shown locally: the action image is pushed to the stack's
registry, a copy of action.yml is pinned to it the way the release does it
(scripts/pin-action-image), and the harness then pulls it in "Set up job", as the runner does,
instead of building the Dockerfile. The deploy behaves exactly as from the Dockerfile."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.e2e.support import stack_env, stack_inputs, web_deployment, workspace_with
from tests.harness.runner import REPO_ROOT, ActionRun, build_action_image, run_action

pytestmark = [pytest.mark.stack, pytest.mark.docker]


def docker_env(stack: dict[str, str], config: str) -> dict[str, str]:
    env = {**os.environ, "DOCKER_CONFIG": config}
    env.pop("DOCKER_HOST", None)
    if stack.get("DOCKER_HOST"):
        env["DOCKER_HOST"] = stack["DOCKER_HOST"]
    return env


def publish(stack: dict[str, str], local_tag: str, repository: str) -> str:
    """What the release's image job does, on the stack's registry: push, return repo@digest."""
    with tempfile.TemporaryDirectory(prefix="djk-release-") as config:
        env = docker_env(stack, config)

        def run(*args: str, stdin: str | None = None) -> str:
            done = subprocess.run(
                ["docker", *args],
                input=stdin,
                capture_output=True,
                text=True,
                env=env,
                timeout=600,
                check=False,
            )
            assert done.returncode == 0, f"docker {args[0]}: {done.stdout}{done.stderr}"
            return done.stdout

        registry = stack["DJK_REGISTRY"]
        run(
            "login",
            "-u",
            stack["DJK_REGISTRY_USER"],
            "--password-stdin",
            registry,
            stdin=stack["DJK_REGISTRY_PASSWORD"],
        )
        tag = f"{repository}:{local_tag.rsplit(':', 1)[1]}"
        run("tag", local_tag, tag)
        pushed = run("push", tag)
        run("image", "rm", tag)  # only the name: the harness must pull by digest
        digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
        assert digest, pushed
        return f"{repository}@{digest.group(1)}"


def test_the_action_runs_from_the_pulled_release_image_as_from_its_dockerfile(
    stack: dict[str, str], namespace: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # Built as the release workflow builds it: with the release's version.
    built = build_action_image(REPO_ROOT, stack, version="v9.8.7")
    reference = publish(stack, built, f"{stack['DJK_REGISTRY']}/djk/action-release")

    released = tmp_path / "release"
    released.mkdir()
    shutil.copy(REPO_ROOT / "action.yml", released / "action.yml")
    pinned = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "pin-action-image"),
            reference,
            str(released / "action.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert pinned.returncode == 0, pinned.stderr

    workspace = workspace_with(tmp_path, web_deployment(), f"FROM {stack['DJK_BASE_IMAGE']}\n")
    sha = secrets.token_hex(20)
    image = f"{stack['DJK_REGISTRY']}/djk-e2e/prebuilt"

    def deploy(action_dir: Path) -> ActionRun:
        result = run_action(
            stack_inputs(stack, image=image, sha=sha, namespace=namespace),
            workspace,
            extra_env=stack_env(stack, sha),
            action_dir=action_dir,
        )
        assert result.exit_code == 0, result.visible_log[-3000:]
        return result

    from_dockerfile = deploy(REPO_ROOT)
    from_release = deploy(released)
    # The runner's `docker run` names the pinned reference, which the harness pulled in set-up.
    assert from_release.image == reference
    assert reference in from_release.argv
    assert f"[harness] pulled {reference}" in capfd.readouterr().err
    # The same program: the same groups (no push: the image exists now), the same outputs.
    assert from_release.groups() == [
        g for g in from_dockerfile.groups() if not g.startswith("Push")
    ]
    assert from_release.outputs["image"] == from_dockerfile.outputs["image"]
    assert from_release.outputs["digest"] == from_dockerfile.outputs["digest"]
    assert from_release.outputs["result"] == "succeeded"
    # It says which release runs (a Dockerfile build from a checkout says so too).
    assert from_release.visible_log.startswith("django-k8s-deploy v9.8.7\n")
    assert from_dockerfile.visible_log.startswith("django-k8s-deploy v0.0.0-dev\n")
