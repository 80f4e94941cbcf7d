"""deployer.digitalocean against the in-process DigitalOcean stand-in, checked against the spec.

Every request the client sends and every response the stand-in gives back is validated against
DigitalOcean's OpenAPI subset when each test ends (the `fake` fixture), so a test passes only if
the conversation it caused was in contract.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import yaml
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.paths.exceptions import PathNotFound
from openapi_core.validation.request.exceptions import ParameterValidationError
from openapi_core.validation.response.exceptions import HeaderValidationError, InvalidData
from openapi_schema_validator import OAS30Validator

from deployer import __version__, digitalocean
from deployer.digitalocean import DigitalOcean, DoksCluster, Kubeconfig, RetryPolicy
from deployer.errors import DeployError, InputError, ServiceError
from stack.digitalocean import (
    OPERATIONS,
    AdminKubeconfig,
    FakeDigitalOcean,
    MintedToken,
    _Reply,
    cluster_id_for,
)
from tests import contract

TOKEN = "dop_v1_" + "5ecre7" * 10 + "abcd"
NAME = "djk-local"
CLUSTER_ID = cluster_id_for(NAME)
REGISTRY = "djk-local"  # the stand-in's registry name


class Minter:
    """Records each expiry asked for and hands out recognisable tokens."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def __call__(self, expiry_seconds: int) -> MintedToken:
        self.asked.append(expiry_seconds)
        return MintedToken(
            token=f"minted-{len(self.asked)}-" + "k" * 40,
            expires_at=datetime.now(UTC).replace(microsecond=0)
            + timedelta(seconds=max(expiry_seconds, 600)),
        )


class Sleeps(list[float]):
    """An injectable sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def minter() -> Minter:
    return Minter()


@pytest.fixture
def fake(minter: Minter) -> Iterator[FakeDigitalOcean]:
    with FakeDigitalOcean(
        TOKEN, cluster_name=NAME, token_minter=minter, registry_login=("docr-user", "docr-pass")
    ) as server:
        yield server
        for entry in server.requests:  # the contract, for every exchange of every test
            contract.check_exchange(entry)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(fake: FakeDigitalOcean, sleeps: Sleeps) -> Iterator[DigitalOcean]:
    with DigitalOcean(TOKEN, fake.url, retry=RetryPolicy(sleep=sleeps)) as do:
        yield do


def failure(call: Callable[[], object]) -> DeployError:
    """The error `call` raised, checked for what every error must be: one line, no token."""
    with pytest.raises(DeployError) as info:
        call()
    err = info.value
    text = f"{err} {err!r} {err.args} {vars(err)}"
    assert TOKEN not in text
    assert "5ecre7" not in text
    assert "\n" not in str(err)
    return err


def queries(fake: FakeDigitalOcean) -> list[dict[str, list[str]]]:
    return [parse_qs(e["query"]) for e in fake.requests]


# -- finding the cluster ------------------------------------------------------------------------


def test_name_lookup_follows_every_page_to_the_last(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    fake.configure({"filler_clusters": 450})  # 451 clusters: pages of 200, 200, 51

    cluster = client.find_cluster(NAME)

    assert cluster == DoksCluster(
        id=CLUSTER_ID,
        name=NAME,
        region="nyc1",
        endpoint="https://127.0.0.1:6443",
        status="running",
        registry_enabled=False,
    )
    assert queries(fake) == [
        {"per_page": ["200"]},
        {"page": ["2"], "per_page": ["200"]},
        {"page": ["3"], "per_page": ["200"]},
    ]


def test_a_single_page_without_links_is_the_last(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    assert client.find_cluster(NAME).id == CLUSTER_ID
    assert len(fake.requests) == 1
    assert "links" not in json.loads(fake.requests[0]["response_body"])


def test_a_cluster_id_is_used_as_is_without_a_call(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    assert client.find_cluster(f"  {CLUSTER_ID.upper()} ") == DoksCluster(id=CLUSTER_ID)
    assert fake.requests == []


def test_get_cluster_reads_one_cluster(fake: FakeDigitalOcean, client: DigitalOcean) -> None:
    cluster = client.get_cluster(CLUSTER_ID)
    assert (cluster.name, cluster.status, cluster.warning) == (NAME, "running", None)
    assert [e["path"] for e in fake.requests] == [f"/v2/kubernetes/clusters/{CLUSTER_ID}"]


def test_a_cluster_that_is_not_running_gets_a_warning() -> None:
    cluster = DoksCluster(id=CLUSTER_ID, name=NAME, status="degraded")
    assert cluster.warning == (
        f"cluster {NAME} ({CLUSTER_ID}) is `degraded`, not `running`; the deploy may fail"
    )


def test_a_miss_lists_the_names_the_token_can_see(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    fake.configure({"filler_clusters": 25})

    err = failure(lambda: client.find_cluster("staging"))

    assert isinstance(err, InputError)
    assert err.exit_code == 2
    assert err.where == "cluster"
    assert str(err) == (
        "cluster: no cluster is named `staging`; the token sees: djk-local, "
        + ", ".join(f"filler-{i:04d}" for i in range(19))
        + " and 6 more."
    )


def test_a_near_miss_suggests_the_name(fake: FakeDigitalOcean, client: DigitalOcean) -> None:
    err = failure(lambda: client.find_cluster("DJK-Local"))
    assert str(err) == (
        "cluster: no cluster is named `DJK-Local`; the token sees: djk-local. "
        "Did you mean `djk-local`?"
    )


def test_duplicate_names_list_each_id(fake: FakeDigitalOcean, client: DigitalOcean) -> None:
    fake.configure({"add_clusters": [{"name": NAME, "region": "ams3"}]})

    err = failure(lambda: client.find_cluster(NAME))

    assert isinstance(err, InputError)
    assert str(err) == (
        f"cluster: 2 clusters are named `{NAME}`: {cluster_id_for(NAME, 1)} (ams3), "
        f"{CLUSTER_ID} (nyc1). Pass the id of the one you mean instead of the name."
    )


def test_a_failing_page_fails_the_lookup_instead_of_missing_the_cluster(
    fake: FakeDigitalOcean, client: DigitalOcean, sleeps: Sleeps
) -> None:
    fake.configure({"filler_clusters": 450, "faults": [{"skip": 1, "status": 500, "count": 6}]})

    err = failure(lambda: client.find_cluster(NAME))

    assert isinstance(err, ServiceError)
    assert err.exit_code == 3
    assert "could not list clusters: HTTP 500 server_error" in str(err)
    assert [q.get("page") for q in queries(fake)] == [None] + [["2"]] * 6


def test_a_next_link_to_another_host_is_not_followed(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    fake.configure({"filler_clusters": 250})
    fake.link_base = "http://attacker.invalid"

    err = failure(lambda: client.find_cluster(NAME))

    assert str(err) == (
        "DigitalOcean API: next-page link points elsewhere: "
        "'http://attacker.invalid/v2/kubernetes/clusters?page=2&per_page=200'"
    )
    assert len(fake.requests) == 1


def test_an_empty_cluster_input_is_refused_before_any_call(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    err = failure(lambda: client.find_cluster("  "))
    assert str(err) == "cluster: is empty; give the cluster's name or id"
    assert fake.requests == []


# -- credentials --------------------------------------------------------------------------------


def test_kubeconfig_is_a_dict_carrying_the_freshly_minted_token(
    fake: FakeDigitalOcean, client: DigitalOcean, minter: Minter
) -> None:
    before = datetime.now(UTC)

    kubeconfig = client.kubeconfig(CLUSTER_ID, 900)

    assert minter.asked == [900]
    token = "minted-1-" + "k" * 40
    name = f"do-nyc1-{NAME}"
    assert kubeconfig.config == {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": "https://127.0.0.1:6443",
                    "certificate-authority-data": fake.ca_data,
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        "current-context": name,
        "users": [{"name": f"{name}-admin", "user": {"token": token}}],
    }
    assert (kubeconfig.token, kubeconfig.secrets, kubeconfig.context) == (token, (token,), name)
    assert kubeconfig.expires_at is not None
    assert before + timedelta(seconds=900) <= kubeconfig.expires_at
    assert kubeconfig.expires_at <= datetime.now(UTC) + timedelta(seconds=900)
    assert token not in repr(kubeconfig)
    assert queries(fake) == [{"expiry_seconds": ["900"], "type": ["token"]}]
    assert fake.requests[0]["response_headers"]["content-type"] == "application/yaml"


def test_a_zero_expiry_is_refused_because_it_means_seven_days(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    err = failure(lambda: client.kubeconfig(CLUSTER_ID, 0))
    assert str(err) == "expiry-seconds: must be a positive number of seconds, got 0"
    assert fake.requests == []


def test_registry_credentials_come_from_the_docker_config(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    assert client.registry_credentials("registry.digitalocean.com/team", 3600) == (
        "docr-user",
        "docr-pass",
    )
    assert [e["path"] for e in fake.requests] == ["/v2/registry/docker-credentials"]
    assert queries(fake) == [{"read_write": ["true"], "expiry_seconds": ["3600"]}]
    body = json.loads(fake.requests[0]["response_body"])
    auth = body["auths"]["registry.digitalocean.com"]["auth"]
    assert base64.b64decode(auth) == b"docr-user:docr-pass"


def test_registry_credentials_for_another_host_are_refused(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    err = failure(lambda: client.registry_credentials("ghcr.io/team", 3600))
    assert str(err) == (
        "DigitalOcean API: registry credentials are not for ghcr.io "
        "(got: registry.digitalocean.com)"
    )


# -- the registry integration (link-registry) --------------------------------------------------


def test_the_registry_name_comes_from_the_registry_endpoint(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    assert client.registry_name() == "djk-local"
    assert [(e["method"], e["path"]) for e in fake.requests] == [("GET", "/v2/registry")]


def test_linking_adds_the_registry_once_and_then_only_reads(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    assert client.get_cluster(CLUSTER_ID).registry_enabled is False

    assert client.link_registry(CLUSTER_ID) is True
    assert client.link_registry(CLUSTER_ID) is False

    assert [(e["method"], e["path"], e["status"]) for e in fake.requests[1:]] == [
        ("GET", f"/v2/kubernetes/clusters/{CLUSTER_ID}", 200),
        ("POST", "/v2/kubernetes/registry", 204),
        ("GET", f"/v2/kubernetes/clusters/{CLUSTER_ID}", 200),
    ]
    assert json.loads(fake.requests[2]["body"]) == {"cluster_uuids": [CLUSTER_ID]}
    assert fake.requests[2]["headers"]["content-type"] == "application/json"
    linked = client.get_cluster(CLUSTER_ID)
    assert (linked.registry_enabled, linked.registries) == (True, ("djk-local",))


def test_a_failed_link_is_not_retried_and_says_what_it_tried(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    fake.configure({"faults": [{"endpoint": "kubernetes_add_registry", "status": 503, "count": 9}]})

    err = failure(lambda: client.link_registry(CLUSTER_ID))

    assert isinstance(err, ServiceError)
    assert str(err).startswith(
        "DigitalOcean API: could not add the container registry to the cluster: HTTP 503"
    )
    assert [e["method"] for e in fake.requests] == ["GET", "POST"]  # a write is never repeated


def test_an_account_without_a_registry_is_told_so(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    fake.configure({"faults": [{"endpoint": "registry_get", "status": 404}]})
    err = failure(client.registry_name)
    assert isinstance(err, InputError)
    assert str(err).startswith(
        "digitalocean-token: this DigitalOcean account has no container registry (HTTP 404"
    )


def test_an_account_with_several_registries_is_told_to_integrate_by_hand(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    fake.configure({"faults": [{"endpoint": "registry_get", "status": 412}]})
    err = failure(client.registry_name)
    assert isinstance(err, InputError)
    assert str(err).startswith(
        "digitalocean-token: the account has several container registries, which /v2/registry "
        "cannot serve (HTTP 412 precondition_failed"
    )


# Every endpoint the client calls, and a request the stand-in answers for it.
ENDPOINTS = {
    "kubernetes_list_clusters": lambda do: do.find_cluster(NAME),
    "kubernetes_get_cluster": lambda do: do.get_cluster(CLUSTER_ID),
    "kubernetes_get_kubeconfig": lambda do: do.kubeconfig(CLUSTER_ID, 600),
    "kubernetes_add_registry": lambda do: do._send(
        "POST",
        f"{do.api_url}/v2/kubernetes/registry",
        {"cluster_uuids": [CLUSTER_ID]},
        digitalocean.SCOPES_LINK,
        "add the container registry to the cluster",
    ),
    "registry_get": lambda do: do.registry_name(),
    "registry_get_dockerCredentials": lambda do: do.registry_credentials(
        "registry.digitalocean.com", 600
    ),
    "registry_list_repositoryTags": lambda do: do.list_tags(REGISTRY, "app"),
    "registry_delete_repositoryTag": lambda do: do.delete_tag(REGISTRY, "app", "0" * 40),
    "registry_get_garbageCollection": lambda do: do.active_garbage_collection(REGISTRY),
    "registry_run_garbageCollection": lambda do: do.start_garbage_collection(REGISTRY),
}


# 404 from these is an answer: no garbage collection is running; the tag is gone already.
NOT_FOUND_IS_AN_ANSWER = {"registry_get_garbageCollection", "registry_delete_repositoryTag"}


def test_the_stand_in_serves_every_endpoint_the_spec_subset_holds() -> None:
    raw = yaml.safe_load(contract.SPEC_PATH.read_text())
    in_spec = {op["operationId"] for ops in raw["paths"].values() for op in ops.values()}
    assert in_spec == set(ENDPOINTS) == set(OPERATIONS)


@pytest.mark.parametrize("operation", sorted(ENDPOINTS))
@pytest.mark.parametrize("status", [401, 403, 404, 429, 500])
def test_every_endpoint_fails_in_contract_with_rate_limit_headers_and_an_error_body(
    fake: FakeDigitalOcean, operation: str, status: int
) -> None:
    fake.configure({"faults": [{"endpoint": operation, "status": status, "count": 99}]})
    with DigitalOcean(TOKEN, fake.url, retry=RetryPolicy(total=0, sleep=Sleeps())) as do:
        if status == 404 and operation in NOT_FOUND_IS_AN_ANSWER:
            assert ENDPOINTS[operation](do) is None
        else:
            failure(lambda: ENDPOINTS[operation](do))

    failed = [e for e in fake.requests if e["status"] == status]
    assert failed, "the fault reached the endpoint"
    for entry in failed:  # the fixture also checks each against the spec when the test ends
        headers = entry["response_headers"]
        assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(headers)
        body = json.loads(entry["response_body"])
        assert set(body) == {"id", "message", "request_id"}
        assert body["request_id"] == headers["x-request-id"]


def test_a_fault_switch_hits_only_its_endpoint(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    fake.configure({"faults": [{"endpoint": "registry_get", "status": 429, "count": 99}]})

    assert client.registry_credentials("registry.digitalocean.com", 600)[0] == "docr-user"
    assert client.get_cluster(CLUSTER_ID).id == CLUSTER_ID
    err = failure(client.registry_name)

    assert str(err).startswith("DigitalOcean API: rate limited while trying to read the container")
    statuses = [e["status"] for e in fake.requests]
    assert statuses[:2] == [200, 200]
    assert set(statuses[2:]) == {429}
    assert len(statuses) > 3  # the rate-limited read was retried


def test_a_fault_switch_for_an_unknown_endpoint_is_refused(fake: FakeDigitalOcean) -> None:
    with pytest.raises(ValueError, match="fault endpoint must be one of"):
        fake.configure({"faults": [{"endpoint": "droplets_list"}]})


# -- errors -------------------------------------------------------------------------------------


def test_a_rejected_token_names_the_token_input_and_is_not_retried(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    fake.configure({"faults": [{"status": 401}]})

    err = failure(lambda: client.find_cluster(NAME))

    assert isinstance(err, InputError)
    assert err.where == "digitalocean-token"
    request_id = fake.requests[0]["response_headers"]["x-request-id"]
    assert str(err) == (
        "digitalocean-token: DigitalOcean rejected the token as invalid or expired "
        f'(HTTP 401 unauthorized "Unable to authenticate you.", request id {request_id}). '
        "Create a new token with scopes kubernetes:read and kubernetes:access_cluster: "
        "https://docs.digitalocean.com/reference/api/create-personal-access-token/"
    )
    assert len(fake.requests) == 1


def test_a_wrong_token_is_rejected_by_the_stand_in(fake: FakeDigitalOcean) -> None:
    with DigitalOcean("dop_v1_wrong", fake.url) as do:
        err = failure(lambda: do.find_cluster(NAME))
    assert err.exit_code == 2
    assert fake.requests[0]["auth"] == "wrong"


@pytest.mark.parametrize(
    ("scope", "call", "says"),
    [
        ("kubernetes:read", lambda do: do.find_cluster(NAME), "may not list clusters"),
        ("kubernetes:read", lambda do: do.get_cluster(CLUSTER_ID), "may not read the cluster"),
        (
            "kubernetes:access_cluster",
            lambda do: do.kubeconfig(CLUSTER_ID, 600),
            "may not fetch a kubeconfig",
        ),
        (
            "registry:update",
            lambda do: do.registry_credentials("registry.digitalocean.com", 600),
            "may not get push credentials for the container registry",
        ),
        ("registry:read", lambda do: do.registry_name(), "may not read the container registry"),
        (
            "kubernetes:update",
            lambda do: do.link_registry(CLUSTER_ID),
            "may not add the container registry to the cluster",
        ),
    ],
)
def test_a_missing_scope_is_named(
    fake: FakeDigitalOcean,
    client: DigitalOcean,
    scope: str,
    call: Callable[[DigitalOcean], object],
    says: str,
) -> None:
    fake.configure({"forbid_scopes": [scope]})

    err = failure(lambda: call(client))

    assert isinstance(err, InputError)
    assert err.where == "digitalocean-token"
    assert str(err).startswith(f"digitalocean-token: the token {says}: it needs the ")
    assert f"`{scope}`" in str(err)
    assert 'HTTP 403 forbidden "You do not have access for the attempted action."' in str(err)
    assert fake.requests[-1]["status"] == 403


def test_the_scopes_the_client_names_are_the_ones_the_spec_lists() -> None:
    raw = yaml.safe_load(contract.SPEC_PATH.read_text())
    listed = {
        (method.upper(), path): tuple(op["security"][0]["bearer_auth"])
        for path, ops in raw["paths"].items()
        for method, op in ops.items()
    }
    assert listed == {
        ("GET", "/v2/kubernetes/clusters"): (digitalocean.SCOPE_READ,),
        ("GET", "/v2/kubernetes/clusters/{cluster_id}"): (digitalocean.SCOPE_READ,),
        ("GET", "/v2/kubernetes/clusters/{cluster_id}/kubeconfig"): (digitalocean.SCOPE_ACCESS,),
        ("POST", "/v2/kubernetes/registry"): digitalocean.SCOPES_LINK,
        ("GET", "/v2/registry"): (digitalocean.SCOPE_REGISTRY_READ,),
        ("GET", "/v2/registry/docker-credentials"): digitalocean.SCOPES_PUSH,
        ("GET", "/v2/registry/{registry_name}/repositories/{repository_name}/tags"): (
            digitalocean.SCOPE_REGISTRY_READ,
        ),
        (
            "DELETE",
            "/v2/registry/{registry_name}/repositories/{repository_name}/tags/{repository_tag}",
        ): (digitalocean.SCOPE_REGISTRY_DELETE,),
        ("GET", "/v2/registry/{registry_name}/garbage-collection"): (
            digitalocean.SCOPE_REGISTRY_READ,
        ),
        ("POST", "/v2/registry/{registry_name}/garbage-collection"): (
            digitalocean.SCOPE_REGISTRY_UPDATE,
        ),
    }
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for scope in {s for scopes in listed.values() for s in scopes}:
        assert f"`{scope}`" in readme, scope
    assert "registry:write" not in readme
    assert "registry:create" not in readme


def test_an_unknown_cluster_id_names_the_cluster_input(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    missing = "11111111-2222-4333-8444-555555555555"

    err = failure(lambda: client.kubeconfig(missing, 600))

    assert isinstance(err, InputError)
    assert err.where == "cluster"
    assert str(err).startswith(f"cluster: no cluster with id {missing} is visible to this token")


def test_a_bad_request_is_a_service_error_and_not_retried(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    fake.configure({"faults": [{"status": 400}]})
    err = failure(lambda: client.find_cluster(NAME))
    assert isinstance(err, ServiceError)
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_is_retried_then_reported_with_status_and_request_id(
    fake: FakeDigitalOcean, client: DigitalOcean, sleeps: Sleeps, status: int
) -> None:
    fake.configure({"faults": [{"status": status, "count": 99}]})

    err = failure(lambda: client.kubeconfig(CLUSTER_ID, 600))

    assert isinstance(err, ServiceError)
    assert err.exit_code == 3
    assert len(fake.requests) == 6  # the first try and 5 retries
    last_id = fake.requests[-1]["response_headers"]["x-request-id"]
    assert str(err).startswith(f"DigitalOcean API: could not fetch a kubeconfig: HTTP {status} ")
    assert str(err).endswith(f", request id {last_id} (after 6 attempts)")
    assert sleeps == [2.0, 4.0, 8.0, 16.0]  # exponential backoff (urllib3: no wait before #2)


def test_a_transient_server_error_is_retried_to_success(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    fake.configure({"faults": [{"status": 503, "count": 2}]})
    assert client.find_cluster(NAME).id == CLUSTER_ID
    assert [e["status"] for e in fake.requests] == [503, 503, 200]


def test_retry_after_is_honoured_in_real_time(fake: FakeDigitalOcean) -> None:
    fake.configure({"faults": [{"status": 429, "retry_after": 1}]})
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the default's real sleep, recorded
        waits.append(seconds)
        time.sleep(seconds)

    assert RetryPolicy().sleep is time.sleep  # by default the client waits for real
    started = time.monotonic()
    with DigitalOcean(TOKEN, fake.url, retry=RetryPolicy(sleep=sleep)) as do:
        assert do.find_cluster(NAME).id == CLUSTER_ID
    elapsed = time.monotonic() - started

    assert waits == [1.0]  # exactly the Retry-After, no backoff on top of it
    assert elapsed >= 1.0
    assert [e["status"] for e in fake.requests] == [429, 200]
    gap = fake.requests[1]["time"] - fake.requests[0]["time"]
    assert gap >= 1.0  # the server saw the retry no sooner than it asked


def test_ratelimit_reset_is_honoured_when_there_is_no_retry_after(
    fake: FakeDigitalOcean, client: DigitalOcean, sleeps: Sleeps
) -> None:
    fake.configure({"faults": [{"status": 429, "ratelimit_reset_in": 5}]})

    assert client.find_cluster(NAME).id == CLUSTER_ID

    assert "retry-after" not in fake.requests[0]["response_headers"]
    assert fake.requests[0]["response_headers"]["ratelimit-remaining"] == "0"
    assert len(sleeps) == 1
    # reset - now at the moment of the retry: 5 s less the time since the reply (a loaded
    # machine may take a while); far from the 0 s backoff urllib3 uses before a first retry
    assert 2.0 < sleeps[0] <= 5.0


def test_a_single_wait_and_all_waits_together_are_capped(fake: FakeDigitalOcean) -> None:
    fake.configure({"faults": [{"status": 429, "retry_after": 3600, "count": 99}]})
    sleeps = Sleeps()
    policy = RetryPolicy(total=10, max_wait=30, max_total_wait=45, sleep=sleeps)

    with DigitalOcean(TOKEN, fake.url, retry=policy) as do:
        err = failure(lambda: do.find_cluster(NAME))

    assert sleeps == [30.0, 15.0]
    assert len(fake.requests) == 3
    assert str(err).startswith("DigitalOcean API: rate limited while trying to list clusters: ")
    assert "; 4997 requests left this hour" in str(err)  # 5000 minus our three
    assert "Other automation may share this token" in str(err)


def test_a_slow_answer_times_out_and_is_retried(fake: FakeDigitalOcean) -> None:
    fake.configure({"faults": [{"delay": 1.5}]})

    with DigitalOcean(TOKEN, fake.url, timeout=(2.0, 0.5)) as do:
        assert do.find_cluster(NAME).id == CLUSTER_ID

    time.sleep(1.5)  # let the slow answer finish so the log has both
    assert sorted(e["status"] for e in fake.requests) == [200, 200]


def test_an_unreachable_api_is_a_service_error_after_retries(sleeps: Sleeps) -> None:
    with DigitalOcean(TOKEN, "http://127.0.0.1:9", retry=RetryPolicy(sleep=sleeps)) as do:
        err = failure(lambda: do.find_cluster(NAME))

    assert isinstance(err, ServiceError)
    assert err.exit_code == 3
    assert str(err) == (
        "DigitalOcean API: could not list clusters: Failed to establish a new connection: "
        "[Errno 111] Connection refused (after retries). "
        "Check that http://127.0.0.1:9 is reachable from this runner."
    )
    assert len(sleeps) == 4


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "digitalocean-token: is empty; pass a DigitalOcean API token"),
        (
            "dop_v1_5ecre7\nX-Evil: 1",
            "digitalocean-token: contains spaces, line breaks or non-ASCII characters; "
            "paste the token alone",
        ),
    ],
)
def test_a_malformed_token_is_refused_without_echoing_it(token: str, message: str) -> None:
    err = failure(lambda: DigitalOcean(token, "https://api.digitalocean.com"))
    assert str(err) == message


def test_surrounding_whitespace_of_a_pasted_token_is_ignored(fake: FakeDigitalOcean) -> None:
    with DigitalOcean(f" {TOKEN}\n", fake.url) as do:
        assert do.find_cluster(NAME).id == CLUSTER_ID


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "https://api.digitalocean.com/v2",
            "DIGITALOCEAN_API_URL: `https://api.digitalocean.com/v2` ends in /v2. "
            "Give the API root without /v2, e.g. https://api.digitalocean.com.",
        ),
        (
            "api.digitalocean.com",
            "DIGITALOCEAN_API_URL: `api.digitalocean.com` is not an http(s) URL. "
            "Use the API root, e.g. https://api.digitalocean.com.",
        ),
    ],
)
def test_a_bad_api_url_is_refused(url: str, message: str) -> None:
    assert str(failure(lambda: DigitalOcean(TOKEN, url))) == message


def test_the_client_identifies_itself_and_asks_for_json(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    client.find_cluster(NAME)
    client.kubeconfig(CLUSTER_ID, 600)

    listing, kubeconfig = fake.requests
    assert listing["headers"]["user-agent"] == f"django-k8s-deploy/{__version__}"
    assert listing["headers"]["accept"] == "application/json"
    assert kubeconfig["headers"]["accept"] == "application/yaml, application/json"
    assert [e["auth"] for e in fake.requests] == ["ok", "ok"]
    assert listing["headers"]["authorization"] == "Bearer <redacted>"


# -- the contract itself ------------------------------------------------------------------------


def schema(name: str) -> dict[str, Any]:
    raw = yaml.safe_load(contract.SPEC_PATH.read_text())
    return {"components": raw["components"], **raw["components"]["schemas"][name]}


def test_the_spec_cluster_examples_match_the_cluster_schema() -> None:
    raw = yaml.safe_load(contract.SPEC_PATH.read_text())
    examples = raw["components"]["examples"]
    clusters = [
        *examples["kubernetes_clusters_all"]["value"]["kubernetes_clusters"],
        examples["kubernetes_single"]["value"]["kubernetes_cluster"],
    ]
    validator = OAS30Validator(schema("cluster_read"), format_checker=OAS30Validator.FORMAT_CHECKER)
    for cluster in clusters:
        validator.validate(cluster)
    assert [c["name"] for c in clusters] == ["prod-cluster-01", "prod-cluster-01"]


def test_the_spec_kubeconfig_example_is_a_kubeconfig_the_client_accepts(
    fake: FakeDigitalOcean, client: DigitalOcean, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = yaml.safe_load(contract.SPEC_PATH.read_text())
    example = raw["components"]["responses"]["kubeconfig"]["content"]["application/yaml"]
    text = example["example"]
    # Serve the spec's own example through the stand-in, so the client parses it off the wire.
    reply = _Reply(200, text.encode(), "application/yaml")
    monkeypatch.setattr(fake, "_kubeconfig", lambda cluster, expiry: reply)

    kubeconfig = client.kubeconfig(CLUSTER_ID, 300)

    assert isinstance(kubeconfig, Kubeconfig)
    assert kubeconfig.context == "do-nyc1-prod-cluster-01"
    assert kubeconfig.secrets == (
        "403d085aaa80102277d8da97ffd2db2b6a4f129d0e2146098fdfb0cec624babc",
    )
    cluster = kubeconfig.config["clusters"][0]["cluster"]
    assert (
        cluster["server"] == "https://bd5f5959-5e1e-4205-a714-a914373942af.k8s.ondigitalocean.com"
    )


def test_the_contract_check_rejects_a_request_outside_the_spec(fake: FakeDigitalOcean) -> None:
    requests.get(
        f"{fake.url}/v2/kubernetes/clusters?per_page=500",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    entry = fake.requests.pop()  # keep the fixture's own check to in-contract exchanges
    assert entry["status"] == 400
    with pytest.raises(ParameterValidationError, match="per_page"):
        contract.check_request(entry)


def test_the_contract_check_rejects_a_cluster_without_a_name(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    client.get_cluster(CLUSTER_ID)
    entry = dict(fake.requests[0])
    body = json.loads(entry["response_body"])
    del body["kubernetes_cluster"]["name"]
    entry["response_body"] = json.dumps(body)

    with pytest.raises(InvalidData):
        contract.check_exchange(entry)


def test_the_contract_check_rejects_a_non_integer_rate_limit_header(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    client.find_cluster(NAME)
    entry = dict(fake.requests[0])
    entry["response_headers"] = {**entry["response_headers"], "ratelimit-reset": "soon"}

    with pytest.raises(HeaderValidationError):
        contract.check_exchange(entry)


def test_the_contract_check_rejects_a_link_request_without_cluster_ids(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    client.link_registry(CLUSTER_ID)
    entry = dict(fake.requests[1])
    entry["body"] = json.dumps({"cluster_uuids": "not-a-list"})

    with pytest.raises(OpenAPIError):
        contract.check_request(entry)


def test_the_contract_check_rejects_a_registry_without_a_name_pattern(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    client.registry_name()
    entry = dict(fake.requests[0])
    entry["response_body"] = json.dumps({"registry": {"name": "Not A Name!"}})

    with pytest.raises(InvalidData):
        contract.check_exchange(entry)


def test_the_contract_check_rejects_a_path_outside_the_subset() -> None:
    entry = {"method": "GET", "path": "/v2/droplets", "query": "", "headers": {}}
    with pytest.raises(PathNotFound):
        contract.check_request(entry)


# -- the stand-in's own reading of the stack's admin kubeconfig -----------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_the_stand_in_reads_a_json_admin_kubeconfig(tmp_path: Path) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "admin",
        "clusters": [
            {
                "name": "other",
                "cluster": {"server": "https://10.0.0.1", "certificate-authority-data": b64(b"X")},
            },
            {
                "name": "local",
                "cluster": {
                    "server": "https://127.0.0.1:6443",
                    "certificate-authority-data": b64(b"CA"),
                },
            },
        ],
        "contexts": [{"name": "admin", "context": {"cluster": "local", "user": "admin"}}],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate-data": b64(b"CERT"), "client-key-data": b64(b"KEY")},
            }
        ],
    }
    path = tmp_path / "admin.json"
    path.write_text(json.dumps(doc, indent=2))

    admin = AdminKubeconfig.load(path)

    assert admin == AdminKubeconfig(
        server="https://127.0.0.1:6443", ca_data=b64(b"CA"), client_cert=b"CERT", client_key=b"KEY"
    )


def test_the_stand_in_reads_a_yaml_admin_kubeconfig_with_file_references(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    for name, data in (("ca.crt", b"CA"), ("admin.crt", b"CERT"), ("admin.key", b"KEY")):
        (tmp_path / "pki" / name).write_bytes(data)
    path = tmp_path / "admin.yaml"
    path.write_text(
        "apiVersion: v1\n"
        "clusters:\n"
        "- cluster:\n"
        "    certificate-authority: pki/ca.crt\n"
        '    server: "https://127.0.0.1:6443"\n'
        "  name: local\n"
        "users:\n"
        "- name: admin\n"
        "  user:\n"
        "    client-certificate: pki/admin.crt\n"
        "    client-key: 'pki/admin.key'\n"
    )

    admin = AdminKubeconfig.load(path)

    assert admin == AdminKubeconfig(
        server="https://127.0.0.1:6443", ca_data=b64(b"CA"), client_cert=b"CERT", client_key=b"KEY"
    )
    assert "KEY" not in repr(admin)
