"""What runs on the stack's real node for the verdict suite and bench: a tiny image in the
stack's registry and namespaces whose pods the API server puts on the real node.

The image holds one static program, `probe` (compiled here with gcc, FROM scratch, a few hundred
KiB), pushed to the stack's registry so that the node's containerd pulls it with a pull secret as
a user's cluster pulls an app image; nothing comes from outside the machine. Its modes are the
startup failures the judge must read on a real kubelet:

    probe say TEXT EXIT [AFTER_SECONDS]   print TEXT, (sleep), exit EXIT
    probe serve PORT                      print a line, answer every TCP connection on PORT
    probe alloc MIB                       as PID 1, allocate and touch MIB MiB (an OOM kill)
    probe once FILE                       the first run (no FILE yet) fails as a worker whose
                                          broker is not up yet; later runs stay up
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client

from stack import node

PROBE_C = r"""
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if ((argc == 4 || argc == 5) && !strcmp(argv[1], "say")) {
        printf("%s\n", argv[2]);
        fflush(stdout);
        if (argc == 5) sleep(atoi(argv[4]));
        return atoi(argv[3]);
    }
    if (argc == 3 && !strcmp(argv[1], "serve")) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        if (bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 16)) {
            perror("bind");
            return 1;
        }
        printf("serving on port %s\n", argv[2]);
        fflush(stdout);
        for (;;) {
            int c = accept(fd, NULL, NULL);
            if (c < 0) continue;
            write(c, "ok\n", 3);
            close(c);
        }
    }
    if (argc == 3 && !strcmp(argv[1], "alloc")) {
        long mib = atol(argv[2]);
        printf("allocating %ld MiB\n", mib);
        fflush(stdout);
        for (long i = 0; i < mib; i++) {
            char *block = malloc(1 << 20);
            if (!block) { puts("out of memory (malloc)"); return 1; }
            memset(block, 1, 1 << 20);
        }
        printf("allocated %ld MiB\n", mib);
        fflush(stdout);
        pause();
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "once")) {
        if (access(argv[2], F_OK) != 0) {
            FILE *marker = fopen(argv[2], "w");
            if (marker) fclose(marker);
            puts("consumer: Cannot connect to redis://redis:6379/0: Error 111 connecting to "
                 "redis:6379. Connection refused..");
            return 1;
        }
        puts("celery@worker ready.");
        fflush(stdout);
        pause();
        return 0;
    }
    fprintf(stderr, "usage: probe say TEXT EXIT [AFTER] | serve PORT | alloc MIB | once FILE\n");
    return 2;
}
"""

# The tag the action deploys with `build: never` (its `sha` input): one image for every case, a
# new tag for a changed probe (a node keeps the image it pulled for a tag: IfNotPresent).
PROBE_SHA = hashlib.sha1(PROBE_C.encode(), usedforsecurity=False).hexdigest()
PROBE_REPOSITORY = "verdicts/probe"
PULL_SECRET = "registry"


def docker_env(stack: Mapping[str, str], config_dir: Path) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": stack["DOCKER_HOST"], "DOCKER_CONFIG": str(config_dir)}


def push_probe(stack: Mapping[str, str]) -> str:
    """Compile the probe, push it to the stack's registry as PROBE_REPOSITORY:PROBE_SHA; the
    repository (`image` input) is returned. Pushing the same bytes again is a no-op."""
    with tempfile.TemporaryDirectory(prefix="djk-probe-") as scratch:
        work = Path(scratch)
        (work / "probe.c").write_text(PROBE_C)
        subprocess.run(
            ["gcc", "-static", "-Os", "-o", str(work / "probe"), str(work / "probe.c")],
            check=True,
            capture_output=True,
        )
        repository = f"{stack['DJK_REGISTRY']}/{PROBE_REPOSITORY}"
        ref = f"{repository}:{PROBE_SHA}"
        archive = node.image_archive({"probe": work / "probe"}, ref, {"Entrypoint": ["/probe"]})
        env = docker_env(stack, work)
        steps: list[tuple[list[str], str | bytes | None]] = [
            (
                [
                    *("docker", "login", "--username", stack["DJK_REGISTRY_USER"]),
                    *("--password-stdin", stack["DJK_REGISTRY"]),
                ],
                stack["DJK_REGISTRY_PASSWORD"].encode(),
            ),
            (["docker", "load", "--quiet"], archive),
            (["docker", "push", "--quiet", ref], None),
        ]
        for argv, stdin in steps:
            done = subprocess.run(
                argv, input=stdin, capture_output=True, env=env, timeout=300, check=False
            )
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(argv[:2])}: {done.stderr.decode().strip()}")
    return repository


def create_namespace(
    kube_admin: Any, stack: Mapping[str, str], name: str, *, pull_secret: bool = True
) -> None:
    """A namespace whose pods land on the real node; with `pull_secret`, its default
    ServiceAccount carries a pull secret for the stack's registry (as DigitalOcean's registry
    integration does for DOCR), so the manifests name none."""
    core = client.CoreV1Api(kube_admin)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, annotations=node.namespace_annotations())
        )
    )
    deadline = time.monotonic() + 60
    while not core.list_namespaced_service_account(
        name, field_selector="metadata.name=default"
    ).items:
        if time.monotonic() > deadline:
            raise RuntimeError(f"namespace {name}: no default ServiceAccount after 60s")
        time.sleep(0.1)
    if not pull_secret:
        return
    registry = stack["DJK_REGISTRY"]
    auth = base64.b64encode(
        f"{stack['DJK_REGISTRY_USER']}:{stack['DJK_REGISTRY_PASSWORD']}".encode()
    ).decode()
    core.create_namespaced_secret(
        name,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=PULL_SECRET),
            type="kubernetes.io/dockerconfigjson",
            string_data={".dockerconfigjson": json.dumps({"auths": {registry: {"auth": auth}}})},
        ),
    )
    core.patch_namespaced_service_account(
        "default", name, {"imagePullSecrets": [{"name": PULL_SECRET}]}
    )


def delete_namespace(kube_admin: Any, name: str) -> None:
    """Delete it without waiting; one that was never made (a failed start) is no error."""
    try:
        client.CoreV1Api(kube_admin).delete_namespace(
            name, propagation_policy="Background", grace_period_seconds=0
        )
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def namespace_name(case: str) -> str:
    """`verdicts-<case>-<random>`: the branch's prefix, so others see whose it is."""
    return f"verdicts-{case}-{uuid.uuid4().hex[:6]}"[:63].rstrip("-")


# -- manifests (the suite's and the bench's) ---------------------------------------------------


def container(name: str, args: list[str], image: str = "<IMAGE>", **extra: Any) -> dict[str, Any]:
    """A container running the probe with `args` (the image: the action's placeholder)."""
    return {"name": name, "image": image, "args": args, **extra}


def tcp_probe(port: int) -> dict[str, Any]:
    return {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1}


def deployment(
    name: str,
    containers: list[dict[str, Any]],
    *,
    replicas: int = 1,
    init: list[dict[str, Any]] | None = None,
    progress_deadline_s: int | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "containers": containers,
    }
    if init:
        spec["initContainers"] = init
    if volumes:
        spec["volumes"] = volumes
    body: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
    }
    if progress_deadline_s is not None:
        body["progressDeadlineSeconds"] = progress_deadline_s
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": body}


def job(name: str, containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 0,
                    "automountServiceAccountToken": False,
                    "containers": containers,
                }
            },
        },
    }
