"""The example app's backing services on the stack's real node: Postgres and Redis, built from
Debian's packages on the stack's base image (tests/harness/services/), pushed to the stack's
registry and started in the app's namespace. They are the demo's and the tests', not the
example's: examples/antisocial/deploy/ stays what a user deploys.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tests.harness.real_node import apply, kubectl, place_namespace
from tests.harness.runner import HarnessError, login_to_stack_registry

SERVICES = Path(__file__).resolve().parent / "services"
DB_USER = DB_NAME = "antisocial"
DB_SECRET = "demo-db"

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
            login_to_stack_registry(stack, config)
            _docker(stack, "push", "--quiet", ref, config=config, timeout=600)
        log(f"{name}: {ref} built and pushed in {time.monotonic() - started:.1f}s")
    return images


# -- the services ------------------------------------------------------------------------------


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
    place_namespace(stack, namespace)
    password = _db_password(stack, namespace)
    apply(
        stack,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": DB_SECRET},
            "stringData": {"POSTGRES_PASSWORD": password},
        },
    )
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
    apply(stack, namespace, *db["items"], *redis["items"])
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
