"""The stack's real node, as the tests, the bench and the demo use it: namespaces whose pods run
there and pull from the stack's registry, the `probe` image, workloads of it, and kubectl.

Pods go to the real node (a kubelet with containerd, not kwok) only in a namespace annotated by
`scripts/stack real-node-namespace`; user manifests stay untouched. Its default ServiceAccount gets
a pull secret for the stack's registry, as DOKS's registry integration does for DOCR, so every pod
pulls without naming a secret.

The probe is one static program (compiled here with gcc, FROM scratch, a few hundred KiB), pushed
to the stack's registry (or imported into the node's containerd by tests/stack/test_node.py), so
nothing comes from outside the machine. Its modes are what the tests need a container to do,
the startup failures the judge must read on a real kubelet among them:

    probe say TEXT EXIT [AFTER_SECONDS]   print TEXT, (sleep), exit EXIT
    probe serve PORT                      print a line, answer every TCP connection on PORT
    probe connect IP PORT SECONDS         connect, print what the server said (or the error)
    probe cat FILE                        print FILE
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
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from stack import node
from tests.harness.runner import STACK_SCRIPT, HarnessError, login_to_stack_registry

_S = TypeVar("_S", bound=Mapping[str, str])

PULL_SECRET = "stack-registry"

PROBE_C = r"""
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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
            const char *msg = "hello from a real pod\n";
            write(c, msg, strlen(msg));
            close(c);
        }
    }
    if (argc == 5 && !strcmp(argv[1], "connect")) {
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
        inet_pton(AF_INET, argv[2], &addr.sin_addr);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) { puts("connected"); return 0; }
        if (errno != EINPROGRESS) { printf("error: %s\n", strerror(errno)); return 0; }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, atoi(argv[4]) * 1000) == 0) { puts("timeout"); return 0; }
        int err = 0; socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) { printf("error: %s\n", strerror(err)); return 0; }
        char buf[128] = {0};
        fcntl(fd, F_SETFL, 0);
        read(fd, buf, sizeof buf - 1);
        printf("connected: %s", buf);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "cat")) {
        FILE *f = fopen(argv[2], "r");
        int ch;
        if (!f) { perror(argv[2]); return 1; }
        while ((ch = fgetc(f)) != EOF) putchar(ch);
        return 0;
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
        for (;;) pause();
    }
    fprintf(stderr, "usage: probe say TEXT EXIT [AFTER] | serve PORT | connect IP PORT SECONDS"
                    " | cat FILE | alloc MIB | once FILE\n");
    return 2;
}
"""

# The tag the action deploys with `build: never` (its `sha` input): one image for every case, a
# new tag for a changed probe (a node keeps the image it pulled for a tag: IfNotPresent).
PROBE_SHA = hashlib.sha1(PROBE_C.encode(), usedforsecurity=False).hexdigest()
PROBE_REPOSITORY = "djk-e2e/probe"


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


def apply(stack: Mapping[str, str], namespace: str, *objects: Mapping[str, Any]) -> None:
    # On stdin, never in argv: the Secrets among them carry passwords.
    documents = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    kubectl(stack, "-n", namespace, "apply", "-f", "-", stdin=documents)


def require(stack: _S) -> _S:
    """`stack`, which must run the real node: fails, never falls back to kwok, when it does not."""
    if stack.get("DJK_REAL_NODE") != node.NODE_NAME:
        raise HarnessError("the stack runs no real node (DJK_REAL_NODE unset): scripts/stack up")
    return stack


def place_namespace(stack: Mapping[str, str], namespace: str, *, pull_secret: bool = True) -> None:
    """Create (or annotate) `namespace` so its pods run on the real node; with `pull_secret`, its
    default ServiceAccount pulls from the stack's registry. Fails, never falls back to kwok,
    when the stack runs no real node."""
    require(stack)
    placed = subprocess.run(
        [sys.executable, str(STACK_SCRIPT), "real-node-namespace", namespace],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if placed.returncode != 0:
        raise HarnessError((placed.stderr or placed.stdout).strip())
    # The ServiceAccount controller makes `default` a moment after the namespace, and pods are
    # refused until it exists.
    deadline = time.monotonic() + 60
    while kubectl(
        stack, "-n", namespace, "get", "serviceaccount", "default", check=False
    ).returncode:
        if time.monotonic() > deadline:
            raise HarnessError(f"namespace {namespace}: no default ServiceAccount after 60s")
        time.sleep(0.2)
    if not pull_secret:
        return
    make_pull_secret(stack, namespace)
    name_pull_secret(stack, namespace, PULL_SECRET)


def name_pull_secret(stack: Mapping[str, str], namespace: str, secret: str) -> None:
    """Name `secret` in the imagePullSecrets of the namespace's default ServiceAccount, which
    admission copies into every new pod there (as DOKS's registry integration does)."""
    patch = json.dumps({"imagePullSecrets": [{"name": secret}]})
    kubectl(stack, "-n", namespace, "patch", "serviceaccount", "default", "-p", patch)


def make_pull_secret(stack: Mapping[str, str], namespace: str) -> None:
    """The Secret PULL_SECRET in `namespace`: credentials for the stack's registry."""
    auth = base64.b64encode(
        f"{stack['DJK_REGISTRY_USER']}:{stack['DJK_REGISTRY_PASSWORD']}".encode()
    ).decode()
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": PULL_SECRET},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {
            ".dockerconfigjson": json.dumps({"auths": {stack["DJK_REGISTRY"]: {"auth": auth}}})
        },
    }
    apply(stack, namespace, secret)


def delete_namespace(stack: Mapping[str, str], namespace: str) -> None:
    """Delete it without waiting; one that was never made (a failed start) is no error."""
    kubectl(stack, "delete", "namespace", namespace, "--wait=false", "--ignore-not-found")


def namespace_name(prefix: str, case: str) -> str:
    """`<prefix>-<case>-<random>`, so a leftover says whose it is."""
    return f"{prefix}-{case}-{uuid.uuid4().hex[:6]}"[:63].rstrip("-")


# -- the probe ------------------------------------------------------------------------------------


def compile_probe(directory: Path) -> Path:
    """The static probe binary, compiled from PROBE_C into `directory`."""
    (directory / "probe.c").write_text(PROBE_C)
    binary = directory / "probe"
    subprocess.run(
        ["gcc", "-static", "-Os", "-o", str(binary), str(directory / "probe.c")],
        check=True,
        capture_output=True,
    )
    return binary


def push_probe(stack: Mapping[str, str]) -> str:
    """Compile the probe, push it to the stack's registry as PROBE_REPOSITORY:PROBE_SHA; the
    repository (`image` input) is returned. Pushing the same bytes again is a no-op."""
    with tempfile.TemporaryDirectory(prefix="djk-probe-") as scratch:
        work = Path(scratch)
        repository = f"{stack['DJK_REGISTRY']}/{PROBE_REPOSITORY}"
        ref = f"{repository}:{PROBE_SHA}"
        archive = node.image_archive(
            {"probe": compile_probe(work)}, ref, {"Entrypoint": ["/probe"]}
        )
        env = {**os.environ, "DOCKER_HOST": stack["DOCKER_HOST"], "DOCKER_CONFIG": str(work)}
        login_to_stack_registry(stack, work)
        steps: list[tuple[list[str], bytes | None]] = [
            (["docker", "load", "--quiet"], archive),
            (["docker", "push", "--quiet", ref], None),
        ]
        for argv, stdin in steps:
            done = subprocess.run(
                argv, input=stdin, capture_output=True, env=env, timeout=300, check=False
            )
            if done.returncode != 0:
                raise HarnessError(f"{' '.join(argv[:2])}: {done.stderr.decode().strip()}")
    return repository


# -- workloads of the probe (the verdict suite's and the bench's) -------------------------------


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
