"""The Docker side of the local stack: registry auth, the base image, the docker CLI image.

Each test talks to the real daemon and registry of the running stack (the `stack` fixture).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stack.cli import default_state_dir
from stack.docker_side import docker_socket

pytestmark = [pytest.mark.stack, pytest.mark.docker]

REPO_ROOT = Path(__file__).resolve().parents[2]


def docker(
    stack: dict[str, str],
    *args: str,
    config: Path | None = None,
    stdin: bytes | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    if stack.get("DOCKER_HOST"):
        env["DOCKER_HOST"] = stack["DOCKER_HOST"]
    if config is not None:
        # A private client config: no credentials from this machine's ~/.docker leak in.
        config.mkdir(parents=True, exist_ok=True)
        env["DOCKER_CONFIG"] = str(config)
    result = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, env=env, timeout=timeout, check=False
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def tiny_image(stack: dict[str, str], tag: str) -> None:
    """A one-file image made with `docker import`: nothing is pulled."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        payload = secrets.token_hex(16).encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    result = docker(stack, "image", "import", "-", tag, stdin=buffer.getvalue())
    assert result.returncode == 0, result.stderr


def registry_get(stack: dict[str, str], path: str, *, auth: bool) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://{stack['DJK_REGISTRY']}{path}")
    if auth:
        token = f"{stack['DJK_REGISTRY_USER']}:{stack['DJK_REGISTRY_PASSWORD']}"
        request.add_header("Authorization", "Basic " + base64.b64encode(token.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback http
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_registry_refuses_anonymous_push_and_accepts_the_run_credentials(
    stack: dict[str, str], tmp_path: Path
) -> None:
    repository = f"djk-test/tiny-{secrets.token_hex(4)}"
    tag = f"{stack['DJK_REGISTRY']}/{repository}:v1"
    tiny_image(stack, tag)
    try:
        check_push(stack, tmp_path, repository, tag)
    finally:
        docker(stack, "image", "rm", tag)


def check_push(stack: dict[str, str], tmp_path: Path, repository: str, tag: str) -> None:
    anonymous = docker(stack, "push", tag, config=tmp_path / "anonymous")
    assert anonymous.returncode != 0
    assert "no basic auth credentials" in anonymous.stderr + anonymous.stdout

    wrong = docker(
        stack,
        "login",
        "--username",
        stack["DJK_REGISTRY_USER"],
        "--password-stdin",
        stack["DJK_REGISTRY"],
        config=tmp_path / "wrong",
        stdin=b"not-the-password",
    )
    assert wrong.returncode != 0
    assert "unauthorized" in wrong.stderr.lower()

    login = docker(
        stack,
        "login",
        "--username",
        stack["DJK_REGISTRY_USER"],
        "--password-stdin",
        stack["DJK_REGISTRY"],
        config=tmp_path / "good",
        stdin=stack["DJK_REGISTRY_PASSWORD"].encode(),
    )
    assert login.returncode == 0, login.stderr
    pushed = docker(stack, "push", tag, config=tmp_path / "good")
    assert pushed.returncode == 0, pushed.stderr
    assert "digest: sha256:" in pushed.stdout

    status, body = registry_get(stack, f"/v2/{repository}/tags/list", auth=True)
    assert (status, json.loads(body)["tags"]) == (200, ["v1"])
    status, _ = registry_get(stack, f"/v2/{repository}/tags/list", auth=False)
    assert status == 401


def test_base_image_has_python_and_pip_reaches_pypi_through_the_machines_ca(
    stack: dict[str, str],
) -> None:
    script = (
        "set -e; python3 --version; python3 -m venv /tmp/venv; "
        "cd /tmp && python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check "
        "--dest /tmp/dl six; ls /tmp/dl"
    )
    result = docker(
        stack, "run", "--rm", "--network", "host", stack["DJK_BASE_IMAGE"], "sh", "-c", script
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Python 3.")
    assert "six-" in result.stdout.splitlines()[-1]


def test_docker_cli_image_speaks_api_1_44_or_newer_and_has_buildx(stack: dict[str, str]) -> None:
    run = [
        "run",
        "--rm",
        "--network",
        "host",
        "-v",
        f"{docker_socket(stack)}:/var/run/docker.sock",
        stack["DJK_DOCKER_CLI_IMAGE"],
    ]
    version = docker(stack, *run, "/usr/local/bin/docker", "version", "--format", "{{json .}}")
    assert version.returncode == 0, version.stderr
    report = json.loads(version.stdout)
    client = report["Client"]
    assert int(client["Version"].split(".")[0]) >= 29
    # The newest API the client speaks: GitHub's Engine 29 refuses anything below 1.44.
    assert tuple(int(p) for p in client["DefaultAPIVersion"].split(".")) >= (1, 44)
    # And it still negotiates down to whatever daemon this stack runs.
    assert report["Server"]["Version"]

    buildx = docker(stack, *run, "/usr/local/bin/docker", "buildx", "version")
    assert buildx.returncode == 0, buildx.stderr
    assert buildx.stdout.startswith("github.com/docker/buildx v0.")


def test_stack_status_lists_every_docker_part_as_ok(stack: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "stack"), "status"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("docker: ")]
    assert lines, result.stdout + result.stderr
    assert all(line.endswith(": ok") for line in lines), lines
    joined = "\n".join(lines)
    for part in (
        "docker engine 28 answers (28.0.4)",
        "docker engine 29 answers (29-",
        "(htpasswd auth)",
        f"engine 28: image {stack['DJK_BASE_IMAGE']}",
        f"engine 29: image {stack['DJK_BASE_IMAGE']}",
    ):
        assert part in joined


@pytest.mark.parametrize("engine", ["28", "29"])
def test_the_kustomize_image_holds_the_pinned_kustomize_where_the_dockerfile_copies_it(
    stack: dict[str, str], engine: str
) -> None:
    from deployer.manifests.kustomize import KUSTOMIZE_VERSION
    from stack.docker_side import KUSTOMIZE_IMAGE, kustomize_image

    engine_stack = {**stack, "DOCKER_HOST": stack[f"DJK_DOCKER_HOST_{engine}"]}
    env = {**os.environ, "DOCKER_HOST": engine_stack["DOCKER_HOST"]}
    # `up` makes it in both engines; a stack started before it did gets it here the same way.
    assert kustomize_image(env, lambda line: None) == KUSTOMIZE_IMAGE
    assert f"djk/kustomize:{KUSTOMIZE_VERSION}" == KUSTOMIZE_IMAGE
    version = docker(
        engine_stack,
        "run",
        "--rm",
        "--network",
        "none",
        KUSTOMIZE_IMAGE,
        "/app/kustomize",
        "version",
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == KUSTOMIZE_VERSION


# What each engine must be to stand in for the hosted runner that runs it.
ENGINE_FACTS = {
    # ubuntu-24.04: Docker 28.0.4, no daemon.json, so the classic store on overlay2.
    "28": ("28.0.4", False),
    # ubuntu-26.04: Docker 29 on a fresh install, so the containerd image store.
    "29": ("29-", True),
}


def test_each_engine_is_the_runner_engine_it_stands_in_for(engine_stack: dict[str, str]) -> None:
    info_run = docker(engine_stack, "info", "--format", "{{json .}}")
    assert info_run.returncode == 0, info_run.stderr
    info = json.loads(info_run.stdout)
    version, containerd_store = ENGINE_FACTS[engine_stack["DJK_DOCKER_ENGINE"]]
    assert info["ServerVersion"].startswith(version)
    snapshotter = any("io.containerd.snapshotter" in str(v) for v in info["DriverStatus"] or [])
    assert snapshotter is containerd_store, info["DriverStatus"]
    # Built from the module proxy with the runtime the runners have: runc with seccomp, so
    # every container and every build step gets the default seccomp filter.
    assert info["DefaultRuntime"] == "runc"
    assert any("name=seccomp" in option for option in info["SecurityOptions"]), info
    # ... and they are ours, not some other containerd or runc found on this machine.
    built = built_versions()
    assert info["RuncCommit"]["ID"] == built["runc"]
    assert info["ContainerdCommit"]["ID"] == built["containerd"]


def built_versions() -> dict[str, str]:
    """The versions scripts/build-binaries pins, read from the cache paths it prints."""
    paths = subprocess.run(
        [str(REPO_ROOT / "scripts" / "build-binaries"), "paths"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    found = dict(re.findall(r"/(runc|containerd)-(v[0-9][^-/]*)-go", paths))
    assert set(found) == {"runc", "containerd"}, paths
    return found


def test_each_engine_decompresses_pulled_layers_with_unpigz_as_a_runner_does(
    engine_stack: dict[str, str],
) -> None:
    """GitHub's Ubuntu runners ship pigz, and dockerd (classic pulls, BuildKit's cache import)
    and containerd decompress with unpigz when their PATH has it: without it every pull here is
    slower than on a runner, and the bench's figures with it."""
    state = json.loads((default_state_dir() / "docker" / "state.json").read_text())
    name = f"dockerd-{engine_stack['DJK_DOCKER_ENGINE']}"
    pid = next(proc["pid"] for proc in state["procs"] if proc["name"] == name)
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    path = next(v for v in environ if v.startswith(b"PATH=")).decode().removeprefix("PATH=")
    assert shutil.which("unpigz", path=path), f"no unpigz on {name}'s PATH {path}"
