"""The build path's docker command lines, against a fake `docker` that records what it was given:
the registry build cache (read before the build, written after the push, never fatal) and build
secrets (files in a private directory while the build runs, never argv, never the environment)."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from deployer.building import CacheTag, build_and_push
from deployer.cli import real_services
from deployer.docker import BuildRequest, Docker
from deployer.errors import InputError
from deployer.github import Reporter
from deployer.run import Run
from deployer.settings import Settings
from tests.unit.runs import make_run

SHA = "1" * 40
IMAGE = "registry.example.com/team/app"

FAKE_DOCKER = textwrap.dedent(
    """\
    #!{python}
    import json, os, sys
    args = sys.argv[1:]
    here = os.path.dirname(os.path.abspath(__file__))
    seen = {{}}
    for arg in args:
        if arg.startswith("id=") and ",src=" in arg:
            src = arg.split(",src=", 1)[1]
            seen[src] = {{"text": open(src).read(), "mode": oct(os.stat(src).st_mode & 0o777),
                         "dir_mode": oct(os.stat(os.path.dirname(src)).st_mode & 0o777)}}
    with open(os.path.join(here, "docker-calls.jsonl"), "a") as log:
        log.write(json.dumps(args) + "\\n")
    if seen:
        with open(os.path.join(here, "docker-calls.jsonl.secrets"), "w") as out:
            json.dump({{"files": seen, "environ": dict(os.environ)}}, out)
    fail_file = os.path.join(here, "fail.json")
    fail = json.load(open(fail_file)) if os.path.exists(fail_file) else {{}}
    for prefix, message in fail.items():
        if (" ".join(args) + " ").startswith(prefix + " "):
            print(message, file=sys.stderr)
            sys.exit(1)
    if args[:1] == ["push"]:
        print("latest: digest: sha256:" + "ab" * 32 + " size: 1234")
    if args[:1] == ["info"] and os.path.exists(os.path.join(here, "containerd-store")):
        print('[["driver-type","io.containerd.snapshotter.v1"]]')
    """
)


@pytest.fixture
def fake_docker(tmp_path: Path) -> Path:
    binary = tmp_path / "docker"
    binary.write_text(FAKE_DOCKER.format(python=sys.executable))
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "docker-calls.jsonl").touch()
    return binary


def calls(fake_docker: Path) -> list[list[str]]:
    log = fake_docker.parent / "docker-calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


def fail(fake_docker: Path, **prefixes: str) -> None:
    """Make the fake fail (exit 1, this text on stderr) for commands starting with these words."""
    (fake_docker.parent / "fail.json").write_text(
        json.dumps({k.replace("_", " "): v for k, v in prefixes.items()})
    )


def settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "image": IMAGE,
        "sha": SHA,
        "workspace": tmp_path,
        "manifests": (),
        "build_cache": f"{IMAGE}:buildcache",
        "build": "always",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_build_imports_the_cache_reference_and_writes_inline_cache(
    tmp_path: Path, fake_docker: Path
) -> None:
    docker = Docker(docker=str(fake_docker), env=os.environ)
    request = BuildRequest(
        ref=f"{IMAGE}:{SHA}",
        context=tmp_path,
        dockerfile=tmp_path / "Dockerfile",
        cache_from=f"{IMAGE}:buildcache",
        inline_cache=True,
    )
    docker.build(request, lambda _: None)
    docker.close()
    (build,) = [c for c in calls(fake_docker) if c[0] == "build"]
    assert build[build.index("--cache-from") + 1] == f"{IMAGE}:buildcache"
    assert build[build.index("--cache-to") + 1] == "type=inline"
    assert build[-1] == str(tmp_path)


def run_build_and_push(tmp_path: Path, config: Settings) -> str:
    stream = io.StringIO()
    reporter = Reporter(github=True, stream=stream)
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    build_push_and_move_the_cache(make_run(config, reporter, real_services(os.environ)))
    return stream.getvalue()


def build_push_and_move_the_cache(run: Run) -> None:
    """What the deploy does with the docker CLI: build and push, then move the cache tag."""
    docker = run.services.docker()
    if build_and_push(run, docker) and run.settings.build_cache and docker.buildkit():
        CacheTag(run.settings, docker).finish(run.reporter)
    else:
        docker.close()


@pytest.fixture
def on_path(fake_docker: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{fake_docker.parent}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.usefixtures("on_path")
def test_a_present_cache_is_used_and_then_moved_to_the_new_image(
    tmp_path: Path, fake_docker: Path
) -> None:
    log = run_build_and_push(tmp_path, settings(tmp_path))
    made = calls(fake_docker)
    build = next(c for c in made if c[0] == "build")
    assert f"{IMAGE}:buildcache" in build
    pushes = [c for c in made if c[0] == "push"]
    assert pushes == [["push", f"{IMAGE}:{SHA}"], ["push", f"{IMAGE}:buildcache"]]
    assert ["tag", f"{IMAGE}:{SHA}", f"{IMAGE}:buildcache"] in made
    assert f"build cache: {IMAGE}:buildcache now points at this image" in log
    assert "::warning" not in log


@pytest.mark.usefixtures("on_path")
def test_a_missing_cache_is_a_warning_and_the_build_runs_without_it(
    tmp_path: Path, fake_docker: Path
) -> None:
    fail(fake_docker, manifest_inspect="no such manifest: registry.example.com/team/app:buildcache")
    log = run_build_and_push(tmp_path, settings(tmp_path))
    build = next(c for c in calls(fake_docker) if c[0] == "build")
    assert "--cache-from" not in build
    assert "--cache-to" in build  # written, so the next fresh runner has it
    assert "::warning title=No build cache::" in log
    assert "not in the registry yet" in log


@pytest.mark.usefixtures("on_path")
def test_a_refused_cache_write_is_a_warning_not_a_failed_deploy(
    tmp_path: Path, fake_docker: Path
) -> None:
    # Only the cache tag's push is refused; the image's own push goes through.
    (fake_docker.parent / "fail.json").write_text(
        json.dumps(
            {f"push {IMAGE}:buildcache": "denied: requested access to the resource is denied"}
        )
    )
    stream = io.StringIO()
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    run = make_run(
        settings(tmp_path), Reporter(github=True, stream=stream), real_services(os.environ)
    )
    build_push_and_move_the_cache(run)
    outcome = run.outcome
    assert outcome.digest == "sha256:" + "ab" * 32
    log = stream.getvalue()
    assert "::warning title=Build cache not written::" in log
    assert "denied: requested access" in log


@pytest.mark.usefixtures("on_path")
def test_build_cache_false_neither_reads_nor_writes_a_cache(
    tmp_path: Path, fake_docker: Path
) -> None:
    run_build_and_push(tmp_path, settings(tmp_path, build_cache=""))
    made = calls(fake_docker)
    build = next(c for c in made if c[0] == "build")
    assert "--cache-from" not in build and "--cache-to" not in build
    assert [c for c in made if c[0] == "push"] == [["push", f"{IMAGE}:{SHA}"]]
    assert not any(c[:2] == ["manifest", "inspect"] and c[-1].endswith(":buildcache") for c in made)


BUILD_SECRETS = (
    ("pip_token", "pypi-AgEIcHlwaS5vcmc-" + "x" * 20),
    ("npmrc", "//r/:_authToken=abc\nx=1"),
)


def test_build_secrets_reach_the_cli_as_private_files_and_never_as_argv_or_env(
    tmp_path: Path, fake_docker: Path
) -> None:
    docker = Docker(docker=str(fake_docker), env=os.environ)
    request = BuildRequest(
        ref=f"{IMAGE}:{SHA}",
        context=tmp_path,
        dockerfile=tmp_path / "Dockerfile",
        secrets=BUILD_SECRETS,
    )
    docker.build(request, lambda _: None)
    docker.close()
    (build,) = [c for c in calls(fake_docker) if c[0] == "build"]
    specs = [build[i + 1] for i, arg in enumerate(build) if arg == "--secret"]
    assert [spec.split(",")[0] for spec in specs] == ["id=pip_token", "id=npmrc"]
    seen = json.loads((fake_docker.parent / "docker-calls.jsonl.secrets").read_text())
    files = [seen["files"][spec.split(",src=", 1)[1]] for spec in specs]
    assert [f["text"] for f in files] == [value for _, value in BUILD_SECRETS]
    assert {f["mode"] for f in files} == {"0o600"}
    assert {f["dir_mode"] for f in files} == {"0o700"}
    for _, value in BUILD_SECRETS:
        assert value not in json.dumps(build)
        assert value not in json.dumps(seen["environ"])
    for spec in specs:  # removed once the build is over
        assert not Path(spec.split(",src=", 1)[1]).exists()


def test_build_secrets_are_removed_when_the_build_fails(tmp_path: Path, fake_docker: Path) -> None:
    fail(fake_docker, build="ERROR: failed to solve")
    docker = Docker(docker=str(fake_docker), env=os.environ)
    request = BuildRequest(
        ref=f"{IMAGE}:{SHA}", context=tmp_path, dockerfile=tmp_path / "D", secrets=BUILD_SECRETS
    )
    with pytest.raises(InputError):
        docker.build(request, lambda _: None)
    docker.close()
    (build,) = [c for c in calls(fake_docker) if c[0] == "build"]
    for spec in (build[i + 1] for i, arg in enumerate(build) if arg == "--secret"):
        assert not Path(spec.split(",src=", 1)[1]).parent.exists()


@pytest.mark.usefixtures("on_path")
def test_without_buildx_the_legacy_builder_builds_without_cache_and_refuses_secrets(
    tmp_path: Path, fake_docker: Path
) -> None:
    fail(fake_docker, buildx="docker: 'buildx' is not a docker command.")
    log = run_build_and_push(tmp_path, settings(tmp_path))
    made = calls(fake_docker)
    build = next(c for c in made if c[0] == "build")
    assert "--cache-from" not in build and "--cache-to" not in build
    assert [c for c in made if c[0] == "push"] == [["push", f"{IMAGE}:{SHA}"]]
    assert "build cache: off (this docker CLI builds without BuildKit" in log
    with pytest.raises(InputError, match="build secrets need BuildKit") as info:
        run_build_and_push(tmp_path, settings(tmp_path, build_secrets=BUILD_SECRETS))
    assert info.value.where == "build-secrets"


@pytest.mark.parametrize(
    ("credentials", "login"),
    [
        (
            {"registry_username": "", "registry_password": ""},
            "docr-user",
        ),  # short-lived, from the API
        ({}, "bot"),  # plain registry credentials
    ],
)
def test_the_build_cache_is_read_and_written_with_the_deploys_own_registry_login(
    tmp_path: Path, credentials: dict[str, str], login: str
) -> None:
    from tests.unit.test_pipeline import World

    image = "registry.digitalocean.com/team/app"
    world = World(tmp_path, build_cache=f"{image}:buildcache", **credentials)
    world.deploy()
    docker_calls = [c for c in world.journal if c.startswith("docker")]
    assert [user for _, user, _ in world.docker.logins] == [login]
    # Logged in first, in the same docker config: then the cache is read (alongside the
    # question whether the image is there already), used and moved.
    assert sorted(docker_calls[:2]) == [
        "docker check_daemon",  # asked alongside the login
        "docker login registry.digitalocean.com",
    ]
    assert sorted(docker_calls[2:4]) == [
        f"docker cache_state {image}:buildcache",
        f"docker exists {image}:{'0' * 40}",
    ]
    assert docker_calls[4:] == [
        f"docker build {image}:{'0' * 40}",
        f"docker push {image}:{'0' * 40}",
        f"docker push_cache {image}:buildcache",
    ]


# -- attestations -------------------------------------------------------------------------------


def build_args(fake_docker: Path) -> list[str]:
    return next(c for c in calls(fake_docker) if c[0] == "build")


@pytest.mark.usefixtures("on_path")
def test_by_default_the_build_asks_for_no_attestations_on_any_engine(
    tmp_path: Path, fake_docker: Path
) -> None:
    log = run_build_and_push(tmp_path, settings(tmp_path))
    build = build_args(fake_docker)
    assert "--provenance=false" in build and "--sbom=false" in build
    assert not any(c[0] == "info" for c in calls(fake_docker))  # nothing asked: no question
    assert "attestations" not in log


@pytest.mark.usefixtures("on_path")
@pytest.mark.parametrize(
    ("provenance", "sbom", "flags", "line"),
    [
        (
            "min",
            False,
            ["--provenance=mode=min", "--sbom=false"],
            "attestations: provenance (min),",
        ),
        ("max", True, ["--provenance=mode=max", "--sbom=true"], "provenance (max) and SBOM"),
        ("false", True, ["--provenance=false", "--sbom=true"], "attestations: SBOM, pushed"),
    ],
)
def test_with_the_containerd_store_the_chosen_attestations_reach_the_build(
    tmp_path: Path, fake_docker: Path, provenance: str, sbom: bool, flags: list[str], line: str
) -> None:
    (fake_docker.parent / "containerd-store").touch()
    log = run_build_and_push(tmp_path, settings(tmp_path, provenance=provenance, sbom=sbom))
    build = build_args(fake_docker)
    assert [a for a in build if a.startswith(("--provenance", "--sbom"))] == flags
    assert line in log and "::warning" not in log


@pytest.mark.usefixtures("on_path")
def test_the_classic_image_store_gets_none_and_a_one_line_warning(
    tmp_path: Path, fake_docker: Path
) -> None:
    log = run_build_and_push(tmp_path, settings(tmp_path, provenance="max", sbom=True))
    build = build_args(fake_docker)
    assert "--provenance=false" in build and "--sbom=false" in build
    (warning,) = [t for t in log.splitlines() if t.startswith("::warning title=No attestations")]
    assert "provenance (max) and SBOM attestations are unavailable: this Docker engine's " in (
        warning
    )


@pytest.mark.usefixtures("on_path")
def test_the_legacy_builder_gets_no_attestation_flags_and_a_one_line_warning(
    tmp_path: Path, fake_docker: Path
) -> None:
    fail(fake_docker, buildx="docker: 'buildx' is not a docker command.")
    log = run_build_and_push(tmp_path, settings(tmp_path, provenance="min"))
    build = build_args(fake_docker)
    assert not any(a.startswith(("--provenance", "--sbom")) for a in build)
    assert (
        "::warning title=No attestations::provenance (min) attestations are unavailable: this "
        "docker CLI builds without BuildKit (no buildx plugin)"
    ) in log


@pytest.mark.parametrize(
    ("text", "value"),
    [("", "false"), ("false", "false"), ("true", "min"), ("mode=max", "max"), ("MAX", "max")],
)
def test_the_provenance_input_reads_false_true_min_and_max(
    tmp_path: Path, text: str, value: str
) -> None:
    from tests.unit.test_retention import parse

    assert parse(tmp_path, provenance=text).provenance == value


def test_a_bad_provenance_input_is_one_line(tmp_path: Path) -> None:
    from tests.unit.test_retention import parse

    with pytest.raises(InputError) as caught:
        parse(tmp_path, provenance="full")
    assert str(caught.value).startswith("provenance: must be false, true (mode=min) or max")


class _HangingCachePush:
    """A docker CLI whose cache push hangs until released (a registry that stopped answering)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.closed = False

    def push_cache(self, ref: str, cache_ref: str) -> str:
        self.release.wait(30)
        return ""

    def close(self) -> None:
        self.closed = True


def test_a_cancelled_deploy_does_not_wait_for_the_cache_tag_and_says_so(tmp_path: Path) -> None:
    docker = _HangingCachePush()
    stream = io.StringIO()
    cache = CacheTag(settings(tmp_path), docker)  # type: ignore[arg-type]
    started = time.monotonic()
    cache.finish(Reporter(github=True, stream=stream), cancelled=True)
    assert time.monotonic() - started < 5
    docker.release.set()
    assert docker.closed
    assert "::warning title=Build cache not written::the build cache" in stream.getvalue()
    assert "was not moved to this image: the deploy was cancelled first" in stream.getvalue()


def test_a_finished_deploy_waits_for_the_cache_tag(tmp_path: Path) -> None:
    docker = _HangingCachePush()
    stream = io.StringIO()
    cache = CacheTag(settings(tmp_path), docker)  # type: ignore[arg-type]
    threading.Timer(0.3, docker.release.set).start()
    cache.finish(Reporter(github=True, stream=stream))
    assert docker.closed
    assert "now points at this image" in stream.getvalue()
