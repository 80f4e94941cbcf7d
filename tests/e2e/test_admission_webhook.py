"""An admission webhook that requires the image to be in the registry, through the action on the
real stack. The dry run alongside the build meets the tag before it is pushed and the webhook
denies it; the deploy warns, pushes, dry-runs the Deployment again (admitted now), applies it and
watches it roll out.

The webhook is a small HTTPS server in this test (127.0.0.1, a certificate from a CA made here),
registered by a ValidatingWebhookConfiguration that only the test's namespace meets, and removed
in a finally. It looks the tag up in the stack's registry the way a verifyImages policy would."""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import (
    MANIFEST_TYPES,
    stack_env,
    stack_inputs,
    web_deployment,
    workspace_with,
)
from tests.harness.runner import run_action

pytestmark = [pytest.mark.stack, pytest.mark.docker]

WEBHOOK = "image-pushed.djk-e2e.example.com"
# The build waits (up to two minutes) until the webhook has denied the tag once, so the dry run
# alongside the build always meets the tag unpushed, however fast the build or slow the checks.
WAIT_FOR_DENIAL = (
    "import ssl, time, urllib.request as u; c = ssl._create_unverified_context(); "
    "any(u.urlopen('{url}', context=c).read() == b'yes' or time.sleep(0.2) for _ in range(600))"
)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, check=True, timeout=60)


def serving_certificate(pki: Path) -> bytes:
    """A CA, and a certificate for IP 127.0.0.1 it signed; returns the CA's PEM."""
    pki.mkdir()
    key = ["-newkey", "rsa:2048", "-nodes"]
    openssl("req", "-x509", *key, "-days", "1", "-subj", "/CN=djk-e2e webhook CA",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=pki)  # fmt: skip
    openssl("req", *key, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr",
            cwd=pki)  # fmt: skip
    (pki / "san.ext").write_text("subjectAltName = IP:127.0.0.1\n")
    signed = ["-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-extfile", "san.ext"]
    openssl("x509", "-req", "-in", "server.csr", *signed, "-days", "1", "-out", "server.crt",
            cwd=pki)  # fmt: skip
    return (pki / "ca.crt").read_bytes()


class ImagePushedWebhook(ThreadingHTTPServer):
    """Denies a Deployment whose container image, in the stack's registry, is not there yet.
    `seen` records each review as (dry run, allowed)."""

    daemon_threads = True

    def __init__(self, pki: Path, stack: dict[str, str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki / "server.crt", pki / "server.key")
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.registry = stack["DJK_REGISTRY"]
        self.auth = (stack["DJK_REGISTRY_USER"], stack["DJK_REGISTRY_PASSWORD"])
        self.seen: list[tuple[bool, bool]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"

    def missing(self, image: str) -> bool:
        host, _, rest = image.partition("/")
        if host != self.registry:
            return False
        repo, sep, reference = rest.partition("@")
        if not sep:
            repo, _, reference = rest.rpartition(":")
        answer = requests.head(
            f"http://{self.registry}/v2/{repo}/manifests/{reference}",
            auth=self.auth,
            headers={"Accept": MANIFEST_TYPES},
            timeout=10,
        )
        return answer.status_code != 200

    def review(self, request: dict[str, Any]) -> dict[str, Any]:
        spec = ((request.get("object") or {}).get("spec") or {}).get("template") or {}
        containers = (spec.get("spec") or {}).get("containers") or []
        missing = [c["image"] for c in containers if self.missing(str(c.get("image") or ""))]
        with self.lock:
            self.seen.append((bool(request.get("dryRun")), not missing))
        response: dict[str, Any] = {"uid": request["uid"], "allowed": not missing}
        if missing:
            response["status"] = {"message": f"image {missing[0]} is not in the registry"}
        return response

    def denied_once(self) -> bool:
        with self.lock:
            return any(not allowed for _, allowed in self.seen)


class _Handler(BaseHTTPRequestHandler):
    server: ImagePushedWebhook

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        review = json.loads(self.rfile.read(length))
        answer = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": self.server.review(review["request"]),
        }
        self._send(json.dumps(answer).encode(), "application/json")

    def do_GET(self) -> None:
        self._send(b"yes" if self.server.denied_once() else b"no", "text/plain")

    def _send(self, data: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook(
    stack: dict[str, str], namespace: str, kube_admin: Any, tmp_path: Path
) -> Iterator[ImagePushedWebhook]:
    """The server, and its registration for `namespace` only; both gone afterwards."""
    ca = serving_certificate(tmp_path / "pki")
    server = ImagePushedWebhook(tmp_path / "pki", stack)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    registrations = client.AdmissionregistrationV1Api(kube_admin)
    name = f"djk-e2e-image-pushed-{secrets.token_hex(4)}"
    try:
        registrations.create_validating_webhook_configuration(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": name},
                "webhooks": [
                    {
                        "name": WEBHOOK,
                        "clientConfig": {
                            "url": f"{server.url}/validate",
                            "caBundle": base64.b64encode(ca).decode(),
                        },
                        "rules": [
                            {
                                "apiGroups": ["apps"],
                                "apiVersions": ["v1"],
                                "operations": ["CREATE", "UPDATE"],
                                "resources": ["deployments"],
                            }
                        ],
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": namespace}
                        },
                        "sideEffects": "None",
                        "failurePolicy": "Fail",
                        "admissionReviewVersions": ["v1"],
                        "timeoutSeconds": 10,
                    }
                ],
            }
        )
        _wait_until_active(kube_admin, namespace, stack)
        with server.lock:
            server.seen.clear()
        yield server
    finally:
        try:
            registrations.delete_validating_webhook_configuration(name)
        except ApiException as error:
            if error.status != 404:
                raise
        server.shutdown()
        server.server_close()


def _wait_until_active(kube_admin: Any, namespace: str, stack: dict[str, str]) -> None:
    """The API server picks a new registration up within a moment: dry-run a Deployment whose
    image is not in the registry until the webhook denies it."""
    apps = client.AppsV1Api(kube_admin)
    probe = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="probe"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": "probe"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "probe"}),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="probe", image=f"{stack['DJK_REGISTRY']}/djk-e2e/none:absent"
                        )
                    ]
                ),
            ),
        ),
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            apps.create_namespaced_deployment(namespace, probe, dry_run="All")
        except ApiException as error:
            if WEBHOOK in str(error.body):
                return
            raise
        if time.monotonic() > deadline:
            pytest.fail("the webhook registration did not take effect within 60s")
        time.sleep(0.2)


def test_a_webhook_that_needs_the_pushed_image_admits_the_deploy_after_the_push(
    stack: dict[str, str],
    namespace: str,
    kube_admin: Any,
    webhook: ImagePushedWebhook,
    tmp_path: Path,
) -> None:
    wait = WAIT_FOR_DENIAL.format(url=f"{webhook.url}/denied")
    workspace = workspace_with(
        tmp_path,
        web_deployment(),
        f"FROM {stack['DJK_BASE_IMAGE']}\nRUN {json.dumps(['python3', '-c', wait])}\n",
    )
    sha = secrets.token_hex(20)
    repo = f"{stack['DJK_REGISTRY']}/djk-e2e/webhook"
    result = run_action(
        stack_inputs(stack, image=repo, sha=sha, namespace=namespace, **{"build-cache": "false"}),
        workspace,
        extra_env=stack_env(stack, sha),
        timeout=400,
    )
    assert result.exit_code == 0, result.visible_log[-4000:]
    warnings = [line for line in result.log.splitlines() if line.startswith("::warning")]
    assert any(
        f'deployment/web: admission webhook "{WEBHOOK}" refused the dry run before the image '
        "was pushed; it is checked again after the push" in w
        for w in warnings
    ), warnings
    assert "dry run: after the push (deployment/web again): the API server accepts" in result.log
    # Denied once alongside the build, admitted by the dry run after the push; the apply (and
    # the controller's updates to the Deployment) admitted.
    assert [allowed for dry, allowed in webhook.seen if dry] == [False, True]
    real = [allowed for dry, allowed in webhook.seen if not dry]
    assert real and all(real), webhook.seen
    deployment = client.AppsV1Api(kube_admin).read_namespaced_deployment("web", namespace)
    assert deployment.spec.template.spec.containers[0].image == f"{repo}:{sha}"
    assert deployment.status.updated_replicas == 1 and deployment.status.available_replicas == 1


def test_a_preview_the_webhook_refuses_for_the_unpushed_image_warns_and_exits_0(
    stack: dict[str, str],
    namespace: str,
    webhook: ImagePushedWebhook,
    tmp_path: Path,
) -> None:
    # A preview pushes nothing: the webhook refuses the Deployment (its tag is not in the
    # registry), and the preview says so instead of blaming the manifest.
    workspace = workspace_with(tmp_path, web_deployment(), f"FROM {stack['DJK_BASE_IMAGE']}\n")
    sha = secrets.token_hex(20)
    repo = f"{stack['DJK_REGISTRY']}/djk-e2e/webhook-preview"
    result = run_action(
        stack_inputs(stack, image=repo, sha=sha, namespace=namespace, **{"dry-run": "true"}),
        workspace,
        extra_env=stack_env(stack, sha),
    )
    assert result.exit_code == 0, result.visible_log[-4000:]
    warnings = [line for line in result.log.splitlines() if line.startswith("::warning")]
    assert any(
        "title=Not previewed" in w
        and f'deployment/web: admission webhook "{WEBHOOK}" refused the preview' in w
        for w in warnings
    ), warnings
    with webhook.lock:
        assert webhook.seen == [(True, False)]  # one dry run, denied; nothing applied
