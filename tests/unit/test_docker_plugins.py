"""The CLI on a laptop finds the user's Docker plugins (buildx in ~/.docker/cli-plugins, as Docker
Desktop and `docker buildx install` put it) although every docker command runs with a private
DOCKER_CONFIG that keeps registry credentials out of the user's config: the search, then the real
docker CLI finding a plugin through the private config (no daemon needed), and the one line
when there is no buildx."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deployer.building import build_and_push
from deployer.cli import real_services
from deployer.docker import SYSTEM_PLUGIN_DIRS, Docker, find_user_plugins, user_plugin_dirs
from deployer.github import Reporter
from tests.unit.runs import make_run
from tests.unit.test_docker_build import FAKE_DOCKER, fail, settings

FAKE_BUILDX = """\
#!/bin/sh
if [ "$1" = docker-cli-plugin-metadata ]; then
  echo '{"SchemaVersion":"0.1.0","Vendor":"test","Version":"v9.9.9-laptop"}'
  exit 0
fi
echo "github.com/docker/buildx v9.9.9-laptop ($*)"
"""


def plugin(directory: Path, name: str = "docker-buildx", text: str = FAKE_BUILDX) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_the_users_dirs_are_their_config_dirs_plugins_then_its_extra_dirs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert user_plugin_dirs({"HOME": str(home)}) == [home / ".docker" / "cli-plugins"]
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.json").write_text(
        json.dumps(
            {
                "auths": {"registry.example.com": {"auth": "c2VjcmV0OnNlY3JldA=="}},
                "cliPluginsExtraDirs": ["/opt/plugins", "~/more", 7],
            }
        )
    )
    env = {"HOME": str(home), "DOCKER_CONFIG": str(config)}
    assert user_plugin_dirs(env) == [
        config / "cli-plugins",
        Path("/opt/plugins"),
        Path(os.path.expanduser("~/more")),
    ]
    (config / "config.json").write_text("{not json")
    assert user_plugin_dirs(env) == [config / "cli-plugins"]


def test_the_first_executable_docker_plugin_of_each_name_is_found(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = plugin(home / ".docker" / "cli-plugins")
    plugin(home / ".docker" / "cli-plugins", "docker-compose")
    plugin(home / ".docker" / "cli-plugins", "not-a-plugin")
    (home / ".docker" / "cli-plugins" / "docker-scan").write_text("not executable")
    extra = tmp_path / "extra"
    plugin(extra)  # a second buildx: the first directory wins, as in the CLI
    plugin(extra, "docker-sbom")
    (home / ".docker" / "config.json").write_text(json.dumps({"cliPluginsExtraDirs": [str(extra)]}))

    found = find_user_plugins({"HOME": str(home)})

    assert found == {
        "docker-buildx": first,
        "docker-compose": home / ".docker" / "cli-plugins" / "docker-compose",
        "docker-sbom": extra / "docker-sbom",
    }


def real_docker() -> str:
    binary = shutil.which("docker")
    assert binary, "the docker CLI must be on PATH (no daemon is needed)"
    return binary


def test_the_real_docker_cli_finds_the_users_buildx_through_the_private_config(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    plugin(home / ".docker" / "cli-plugins")
    (home / ".docker" / "config.json").write_text(
        json.dumps({"auths": {"registry.example.com": {"auth": "dXNlcjpzZWNyZXQ="}}})
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "DOCKER_HOST": "unix:///nonexistent"}
    # The control: with an empty private config and nothing else, the CLI does not see it.
    bare = tmp_path / "bare"
    bare.mkdir()
    control = subprocess.run(
        [real_docker(), "buildx", "version"],
        env={**env, "DOCKER_CONFIG": str(bare)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "v9.9.9-laptop" not in control.stdout

    docker = Docker(env=env, docker=real_docker())
    try:
        assert docker.buildkit() and docker.without_buildkit() == ""
        assert "v9.9.9-laptop (buildx version)" in docker._run(["buildx", "version"]).stdout
        # Only the plugins are linked in: no config.json, so none of the user's credentials.
        assert sorted(p.name for p in docker.config_dir.iterdir()) == ["cli-plugins"]
        assert docker.env["DOCKER_CONFIG"] == str(docker.config_dir)
    finally:
        docker.close()
    assert json.loads((home / ".docker" / "config.json").read_text())["auths"]  # untouched


def test_without_buildx_one_line_says_where_it_looked_and_what_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_docker = tmp_path / "bin" / "docker"
    plugin(fake_docker.parent, "docker", FAKE_DOCKER.format(python=sys.executable))
    (fake_docker.parent / "docker-calls.jsonl").touch()
    fail(fake_docker, buildx="docker: unknown command: docker buildx")
    monkeypatch.setenv("PATH", f"{fake_docker.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.delenv("DOCKER_BUILDKIT", raising=False)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    stream = io.StringIO()
    run = make_run(
        settings(tmp_path), Reporter(github=True, stream=stream), real_services(os.environ)
    )
    docker = run.services.docker()
    try:
        build_and_push(run, docker)
    finally:
        docker.close()

    (line,) = [t for t in stream.getvalue().splitlines() if "title=No BuildKit" in t]
    dirs = ", ".join(["~/.docker/cli-plugins", *SYSTEM_PLUGIN_DIRS])
    assert line == (
        f"::warning title=No BuildKit::building with Docker's legacy builder (no docker-buildx "
        f"plugin in {dirs}): no registry build cache, no build secrets, no attestations; "
        "install docker-buildx"
    )
