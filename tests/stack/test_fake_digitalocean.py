"""The DigitalOcean stand-in as the stack runs it: in contract, and its kubeconfigs are real.

The kubeconfig it hands out must work against the stack's kube-apiserver, and its token must
really expire when asked (TokenRequest, minimum 600 s). Talks to the stand-in both through
deployer.digitalocean (the product code) and raw, so every response can be checked against
DigitalOcean's spec.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from deployer.digitalocean import DigitalOcean, RetryPolicy
from deployer.errors import InputError
from tests import contract

pytestmark = pytest.mark.stack

SERVICE_ACCOUNT = "system:serviceaccount:kube-system:do-deployer"


@pytest.fixture
def do_env(stack: dict[str, str]) -> Iterator[dict[str, str]]:
    """The stack's stand-in, with its fault switches reset before and after the test."""
    control = stack["DJK_FAKE_DO_CONTROL"]
    requests.post(f"{control}/reset", timeout=5).raise_for_status()
    try:
        yield stack
    finally:
        requests.post(f"{control}/reset", timeout=5).raise_for_status()


@pytest.fixture
def waits() -> list[float]:
    """What the `do` client's retries slept, in seconds."""
    return []


@pytest.fixture
def do(do_env: dict[str, str], waits: list[float]) -> Iterator[DigitalOcean]:
    token, url = do_env["DIGITALOCEAN_ACCESS_TOKEN"], do_env["DIGITALOCEAN_API_URL"]

    def sleep(seconds: float) -> None:  # waits for real, and records how long
        waits.append(seconds)
        time.sleep(seconds)

    policy = RetryPolicy(backoff_factor=0.05, sleep=sleep)
    with DigitalOcean(token, url, retry=policy) as client:
        yield client


def exchange(env: dict[str, str], path: str, query: str = "", token: str = "") -> dict[str, Any]:
    """GET from the stand-in and return the exchange in the shape contract.check_exchange takes."""
    bearer = token or env["DIGITALOCEAN_ACCESS_TOKEN"]
    url = f"{env['DIGITALOCEAN_API_URL']}{path}" + (f"?{query}" if query else "")
    response = requests.get(url, headers={"Authorization": f"Bearer {bearer}"}, timeout=15)
    return {
        "method": "GET",
        "path": path,
        "query": query,
        "headers": {"authorization": "Bearer <redacted>"},
        "status": response.status_code,
        "response_headers": {k.lower(): v for k, v in response.headers.items()},
        "response_body": response.text,
    }


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def whoami(config: dict[str, Any]) -> str:
    api = k8s_config.new_client_from_config_dict(config)
    try:
        review = k8s.AuthenticationV1Api(api).create_self_subject_review(
            k8s.V1SelfSubjectReview(
                api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"
            )
        )
        return str(review.status.user_info.username)
    finally:
        api.close()


def test_the_stand_in_kubeconfig_works_against_the_real_apiserver(
    do_env: dict[str, str], do: DigitalOcean
) -> None:
    cluster = do.find_cluster(do_env["DJK_CLUSTER_NAME"])
    assert cluster.id == do_env["DJK_CLUSTER_ID"]

    kubeconfig = do.kubeconfig(cluster.id, 900)

    api = k8s_config.new_client_from_config_dict(kubeconfig.config)
    try:
        names = {ns.metadata.name for ns in k8s.CoreV1Api(api).list_namespace().items}
    finally:
        api.close()
    assert {"default", "kube-system"} <= names
    assert whoami(kubeconfig.config) == SERVICE_ACCOUNT
    server = kubeconfig.config["clusters"][0]["cluster"]["server"]
    assert urlsplit(server).hostname == "127.0.0.1"


@pytest.mark.parametrize(("asked", "minted"), [(900, 900), (60, 600)])
def test_the_token_expires_when_asked_and_never_under_the_apiserver_minimum(
    do_env: dict[str, str], do: DigitalOcean, asked: int, minted: int
) -> None:
    before = datetime.now(UTC)

    kubeconfig = do.kubeconfig(do_env["DJK_CLUSTER_ID"], asked)

    assert kubeconfig.token is not None
    claims = jwt_claims(kubeconfig.token)
    assert claims["exp"] - claims["iat"] == minted  # the apiserver's own word on the lifetime
    assert kubeconfig.expires_at is not None
    assert before + timedelta(seconds=asked) <= kubeconfig.expires_at
    # The client's estimate (request time + asked) is never later than the real expiry; `exp` is
    # whole seconds, hence the one second.
    real = datetime.fromtimestamp(claims["exp"], UTC)
    assert kubeconfig.expires_at <= real + timedelta(seconds=1)


def test_every_call_mints_a_new_token(do_env: dict[str, str], do: DigitalOcean) -> None:
    first = do.kubeconfig(do_env["DJK_CLUSTER_ID"], 600)
    second = do.kubeconfig(do_env["DJK_CLUSTER_ID"], 600)
    assert first.token != second.token
    assert whoami(second.config) == SERVICE_ACCOUNT


def test_every_endpoint_answers_in_contract(do_env: dict[str, str]) -> None:
    cluster = f"/v2/kubernetes/clusters/{do_env['DJK_CLUSTER_ID']}"
    exchanges = [
        exchange(do_env, "/v2/kubernetes/clusters", "per_page=200"),
        exchange(do_env, cluster),
        exchange(do_env, f"{cluster}/kubeconfig", "expiry_seconds=600&type=token"),
        exchange(do_env, "/v2/registry"),
        exchange(do_env, "/v2/registry/docker-credentials", "read_write=true&expiry_seconds=600"),
        exchange(do_env, "/v2/kubernetes/clusters/00000000-0000-4000-8000-000000000000"),
        exchange(do_env, "/v2/kubernetes/clusters", token="dop_v1_not-the-token"),
    ]

    for entry in exchanges:
        contract.check_exchange(entry)
    assert [e["status"] for e in exchanges] == [200, 200, 200, 200, 200, 404, 401]
    for entry in exchanges:
        assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "x-request-id"} <= set(
            entry["response_headers"]
        )


def test_the_request_log_has_the_client_requests_in_contract_and_no_token(
    do_env: dict[str, str], do: DigitalOcean
) -> None:
    do.kubeconfig(do.find_cluster(do_env["DJK_CLUSTER_NAME"]).id, 600)

    log = requests.get(f"{do_env['DJK_FAKE_DO_CONTROL']}/requests", timeout=5)

    assert do_env["DIGITALOCEAN_ACCESS_TOKEN"] not in log.text
    entries = log.json()
    assert [e["path"].rsplit("/", 1)[-1] for e in entries] == ["clusters", "kubeconfig"]
    for entry in entries:
        contract.check_request(entry)


def test_faults_switched_over_http_reach_the_client(
    do_env: dict[str, str], do: DigitalOcean, waits: list[float]
) -> None:
    control = do_env["DJK_FAKE_DO_CONTROL"]
    switches = {"faults": [{"status": 503, "count": 2}], "filler_clusters": 250}
    requests.post(f"{control}/faults", json=switches, timeout=5).raise_for_status()

    assert do.find_cluster(do_env["DJK_CLUSTER_NAME"]).id == do_env["DJK_CLUSTER_ID"]

    statuses = [e["status"] for e in requests.get(f"{control}/requests", timeout=5).json()]
    assert statuses == [503, 503, 200, 200]  # two failures, then two pages
    # the client's own policy paced the retries: backoff_factor 0.05 (urllib3: no wait before
    # the first retry, then 0.1 s); nothing was slept beyond it
    assert waits == [0.1]

    requests.post(
        f"{control}/faults", json={"forbid_scopes": ["kubernetes:access_cluster"]}, timeout=5
    ).raise_for_status()
    with pytest.raises(InputError, match="kubernetes:access_cluster"):
        do.kubeconfig(do_env["DJK_CLUSTER_ID"], 600)


def test_linking_the_registry_gives_every_namespace_a_pull_secret_new_pods_use(
    do_env: dict[str, str], do: DigitalOcean, kube_admin: Any, namespace: str
) -> None:
    core = k8s.CoreV1Api(kube_admin)
    secret = f"registry-{do.registry_name()}"

    assert do.link_registry(do_env["DJK_CLUSTER_ID"]) is True
    assert do.link_registry(do_env["DJK_CLUSTER_ID"]) is False  # already integrated: no write
    later = f"{namespace}-later"  # a namespace made after the link is served too
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=later)))
    try:
        for ns in (namespace, later):
            deadline = time.monotonic() + 30
            while secret not in pull_secrets(core, ns):
                assert time.monotonic() < deadline, (
                    f"{ns}: default ServiceAccount never got {secret}"
                )
                time.sleep(0.2)
            stored = core.read_namespaced_secret(secret, ns)
            assert stored.type == "kubernetes.io/dockerconfigjson"
            config = json.loads(base64.b64decode(stored.data[".dockerconfigjson"]))
            assert set(config["auths"]) == {"registry.digitalocean.com"}
        pod = core.create_namespaced_pod(
            namespace,
            k8s.V1Pod(
                metadata=k8s.V1ObjectMeta(name="pulls-from-docr"),
                spec=k8s.V1PodSpec(
                    containers=[
                        k8s.V1Container(name="app", image="registry.digitalocean.com/djk-local/a:1")
                    ]
                ),
            ),
        )
        # The ServiceAccount admission plugin copied the secret into the pod, as on DOKS.
        assert [s.name for s in pod.spec.image_pull_secrets] == [secret]
    finally:
        core.delete_namespace(later, propagation_policy="Background")

    control = do_env["DJK_FAKE_DO_CONTROL"]
    log = requests.get(f"{control}/requests", timeout=5).json()
    assert [(e["method"], e["status"]) for e in log] == [
        ("GET", 200),  # registry name
        ("GET", 200),  # the cluster: not integrated yet
        ("POST", 204),
        ("GET", 200),  # the cluster: integrated
    ]
    for entry in log:
        contract.check_request(entry)
    switches = requests.get(f"{control}/faults", timeout=5).json()
    assert switches["registry_linked"] == [do_env["DJK_CLUSTER_ID"]]


def pull_secrets(core: Any, namespace: str) -> list[str]:
    account = core.read_namespaced_service_account("default", namespace)
    return [ref.name for ref in account.image_pull_secrets or []]
