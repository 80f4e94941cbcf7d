"""The build path on the real stack, through the action container, on each Docker engine the
hosted runners run (28 with the classic image store, 29 with the containerd store): a registry
build cache that a fresh runner (no local image, no local build cache) reuses, the digest the
push reports, and build secrets that reach the build but never the image (layers, config,
history) nor any process's argv."""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.support import (
    MANIFEST_TYPES,
    stack_env,
    stack_inputs,
    web_deployment,
    workspace_with,
)
from tests.harness.runner import ActionRun, run_action

pytestmark = [pytest.mark.stack, pytest.mark.docker]


def docker(stack: dict[str, str], *args: str, timeout: float = 300) -> str:
    env = {
        **os.environ,
        **({"DOCKER_HOST": stack["DOCKER_HOST"]} if stack.get("DOCKER_HOST") else {}),
    }
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return workspace_with(tmp_path, web_deployment())


Deploy = Callable[..., ActionRun]


@pytest.fixture
def stack(engine_stack: dict[str, str]) -> dict[str, str]:
    """Every test here runs on each engine: the deploy, the image checks and the action itself."""
    return engine_stack


@pytest.fixture
def deploy(stack: dict[str, str], workspace: Path, namespace: str) -> Deploy:
    def run(sha: str, **inputs: str) -> ActionRun:
        result = run_action(
            stack_inputs(stack, sha=sha, namespace=namespace, **inputs),
            workspace,
            stack=stack,
            extra_env=stack_env(stack, sha),
        )
        assert result.exit_code == 0, result.visible_log[-4000:]
        return result

    return run


def layers(stack: dict[str, str], ref: str) -> list[str]:
    return list(json.loads(docker(stack, "image", "inspect", "-f", "{{json .RootFS.Layers}}", ref)))


# -- cache ---------------------------------------------------------------------------------------


def test_a_fresh_runner_reuses_the_dependency_layer_from_the_registry_cache(
    deploy: Deploy, stack: dict[str, str], workspace: Path
) -> None:
    repo = f"{stack['DJK_REGISTRY']}/djk-e2e/cache-{secrets.token_hex(4)}"
    marker = secrets.token_hex(8)
    # The "dependency" layer holds random bytes: rebuilt, it would differ; reused, it is the same.
    (workspace / "Dockerfile").write_text(
        f"FROM {stack['DJK_BASE_IMAGE']}\n"
        f"RUN echo {marker} > /marker && head -c 32 /dev/urandom | od -An -tx1 > /dependencies\n"
        "COPY app.txt /srv/app.txt\n"
    )
    (workspace / "app.txt").write_text("version 1\n")
    first_sha, second_sha = secrets.token_hex(20), secrets.token_hex(20)

    first = deploy(first_sha, image=repo)
    assert "::warning title=No build cache::" in first.log  # the very first build has none
    assert f"build cache: {repo}:buildcache now points at this image" in first.log
    first_layers = layers(stack, f"{repo}:{first_sha}")

    # A fresh runner: neither the image nor BuildKit's local cache of that step is left.
    docker(stack, "image", "rm", f"{repo}:{first_sha}")
    docker(stack, "builder", "prune", "--all", "--force")

    (workspace / "app.txt").write_text("version 2\n")  # the one-line code change
    second = deploy(second_sha, image=repo)
    assert f"build cache: reusing layers from {repo}:buildcache" in second.log
    assert "::warning" not in second.log, second.visible_log
    second_layers = layers(stack, f"{repo}:{second_sha}")
    # Base and dependency layers are the very same; the code layer is new.
    assert second_layers[:-1] == first_layers[:-1]
    assert second_layers[-1] != first_layers[-1]
    # The digest the action reports is the one the registry serves for the pushed tag: the image
    # manifest alone on both engines (no attestations by default; test_attestations.py shows the
    # OCI index the containerd store pushes with `provenance`).
    digest, media_type = registry_manifest(stack, repo, second_sha)
    assert second.outputs["digest"] == digest
    assert media_type == PUSHED_MEDIA_TYPE[stack["DJK_DOCKER_ENGINE"]]
    # And the cache moved on to the new image.
    assert registry_digest(stack, repo, "buildcache") == registry_digest(stack, repo, second_sha)


PUSHED_MEDIA_TYPE = {
    "28": "application/vnd.docker.distribution.manifest.v2+json",
    "29": "application/vnd.oci.image.manifest.v1+json",
}


def registry_digest(stack: dict[str, str], repo: str, tag: str) -> str:
    return registry_manifest(stack, repo, tag)[0]


def registry_manifest(stack: dict[str, str], repo: str, tag: str) -> tuple[str, str]:
    """(digest, media type) the registry serves for a tag."""
    name = repo.split("/", 1)[1]
    answer = requests.head(
        f"http://{stack['DJK_REGISTRY']}/v2/{name}/manifests/{tag}",
        auth=(stack["DJK_REGISTRY_USER"], stack["DJK_REGISTRY_PASSWORD"]),
        headers={"Accept": MANIFEST_TYPES},
        timeout=30,
    )
    assert answer.status_code == 200, (tag, answer.status_code)
    return answer.headers["Docker-Content-Digest"], answer.headers["Content-Type"]


# -- secrets -------------------------------------------------------------------------------------


@pytest.fixture
def argv_watch() -> Iterator[list[str]]:
    """Every command line seen on this machine while the test runs (the action's container and
    the build's processes share this kernel's /proc)."""
    seen: list[str] = []
    stop = threading.Event()

    def scan() -> None:
        while not stop.is_set():
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    try:
                        raw = Path(entry.path, "cmdline").read_bytes()
                    except OSError:
                        continue
                    if raw:
                        seen.append(raw.replace(b"\0", b" ").decode("utf-8", "replace"))
            stop.wait(0.1)

    thread = threading.Thread(target=scan, daemon=True)
    thread.start()
    yield seen
    stop.set()
    thread.join(timeout=5)


def test_build_secrets_reach_the_build_and_nothing_else(
    deploy: Deploy, stack: dict[str, str], workspace: Path, argv_watch: list[str]
) -> None:
    repo = f"{stack['DJK_REGISTRY']}/djk-e2e/secrets"
    token = "pypi-" + secrets.token_urlsafe(24)
    sha = secrets.token_hex(20)
    # The step proves the secret arrived (its hash lands in the image) and lingers a moment so
    # the /proc scan sees the build running.
    (workspace / "Dockerfile").write_text(
        f"FROM {stack['DJK_BASE_IMAGE']}\n"
        "RUN --mount=type=secret,id=pip_token sha256sum /run/secrets/pip_token "
        "| cut -c1-64 > /secret.sha256 && sleep 2\n"
    )
    result = deploy(
        sha, image=repo, **{"build-secrets": f"pip_token={token}\n", "build-cache": "false"}
    )

    assert f"::add-mask::{token}" in result.log
    assert token not in result.visible_log + result.summary + json.dumps(result.outputs)
    assert any("id=pip_token,src=" in line for line in argv_watch), "the scan missed the build"
    assert not [line for line in argv_watch if token in line]

    ref = f"{repo}:{sha}"
    saved = subprocess.run(
        ["docker", "save", ref],
        capture_output=True,
        env={
            **os.environ,
            **({"DOCKER_HOST": stack["DOCKER_HOST"]} if stack.get("DOCKER_HOST") else {}),
        },
        timeout=300,
        check=True,
    ).stdout
    # docker save: uncompressed layer tars, the config (with history) and manifests.
    assert token.encode() not in saved
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
        names = archive.getnames()
        assert any(n.endswith(".json") for n in names)
        for member in archive.getmembers():
            data = archive.extractfile(member)
            if data is not None:
                assert token.encode() not in data.read(), member.name
    assert token not in docker(stack, "history", "--no-trunc", ref)
    assert token not in docker(stack, "image", "inspect", ref)
    delivered = docker(stack, "run", "--rm", "--network", "host", ref, "cat", "/secret.sha256")
    assert delivered.strip() == hashlib.sha256(token.encode()).hexdigest()
