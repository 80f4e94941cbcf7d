"""Shared fixtures. Everything that needs the local stack is lazy: unit tests never touch it.

- `stack`: the env of a running stack (`scripts/stack env`); if none is up, the session starts
  one with `scripts/stack up` and stops it at the end (a stack that was already up stays up).
  `DJK_STACK_SKIP=docker` (comma-separated) leaves optional components out of that start.
- `kube_admin`: a `kubernetes.client.ApiClient` for the stack's admin kubeconfig.
- `namespace`: a fresh namespace per test, deleted afterwards (without waiting).
- `kustomize`: the pinned kustomize put first on PATH, built by `scripts/build-binaries
  kustomize` when it is not in the cache yet (never skipped: the action image ships it).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

REPO_ROOT = Path(__file__).resolve().parent.parent
STACK = [sys.executable, str(REPO_ROOT / "scripts" / "stack")]


def _stack_env() -> dict[str, str] | None:
    """The running stack's settings, or None when it is not up and healthy."""
    if subprocess.run([*STACK, "status"], capture_output=True, check=False).returncode != 0:
        return None
    out = subprocess.run([*STACK, "env"], capture_output=True, text=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
    return env


@pytest.fixture(scope="session")
def running_stack() -> Iterator[dict[str, str]]:
    """The stack's env (see `stack`); a module may override `stack` and still reach this one."""
    env = _stack_env()
    started_here = False
    if env is None:
        started_here = True
        # Output goes straight to the terminal: a cold start builds binaries for minutes.
        skip = [f"--skip={c}" for c in os.environ.get("DJK_STACK_SKIP", "").split(",") if c]
        subprocess.run([*STACK, "up", *skip], check=True)
        env = _stack_env()
        if env is None:
            pytest.fail("scripts/stack up succeeded but scripts/stack status reports problems")
    try:
        yield env
    finally:
        if started_here:
            subprocess.run([*STACK, "down"], check=False)


@pytest.fixture(scope="session")
def stack(running_stack: dict[str, str]) -> dict[str, str]:
    return running_stack


@pytest.fixture(scope="session")
def kube_admin(running_stack: dict[str, str]) -> Iterator[Any]:
    api = config.new_client_from_config(config_file=running_stack["KUBECONFIG"])
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def namespace(kube_admin: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    core = client.CoreV1Api(kube_admin)
    # The test's name makes leftovers traceable; the suffix keeps reruns and xdist apart.
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # Pods are refused until the controller-manager has made the namespace's default
    # ServiceAccount; waiting here keeps that race out of every test.
    deadline = time.monotonic() + 30
    while not core.list_namespaced_service_account(
        name, field_selector="metadata.name=default"
    ).items:
        if time.monotonic() > deadline:
            pytest.fail(f"namespace {name}: no default ServiceAccount after 30s")
        time.sleep(0.05)
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


# The Docker engines the stack runs, as GitHub's hosted runners run them (stack/docker_side.py).
ENGINES = {"28": "ubuntu-24.04, classic image store", "29": "ubuntu-26.04, containerd store"}


@pytest.fixture(params=sorted(ENGINES), ids=lambda name: f"engine-{name}")
def engine_stack(request: pytest.FixtureRequest, running_stack: dict[str, str]) -> dict[str, str]:
    """The stack's env with DOCKER_HOST on one engine: tests that take it run on each."""
    host = running_stack.get(f"DJK_DOCKER_HOST_{request.param}")
    if not host:
        pytest.fail(f"the stack runs no Docker engine {request.param} (DJK_DOCKER_HOST_*)")
    return {**running_stack, "DOCKER_HOST": host, "DJK_DOCKER_ENGINE": request.param}


@pytest.fixture(scope="session")
def kustomize_binary() -> Path:
    """The kustomize scripts/build-binaries pins, built (under a minute cold) when missing."""
    script = REPO_ROOT / "scripts" / "build-binaries"
    paths = subprocess.run([str(script), "paths"], capture_output=True, text=True, check=True)
    binary = Path(
        next(
            line.split("=", 1)[1]
            for line in paths.stdout.splitlines()
            if line.startswith("KUSTOMIZE_BIN=")
        )
    )
    if not binary.exists():
        subprocess.run([str(script), "kustomize"], check=True, timeout=1800)
    assert os.access(binary, os.X_OK), f"{binary} was not built"
    return binary


@pytest.fixture
def kustomize(kustomize_binary: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """kustomize first on PATH, where the deployer looks for it (as in the action image)."""
    monkeypatch.setenv("PATH", f"{kustomize_binary.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return kustomize_binary
