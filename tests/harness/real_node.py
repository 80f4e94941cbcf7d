"""The stack's real node, as tests and the demo use it: a namespace whose pods run there and pull
from the stack's registry, and kubectl against the stack.

Pods go to the real node (a kubelet with containerd, not kwok) only in a namespace annotated by
`scripts/stack real-node-namespace`; user manifests stay untouched. Its default ServiceAccount gets
a pull secret for the stack's registry, as DOKS's registry integration does for DOCR, so every pod
pulls without naming a secret.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from tests.harness.runner import STACK_SCRIPT, HarnessError

PULL_SECRET = "stack-registry"


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


def place_namespace(stack: Mapping[str, str], namespace: str) -> None:
    """Create (or annotate) `namespace` so its pods run on the real node and pull from the stack's
    registry. Fails, never falls back to kwok, when the stack runs no real node."""
    if not stack.get("DJK_REAL_NODE"):
        raise HarnessError("the stack runs no real node (DJK_REAL_NODE unset): scripts/stack up")
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
    pull_secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": PULL_SECRET},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {
            ".dockerconfigjson": json.dumps({"auths": {stack["DJK_REGISTRY"]: {"auth": auth}}})
        },
    }
    apply(stack, namespace, pull_secret)
    # The ServiceAccount controller makes `default` a moment after the namespace.
    for _ in range(30):
        if (
            kubectl(
                stack, "-n", namespace, "get", "serviceaccount", "default", check=False
            ).returncode
            == 0
        ):
            break
        time.sleep(1)
    patch = json.dumps({"imagePullSecrets": [{"name": PULL_SECRET}]})
    kubectl(stack, "-n", namespace, "patch", "serviceaccount", "default", "-p", patch)
