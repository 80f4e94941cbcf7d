"""The demo deploy (`scripts/demo`): the example app, deployed by the action onto the stack's real node.

The example is copied into a fresh workspace, as an app repository checked out by
actions/checkout would be, and the action runs against it the way the runner runs it: built from
this repository's Dockerfile, inputs as INPUT_*, the GitHub files mounted. It builds the app image,
pushes it to the stack's registry, gets a kubeconfig from the DigitalOcean stand-in, applies, runs
the `migrate` Job to completion and then watches the three rollouts (web, worker, beat).

The namespace's pods run on the stack's real node (a kubelet with containerd, not kwok), next to
the backing services the demo starts first: Postgres and Redis, built from Debian's packages on
the stack's base image (tests/harness/services/) and pulled by the node from the stack's registry.
They are the demo's, not the example's: examples/antisocial/deploy/ stays what a user deploys.
After the deploy the demo checks what a user would: the board page through the web Service
(`kubectl port-forward`), a post whose word count the Celery worker fills in, beat's start, and
gunicorn's log. tests/e2e/test_example_app.py runs the same checks.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import html
import json
import os
import re
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.runner import (
    REPO_ROOT,
    STACK_SCRIPT,
    ActionRun,
    HarnessError,
    run_action,
    stack_environment,
)

EXAMPLE = REPO_ROOT / "examples" / "antisocial"
SERVICES = Path(__file__).resolve().parent / "services"
MANIFESTS = (
    "deploy/configmap.yaml\ndeploy/service.yaml\ndeploy/migrate.yaml\ndeploy/deployment.yaml"
)
# The example's ConfigMap: the host name and scheme its ingress would send.
APP_HOST = "antisocial.example.com"
DB_USER = DB_NAME = "antisocial"
PULL_SECRET = "stack-registry"
DB_SECRET = "demo-db"
CONTROL_SOCKET_ERROR = "Control server error"

Log = Callable[[str], None]


def _print(line: str) -> None:
    print(f"demo: {line}", flush=True)


# -- images -------------------------------------------------------------------------------------


def _docker_env(stack: Mapping[str, str], config: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["DOCKER_HOST"] = stack["DOCKER_HOST"]
    if config:
        env["DOCKER_CONFIG"] = config
    return env


def _docker(
    stack: Mapping[str, str], *args: str, config: str | None = None, timeout: float = 120
) -> str:
    result = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        env=_docker_env(stack, config),
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise HarnessError(f"docker {' '.join(args[:2])} failed:\n{tail}")
    return result.stdout


def _content_key(stack: Mapping[str, str], context: Path) -> str:
    """What the image is made of: its build directory and the base image's id (a rebuilt base
    means a new key). The Debian packages are whatever bookworm has when the key is new."""
    digest = hashlib.sha256()
    base_id = _docker(stack, "image", "inspect", "-f", "{{.Id}}", stack["DJK_BASE_IMAGE"])
    digest.update(base_id.strip().encode() + b"\0")
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _registry_has(stack: Mapping[str, str], repository: str, tag: str) -> bool:
    """Whether the stack's registry (plain HTTP on loopback) has repository:tag."""
    auth = base64.b64encode(
        f"{stack['DJK_REGISTRY_USER']}:{stack['DJK_REGISTRY_PASSWORD']}".encode()
    ).decode()
    request = urllib.request.Request(
        f"http://{stack['DJK_REGISTRY']}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={
            "Authorization": f"Basic {auth}",
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
            "application/vnd.oci.image.manifest.v1+json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status) == 200
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise HarnessError(f"registry {stack['DJK_REGISTRY']}: HTTP {error.code}") from None
    except OSError as error:
        raise HarnessError(f"registry {stack['DJK_REGISTRY']}: {error}") from None


def service_images(stack: Mapping[str, str], log: Log = _print) -> dict[str, str]:
    """Postgres and Redis on the stack's registry, tagged by content key: built (Debian packages
    on the stack's base image, through the machine's proxy with --network=host) and pushed only
    when the registry lacks that key, so a rerun costs two HEAD requests."""
    images: dict[str, str] = {}
    for name in ("postgres", "redis"):
        context = SERVICES / name
        repository = f"djk-demo/{name}"
        key = _content_key(stack, context)
        ref = f"{stack['DJK_REGISTRY']}/{repository}:{key}"
        images[name] = ref
        if _registry_has(stack, repository, key):
            log(f"{name}: {ref} is on the registry already")
            continue
        started = time.monotonic()
        have_local = subprocess.run(
            ["docker", "image", "inspect", ref],
            capture_output=True,
            env=_docker_env(stack),
            check=False,
        )
        if have_local.returncode != 0:
            log(f"{name}: building {ref} from Debian packages on {stack['DJK_BASE_IMAGE']}")
            # The classic builder: the stack's daemon has no BuildKit, and RUN steps use the
            # host's network, which is how apt reaches Debian's mirror here.
            result = subprocess.run(
                [
                    "docker",
                    "build",
                    "--network=host",
                    "--build-arg",
                    f"BASE_IMAGE={stack['DJK_BASE_IMAGE']}",
                    "--tag",
                    ref,
                    str(context),
                ],
                capture_output=True,
                text=True,
                env={**_docker_env(stack), "DOCKER_BUILDKIT": "0"},
                timeout=900,
                check=False,
            )
            if result.returncode != 0:
                tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
                raise HarnessError(f"building {ref} failed:\n{tail}")
        with tempfile.TemporaryDirectory(prefix="djk-demo-docker-") as config:
            login = subprocess.run(
                [
                    "docker",
                    "login",
                    "--username",
                    stack["DJK_REGISTRY_USER"],
                    "--password-stdin",
                    stack["DJK_REGISTRY"],
                ],
                input=stack["DJK_REGISTRY_PASSWORD"],
                capture_output=True,
                text=True,
                env=_docker_env(stack, config),
                timeout=60,
                check=False,
            )
            if login.returncode != 0:
                raise HarnessError(f"docker login {stack['DJK_REGISTRY']}: {login.stderr.strip()}")
            _docker(stack, "push", "--quiet", ref, config=config, timeout=600)
        log(f"{name}: {ref} built and pushed in {time.monotonic() - started:.1f}s")
    return images


# -- the namespace and its backing services -----------------------------------------------------


def kubectl(
    stack: Mapping[str, str],
    *args: str,
    stdin: str | None = None,
    timeout: float = 60,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", stack["KUBECONFIG"], *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise HarnessError(f"kubectl {' '.join(args[:3])}: {result.stderr.strip()}")
    return result


def _apply(stack: Mapping[str, str], namespace: str, *objects: Mapping[str, Any]) -> None:
    # On stdin, never in argv: the Secrets among them carry passwords.
    documents = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    kubectl(stack, "-n", namespace, "apply", "-f", "-", stdin=documents)


def _db_password(stack: Mapping[str, str], namespace: str) -> str:
    """The database's password: the one a previous run stored (its Postgres keeps it), else new."""
    found = kubectl(
        stack,
        "-n",
        namespace,
        "get",
        "secret",
        DB_SECRET,
        "-o",
        "jsonpath={.data.POSTGRES_PASSWORD}",
        check=False,
    )
    if found.returncode == 0 and found.stdout:
        return base64.b64decode(found.stdout).decode()
    return secrets.token_urlsafe(24)


def _workload(
    kind: str, name: str, image: str, port: int, probe: Mapping[str, Any], **pod: Any
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "ports": [{"containerPort": port}],
        "readinessProbe": {**probe, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False},
        **pod.pop("container", {}),
    }
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "containers": [container],
                # The images run as their own numeric users (see their Dockerfiles).
                "securityContext": {"runAsNonRoot": True},
                "terminationGracePeriodSeconds": 5,
                **pod,
            },
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": port}]},
    }
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec},
            service,
        ],
    }


def prepare_namespace(
    stack: Mapping[str, str], namespace: str, images: Mapping[str, str], log: Log = _print
) -> dict[str, str]:
    """The namespace on the real node, able to pull from the stack's registry, with Postgres
    (`db`) and Redis (`redis`) Ready in it. Returns the app's secrets (the env file the action
    turns into the Secret antisocial-secrets)."""
    placed = subprocess.run(
        [sys.executable, str(STACK_SCRIPT), "real-node-namespace", namespace],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if placed.returncode != 0:
        raise HarnessError((placed.stderr or placed.stdout).strip())
    auth = base64.b64encode(
        f"{stack['DJK_REGISTRY_USER']}:{stack['DJK_REGISTRY_PASSWORD']}".encode()
    ).decode()
    password = _db_password(stack, namespace)
    _apply(
        stack,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": PULL_SECRET},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {
                ".dockerconfigjson": json.dumps({"auths": {stack["DJK_REGISTRY"]: {"auth": auth}}})
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": DB_SECRET},
            "stringData": {"POSTGRES_PASSWORD": password},
        },
    )
    # As DOKS's registry integration does for DOCR (the action's link-registry input): the pull
    # secret goes on the namespace's default ServiceAccount, so every pod, the example's
    # untouched manifests included, pulls from the registry without naming a secret.
    patch = json.dumps({"imagePullSecrets": [{"name": PULL_SECRET}]})
    for _ in range(
        30
    ):  # the ServiceAccount controller makes `default` a moment after the namespace
        if (
            kubectl(
                stack, "-n", namespace, "get", "serviceaccount", "default", check=False
            ).returncode
            == 0
        ):
            break
        time.sleep(1)
    kubectl(stack, "-n", namespace, "patch", "serviceaccount", "default", "-p", patch)

    db = _workload(
        "StatefulSet",
        "db",
        images["postgres"],
        5432,
        {"exec": {"command": ["pg_isready", "-h", "127.0.0.1", "-U", DB_USER, "-d", DB_NAME]}},
        container={
            "env": [
                {"name": "POSTGRES_USER", "value": DB_USER},
                {"name": "POSTGRES_DB", "value": DB_NAME},
                {
                    "name": "POSTGRES_PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": DB_SECRET, "key": "POSTGRES_PASSWORD"}},
                },
            ],
            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
        },
        # The pod's own disk: the demo's data lives as long as the pod (no storage class here).
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    redis = _workload("Deployment", "redis", images["redis"], 6379, {"tcpSocket": {"port": 6379}})
    _apply(stack, namespace, *db["items"], *redis["items"])
    started = time.monotonic()
    for workload in ("statefulset/db", "deployment/redis"):
        done = kubectl(
            stack,
            "-n",
            namespace,
            "rollout",
            "status",
            workload,
            "--timeout=180s",
            timeout=200,
            check=False,
        )
        if done.returncode != 0:
            pods = kubectl(stack, "-n", namespace, "get", "pods", check=False).stdout
            raise HarnessError(
                f"{workload} in {namespace} did not become ready: {done.stderr.strip()}\n{pods}"
            )
    log(
        f"Postgres (db) and Redis (redis) ready in {namespace} after {time.monotonic() - started:.1f}s"
    )
    server = f"{{}}.{namespace}.svc"
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": f"postgres://{DB_USER}:{password}@{server.format('db')}:5432/{DB_NAME}",
        "CELERY_BROKER_URL": f"redis://{server.format('redis')}:6379/0",
    }


# -- the deploy ---------------------------------------------------------------------------------


def deploy(
    stack: Mapping[str, str],
    namespace: str,
    app_secrets: Mapping[str, str],
    *,
    repository: str,
    sha: str,
    echo: Log | None = None,
    timeout: float = 1800,
) -> ActionRun:
    """The action on a fresh copy of the example: build (skipped when repository:sha is on the
    registry already), push, apply, the migrate Job, the three rollouts."""
    with tempfile.TemporaryDirectory(prefix="djk-demo-") as tmp:
        workspace = Path(tmp) / "antisocial"
        shutil.copytree(EXAMPLE, workspace, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        inputs = {
            "image": f"{stack['DJK_REGISTRY']}/{repository}",
            "sha": sha,
            "digitalocean-token": stack["DIGITALOCEAN_ACCESS_TOKEN"],
            "cluster": stack["DJK_CLUSTER_NAME"],
            "manifests": MANIFESTS,
            "namespace": namespace,
            "registry-username": stack["DJK_REGISTRY_USER"],
            "registry-password": stack["DJK_REGISTRY_PASSWORD"],
            "build-args": f"BASE_IMAGE={stack['DJK_BASE_IMAGE']}",
            # The stack's Docker daemon has no bridge network: pip in RUN steps uses the host's.
            "build-network": "host",
            "secrets": "".join(f"{name}={value}\n" for name, value in app_secrets.items()),
            "secret-name": "antisocial-secrets",
            # The demo's Postgres keeps its data in the pod (emptyDir): a db pod that restarted
            # (the node did, or its image changed) is empty although this commit's migrate Job
            # completed before. Migrations are idempotent: run them at every deploy.
            "rerun-first": "true",
            "timeout": "5m",
        }
        return run_action(
            inputs,
            workspace,
            stack=stack,
            timeout=timeout,
            echo=echo,
            extra_env={"DIGITALOCEAN_API_URL": stack["DIGITALOCEAN_API_URL"], "GITHUB_SHA": sha},
        )


# -- what a user checks -------------------------------------------------------------------------


@dataclass
class Checks:
    """What the running app showed, each with the evidence a user would look at."""

    status: int = 0
    title: str = ""
    post_status: int = 0
    author: str = ""
    post_text: str = ""
    words_on_page: str = ""  # e.g. "5 words", filled in by the worker
    task_line: str = ""  # the worker's "Task board.tasks.count_words[…] succeeded …"
    beat_line: str = ""  # beat's "beat: Starting..."
    control_socket_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@contextlib.contextmanager
def port_forward(stack: Mapping[str, str], namespace: str, target: str, port: int) -> Iterator[int]:
    """`kubectl port-forward TARGET :PORT` on 127.0.0.1, as a user would: the local port."""
    process = subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            stack["KUBECONFIG"],
            "-n",
            namespace,
            "port-forward",
            "--address",
            "127.0.0.1",
            target,
            f":{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ->", line)
        if match is None:
            process.kill()
            raise HarnessError(
                f"kubectl port-forward {target}: {line.strip() or process.stderr.read().strip()}"
            )
        yield int(match.group(1))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _http(
    url: str, headers: Mapping[str, str], data: bytes | None = None
) -> tuple[int, str, list[str]]:
    """Status, body and Set-Cookie headers, following no redirect."""
    request = urllib.request.Request(url, data=data, headers=dict(headers))  # noqa: S310
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return (
                int(response.status),
                response.read().decode(errors="replace"),
                response.headers.get_all("Set-Cookie") or [],
            )
    except urllib.error.HTTPError as error:
        return (
            error.code,
            error.read().decode(errors="replace"),
            error.headers.get_all("Set-Cookie") or [],
        )


def _logs(stack: Mapping[str, str], namespace: str, component: str) -> str:
    # --tail=-1: with a selector kubectl shows only 10 lines per pod otherwise.
    return kubectl(
        stack,
        "-n",
        namespace,
        "logs",
        "-l",
        f"app.kubernetes.io/name=antisocial,app.kubernetes.io/component={component}",
        "--tail=-1",
        "--prefix",
        check=False,
    ).stdout


def check_app(stack: Mapping[str, str], namespace: str, wait: float = 60) -> Checks:
    """A user's checks of the deployed app: the board page through the web Service, a post whose
    word count the worker fills in (a Celery task queued by the view), beat's start, gunicorn's
    log. Everything goes through `kubectl port-forward` and `kubectl logs`, nothing else."""
    checks = Checks()
    # Through the load balancer or ingress in front of it: the public host, TLS ended there.
    behind_tls = {"Host": APP_HOST, "X-Forwarded-Proto": "https"}
    with port_forward(stack, namespace, "service/antisocial-web", 80) as port:
        base = f"http://127.0.0.1:{port}/"
        checks.status, page, cookies = _http(base, behind_tls)
        title = re.search(r"<title>(.*?)</title>", page, re.DOTALL)
        checks.title = html.unescape(title.group(1).strip()) if title else ""
        if checks.status != 200 or checks.title != "antisocial":
            checks.problems.append(
                f"GET / answered {checks.status} with title {checks.title!r}: {page[:500]!r}"
            )
            return checks
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        cookie = next((c.split(";")[0] for c in cookies if c.startswith("csrftoken=")), "")
        checks.author = f"demo-{secrets.token_hex(3)}"
        checks.post_text = "hello from the demo on the real node"
        form = urllib.parse.urlencode(
            {
                "csrfmiddlewaretoken": token.group(1) if token else "",
                "author": checks.author,
                "text": checks.post_text,
            }
        ).encode()
        checks.post_status, body, _ = _http(
            base,
            {
                **behind_tls,
                "Cookie": cookie,
                "Origin": f"https://{APP_HOST}",
                "Referer": f"https://{APP_HOST}/",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            form,
        )
        if checks.post_status != 302:
            checks.problems.append(
                f"POST / answered {checks.post_status}, not a redirect: {body[:500]!r}"
            )
            return checks
        counted = re.compile(
            rf"<strong>{re.escape(checks.author)}</strong> {re.escape(checks.post_text)} "
            r'<span class="words">(\d+ words?)</span>'
        )
        deadline = time.monotonic() + wait
        while True:
            _, page, _ = _http(base, behind_tls)
            found = counted.search(page)
            if found:
                checks.words_on_page = found.group(1)
                break
            if time.monotonic() > deadline:
                checks.problems.append(
                    f"the post's word count never appeared on the page within {wait:.0f}s "
                    "(the worker did not run board.tasks.count_words)"
                )
                break
            time.sleep(1)

    worker = _logs(stack, namespace, "worker")
    # This post's task: the task logs the post's author, unique to this check.
    mine = re.search(rf"post \d+ by {re.escape(checks.author)} has \d+ words?$", worker, re.M)
    done = mine and re.search(
        r"Task board\.tasks\.count_words\[[0-9a-f-]+\] succeeded in .*", worker[mine.end() :]
    )
    checks.task_line = f"{mine.group(0)}; {done.group(0).strip()}" if mine and done else ""
    if not checks.task_line:
        checks.problems.append(
            f"the worker's log shows no count_words task done for {checks.author}'s post:\n"
            + worker[-3000:]
        )
    beat = _logs(stack, namespace, "beat")
    started = re.search(r"beat: Starting\.\.\.", beat)
    checks.beat_line = started.group(0) if started else ""
    if not checks.beat_line:
        checks.problems.append(f"beat's log has no 'beat: Starting...':\n{beat[-3000:]}")
    web = _logs(stack, namespace, "web")
    checks.control_socket_errors = [
        line for line in web.splitlines() if CONTROL_SOCKET_ERROR in line
    ]
    if checks.control_socket_errors:
        checks.problems.append(
            "gunicorn logged control-socket errors:\n" + "\n".join(checks.control_socket_errors)
        )
    if "Booting worker" not in web:
        checks.problems.append(f"the web log shows no gunicorn worker booting:\n{web[-3000:]}")
    return checks


def report(checks: Checks) -> str:
    lines = [
        f"GET / through `kubectl port-forward service/antisocial-web`: HTTP {checks.status}, "
        f"<title>{checks.title}</title>",
        f"POST / as {checks.author}, {checks.post_text!r}: HTTP {checks.post_status}; "
        f"the worker counted its words: {checks.words_on_page or '(never)'}",
        f"worker log: {checks.task_line or '(no count_words task done)'}",
        f"beat log: {checks.beat_line or '(beat never started)'}",
        "web log: "
        + (
            f"{len(checks.control_socket_errors)} gunicorn control-socket errors"
            if checks.control_socket_errors
            else "no gunicorn control-socket error"
        ),
    ]
    return "\n".join(f"  {line}" for line in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--namespace", default="antisocial-demo")
    parser.add_argument(
        "--sha",
        help="the commit, the image's tag (default: a digest of examples/antisocial, so a rerun "
        "reuses the image and a change to the example builds a new one)",
    )
    args = parser.parse_args()
    started = time.monotonic()
    stack = stack_environment()
    if not stack.get("DJK_REAL_NODE"):
        print(
            "demo: the stack runs no real node (DJK_REAL_NODE unset): scripts/stack up",
            file=sys.stderr,
        )
        return 1
    sha = args.sha or example_digest()
    try:
        images = service_images(stack)
        app_secrets = prepare_namespace(stack, args.namespace, images)
        _print(
            f"deploying examples/antisocial as {stack['DJK_REGISTRY']}/antisocial:{sha} "
            f"to namespace {args.namespace} (real node {stack['DJK_REAL_NODE']})"
        )
        run = deploy(
            stack,
            args.namespace,
            app_secrets,
            repository="antisocial",
            sha=sha,
            echo=lambda line: print(line, flush=True),
        )
    except (HarnessError, subprocess.TimeoutExpired) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    print("\n--- outputs (GITHUB_OUTPUT) ---")
    for name, value in run.outputs.items():
        print(
            f"{name}: {json.dumps(json.loads(value), indent=2) if name == 'deployments' else value}"
        )
    print("\n--- job summary (GITHUB_STEP_SUMMARY) ---")
    print(run.summary)
    print("--- the cluster ---", flush=True)
    subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            stack["KUBECONFIG"],
            "-n",
            args.namespace,
            "get",
            "jobs,deployments,statefulsets,pods",
            "-o",
            "wide",
        ],
        check=False,
    )
    print(f"\ndemo: the action exited {run.exit_code} after {run.duration:.1f}s.")
    if run.exit_code != 0:
        return run.exit_code
    try:
        checks = check_app(stack, args.namespace)
    except (HarnessError, subprocess.TimeoutExpired) as exc:
        print(f"demo: checking the app: {exc}", file=sys.stderr)
        return 1
    print(f"\ndemo: what a user would check, on the real node, in namespace {args.namespace}:")
    print(report(checks))
    for problem in checks.problems:
        print(f"demo: NOT OK: {problem}", file=sys.stderr)
    print(
        f"\ndemo: {'done' if checks.ok else 'FAILED'} in {time.monotonic() - started:.1f}s. "
        f"The stack is still up (`scripts/stack down` stops it); "
        f"`kubectl delete namespace {args.namespace}` removes the demo."
    )
    return 0 if checks.ok else 1


def example_digest() -> str:
    """40 hex digits from the example's files: the commit an app repository would have."""
    digest = hashlib.sha256()
    for path in sorted(EXAMPLE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(str(path.relative_to(EXAMPLE)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:40]


if __name__ == "__main__":
    sys.exit(main())
