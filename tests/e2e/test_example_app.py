"""The example app (examples/antisocial) as its users get it: built from its Dockerfile on the
stack's base image, it passes Django's deployment checks and its own tests inside the container,
serves its health endpoint and its offline-compressed static files, and run.sh refuses commands
it does not know. Deployed by the action onto the stack's real node (a kubelet, not kwok) with
Postgres and Redis, it migrates, serves the board through its Service, its worker runs the task a
post queues, beat starts and sends its scheduled task to the worker, and gunicorn logs no error: the checks `scripts/demo` prints."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.harness import app_checks, backing_services, demo, real_node
from tests.harness.runner import login_to_stack_registry

pytestmark = pytest.mark.docker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "antisocial"
# A cold build installs the pinned requirements from PyPI through the machine's CA.
BUILD_TIMEOUT = 900
RUN_TIMEOUT = 120


def docker(
    stack: Mapping[str, str],
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Runs the docker CLI against the stack's daemon. Values in `env` reach containers through
    `-e NAME` (no value in argv), the way the runner passes inputs."""
    process_env = dict(os.environ)
    if "DOCKER_HOST" in stack:
        process_env["DOCKER_HOST"] = stack["DOCKER_HOST"]
    process_env.update(env or {})
    return subprocess.run(
        ["docker", *args],
        env=process_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def production_env() -> dict[str, str]:
    """What the ConfigMap and Secret give the containers, with a fresh key."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "antisocial.example.com,localhost",
        "CSRF_TRUSTED_ORIGINS": "https://antisocial.example.com",
    }


def env_flags(env: Mapping[str, str]) -> list[str]:
    return [flag for name in env for flag in ("-e", name)]


def git_checkout(where: Path) -> Path:
    """The example as Actions checks it out: a git work tree with its history in .git."""
    checkout = where / "antisocial"
    shutil.copytree(EXAMPLE, checkout, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    for args in (("init", "-q"), ("add", "-A"), ("commit", "-q", "-m", "the example")):
        subprocess.run(["git", *args], cwd=checkout, env=env, check=True, timeout=60)
    assert (checkout / ".git" / "HEAD").is_file()
    return checkout


@pytest.fixture(scope="module")
def example_image(
    stack: Mapping[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    tag = f"djk-test/antisocial:{uuid.uuid4().hex[:12]}"
    checkout = git_checkout(tmp_path_factory.mktemp("checkout"))
    started = time.monotonic()
    build = docker(
        stack,
        "build",
        "--network=host",
        "--build-arg",
        f"BASE_IMAGE={stack['DJK_BASE_IMAGE']}",
        "--tag",
        tag,
        str(checkout),
        # The classic builder: the stack's daemon has no BuildKit, and it runs RUN steps on the
        # host network, which is how pip reaches PyPI here.
        env={"DOCKER_BUILDKIT": "0"},
        timeout=BUILD_TIMEOUT,
    )
    assert build.returncode == 0, output(build)
    print(f"examples/antisocial image {tag} built in {time.monotonic() - started:.1f}s")
    try:
        yield tag
    finally:
        docker(stack, "rmi", "--force", tag)


def manage(
    stack: Mapping[str, str], image: str, env: Mapping[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return docker(
        stack,
        "run",
        "--rm",
        "--network=none",
        *env_flags(env),
        "--entrypoint",
        "python",
        image,
        "manage.py",
        *args,
        env=env,
    )


def test_check_deploy_passes_inside_the_built_image(
    stack: Mapping[str, str], example_image: str
) -> None:
    result = manage(
        stack, example_image, production_env(), "check", "--deploy", "--fail-level", "WARNING"
    )
    assert result.returncode == 0, output(result)
    assert result.stdout.strip() == "System check identified no issues (0 silenced).", output(
        result
    )


def test_check_deploy_fails_when_the_settings_are_not_production_ones(
    stack: Mapping[str, str], example_image: str
) -> None:
    # The same check must be able to fail, or the test above proves nothing.
    env = {**production_env(), "DEBUG": "true", "SECURE_HSTS_SECONDS": "0"}
    result = manage(stack, example_image, env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0, output(result)
    assert "security.W018" in result.stderr, output(result)  # DEBUG on
    assert "security.W004" in result.stderr, output(result)  # no HSTS


def test_the_apps_own_tests_pass_inside_the_built_image(
    stack: Mapping[str, str], example_image: str
) -> None:
    env = {**production_env(), "DATABASE_URL": "sqlite:////tmp/antisocial.sqlite3"}
    result = manage(stack, example_image, env, "test", "--noinput")
    assert result.returncode == 0, output(result)
    assert re.search(r"^Ran [1-9]\d* tests? in ", result.stderr, re.MULTILINE), output(result)
    assert re.search(r"^OK$", result.stderr, re.MULTILINE), output(result)


def test_the_models_need_no_migration_the_app_lacks(
    stack: Mapping[str, str], example_image: str
) -> None:
    env = {**production_env(), "DATABASE_URL": "sqlite:////tmp/antisocial.sqlite3"}
    result = manage(stack, example_image, env, "makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, output(result)
    assert result.stdout.strip() == "No changes detected", output(result)


def test_the_image_built_from_a_git_checkout_carries_no_repository_history(
    stack: Mapping[str, str], example_image: str
) -> None:
    result = docker(
        stack,
        "run",
        "--rm",
        "--network=none",
        "--entrypoint",
        "python",
        example_image,
        "-c",
        "import os; print(sorted(os.listdir('/app')))",
    )
    assert result.returncode == 0, output(result)
    listing = result.stdout.strip()
    assert "'manage.py'" in listing, listing
    assert "'.git'" not in listing, listing


def test_run_sh_rejects_an_unknown_command(stack: Mapping[str, str], example_image: str) -> None:
    result = docker(stack, "run", "--rm", "--network=none", example_image, "serve")
    assert result.returncode == 64, output(result)
    assert result.stderr.strip() == (
        "run.sh: unknown command 'serve'; "
        "usage: run.sh {web|worker|beat|migrate|collectstatic|compress}"
    ), output(result)


def test_run_sh_names_a_missing_setting_in_one_line(
    stack: Mapping[str, str], example_image: str
) -> None:
    env = {"SECRET_KEY": secrets.token_urlsafe(50)}
    result = docker(
        stack, "run", "--rm", "--network=none", *env_flags(env), example_image, "web", env=env
    )
    assert result.returncode == 78, output(result)
    assert result.stderr.strip() == (
        "run.sh web: DATABASE_URL is not set "
        "(it comes from the antisocial-secrets Secret or antisocial-config ConfigMap)"
    ), output(result)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=dict(headers))  # noqa: S310 (loopback only)
    # No redirect following: a 301 to https would hide what the app answered.
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_web_serves_healthz_and_the_compressed_static_files(
    stack: Mapping[str, str], example_image: str
) -> None:
    port = free_port()
    name = f"djk-antisocial-{uuid.uuid4().hex[:8]}"
    env = {
        **production_env(),
        "DATABASE_URL": "sqlite:////tmp/antisocial.sqlite3",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
    }
    started = docker(
        stack,
        "run",
        "--detach",
        "--name",
        name,
        "--network=host",
        *env_flags(env),
        "--entrypoint",
        "sh",
        example_image,
        "-c",
        "./run.sh migrate && exec ./run.sh web",
        env=env,
    )
    assert started.returncode == 0, output(started)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                # A probe's request: plain HTTP, the pod IP as Host.
                status, body = http_get(f"{base}/healthz", {"Host": f"10.244.0.9:{port}"})
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"web never answered /healthz\n{output(docker(stack, 'logs', name))}"
                    )
                time.sleep(0.5)
        assert (status, body) == (200, b"ok\n")

        behind_tls = {"Host": "antisocial.example.com", "X-Forwarded-Proto": "https"}
        status, page = http_get(f"{base}/", behind_tls)
        assert status == 200, page[:2000]
        bundles = re.findall(rb'"(/static/CACHE/(?:css|js)/output\.[0-9a-f]+\.(?:css|js))"', page)
        assert len(bundles) == 2, page[:2000]
        for bundle in bundles:
            status, content = http_get(base + bundle.decode(), behind_tls)
            assert status == 200, bundle
            assert content.strip(), bundle

        status, _ = http_get(f"{base}/", {"Host": "antisocial.example.com"})
        assert status == 301  # plain HTTP from outside is sent to https

        # /app is read-only to the app's user (and its HOME): gunicorn's control socket, which
        # would go to /app/.gunicorn, is off rather than an error line in every web pod's log.
        log = docker(stack, "logs", name)
        assert "Booting worker" in log.stderr, output(log)
        assert app_checks.CONTROL_SOCKET_ERROR not in log.stdout + log.stderr, output(log)
    finally:
        docker(stack, "rm", "--force", name)


@pytest.fixture(scope="module")
def service_images(stack: Mapping[str, str]) -> dict[str, str]:
    """Postgres and Redis on the stack's registry, built once per content (the demo's too)."""
    started = time.monotonic()
    images = backing_services.service_images(stack, log=print)
    print(f"Postgres and Redis images ready in {time.monotonic() - started:.1f}s")
    return images


def test_the_action_deploys_the_example_onto_the_real_node_where_it_serves_and_its_worker_works(
    stack: Mapping[str, str], example_image: str, service_images: dict[str, str]
) -> None:
    real_node.require(stack)
    namespace = f"demo-e2e-{uuid.uuid4().hex[:8]}"
    sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    repository = "djk-e2e/antisocial-real-node"
    # The module's image as the commit's: the action finds it on the registry and skips the build.
    with tempfile.TemporaryDirectory(prefix="djk-e2e-docker-") as config:
        login_to_stack_registry(stack, config)
        ref = f"{stack['DJK_REGISTRY']}/{repository}:{sha}"
        for args in (("tag", example_image, ref), ("push", "--quiet", ref), ("rmi", ref)):
            done = docker(stack, *args, env={"DOCKER_CONFIG": config}, timeout=300)
            assert done.returncode == 0, output(done)
    try:
        app_secrets = backing_services.prepare_namespace(
            stack, namespace, service_images, log=print
        )
        run = demo.deploy(
            stack, namespace, app_secrets, repository=repository, sha=sha, timeout=600
        )
        assert run.exit_code == 0, run.log[-6000:]
        assert f"{ref} is already in the registry: not rebuilt" in run.log, run.log
        verdicts = {d["name"]: d["result"] for d in json.loads(run.outputs["deployments"])}
        migrate = [name for name in verdicts if name.startswith("antisocial-migrate-")]
        assert len(migrate) == 1, verdicts
        assert set(verdicts.values()) == {"succeeded"}, verdicts
        assert {"antisocial-web", "antisocial-worker", "antisocial-beat"} <= set(verdicts)
        migrated = real_node.kubectl(stack, "-n", namespace, "logs", f"job/{migrate[0]}").stdout
        assert "Applying board.0002_post_words... OK" in migrated, migrated  # in Postgres

        checks = app_checks.check_app(stack, namespace)
        print(app_checks.report(checks))
        assert checks.problems == []
        assert (checks.status, checks.title) == (200, "antisocial")
        assert checks.post_status == 302
        assert checks.words_on_page == "8 words"  # "hello from the demo on the real node"
        assert checks.author in checks.task_line and " succeeded in " in checks.task_line
        assert checks.beat_line == "beat: Starting..."
        # beat really schedules: it sent prune-old-posts through Redis and the worker ran it.
        assert checks.scheduled_line.startswith(
            "Scheduler: Sending due task prune-old-posts (board.tasks.prune_old_posts); worker: "
            "Task board.tasks.prune_old_posts["
        ), checks.scheduled_line
        assert checks.control_socket_errors == []
        # Every pod ran on the real node: no kwok pod can answer, log or run a task.
        nodes = real_node.kubectl(
            stack, "-n", namespace, "get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}"
        ).stdout.split()
        assert set(nodes) == {stack["DJK_REAL_NODE"]}, nodes
    finally:
        real_node.kubectl(stack, "delete", "namespace", namespace, "--wait=false", check=False)
