"""A DigitalOcean API stand-in: every endpoint the action calls (tests/spec/digitalocean-openapi).

Standard library only (the stack runs it with the system python3; PyYAML must not be needed).

Run by the stack (stack/cli.py):

    python3 stack/digitalocean.py --port-file F --admin-kubeconfig K \\
        --service-account kube-system/do-deployer --access-token T [--cluster-name NAME]

It binds 127.0.0.1 (port 0 unless --port), writes the port to F once it listens, logs one line
per request to stderr, and stops on SIGTERM/SIGINT. Its kubeconfigs point at the apiserver of the
admin kubeconfig and carry a real token minted by TokenRequest for the service account, so expiry
is real (the apiserver's minimum is 600 s, so shorter requests get 600 s).

In-process (unit tests): `FakeDigitalOcean(token, token_minter=...)` as a context manager.

Behaviour, deliberately as the real API where we know it:
- `Authorization: Bearer <token>` or 401 `unauthorized`; `ratelimit-*` and `x-request-id` on
  every response; error bodies `{id, message, request_id}`.
- Clusters listed with `per_page` (1-200, default 20) / `page`, `meta.total` and absolute
  `links.pages` URLs (first/prev from page 2, next/last before the last page; no `links` when a
  single page holds everything). Stricter than the real API: out-of-range or non-integer query
  values get 400 `bad_request`, so a client bug shows up instead of being clamped away.
- `/kubeconfig` answers `application/yaml` (block YAML, scalars JSON-quoted).
- `GET /v2/registry/docker-credentials?read_write=&expiry_seconds=`:
  `{"auths": {<registry host>: {"auth": base64(user:password)}}}`.
- `GET /v2/registry`: the account's one registry (`--registry-name`).
- `POST /v2/kubernetes/registry` `{"cluster_uuids": [...]}` -> 204: records the registry
  integration (the cluster then shows `registry_enabled: true`, `registries: [name]`) and, when run
  with an admin kubeconfig, does in the stack's cluster what DigitalOcean documents its DOSecret
  operator to do: a `registry-<name>` Secret of type kubernetes.io/dockerconfigjson in every
  namespace (new ones too, checked every second), named in each namespace's `default`
  ServiceAccount's `imagePullSecrets`, so the ServiceAccount admission plugin copies it into every
  new pod that names no pull secret itself. Pods created before that keep pulling without it, as
  on DOKS.

- Registry retention (`--registry-storage DIR`: the stack registry's filesystem storage, as
  docker-registry lays it out; without it, tags live in memory and are seeded with the
  `registry_tags` switch): `GET /v2/registry/{name}/repositories/{repo}/tags` lists a
  repository's tags (`updated_at` is when the tag was last pushed: the mtime of its link file);
  `DELETE .../tags/{tag}` removes the tag as docker-registry's own untag does (its tag directory),
  so a pull by that tag fails at once while the manifest stays until a garbage collection, as on
  DOCR; every deletion is recorded (`deleted_tags` in the switches). `GET
  /v2/registry/{name}/garbage-collection` answers the active garbage collection or 404 when none
  runs; `POST` starts one (201; 409 while one runs), which ends after `gc_seconds` (switch,
  default 1). A garbage collection here deletes nothing: it is recorded (`garbage_collections`).

Control endpoints on the same server (no auth; never logged as API requests):
- `POST /_fake/faults` JSON, any of:
  - `"reset": true` - forget faults, scopes, extra clusters and the request log (applied first)
  - `"faults": [rule, ...]` - queued rules; a rule applies to the next `count` (default 1) API
    requests whose path contains `path` (default: all), after letting `skip` of them through:
    `delay` seconds, then (if `status`) that error, with `retry_after` (seconds) and/or
    `ratelimit_reset_in` (seconds; also sets remaining to 0). `endpoint` (an operationId from
    the spec, e.g. `registry_get`, `kubernetes_add_registry`; see `OPERATIONS`) limits a rule to
    that one endpoint: the fault switch per endpoint. The first live rule wins.
  - `"forbid_scopes": ["kubernetes:access_cluster", ...]` - 403 for endpoints needing them
  - `"unlink_registry": true` - forget the registry integration (the reset does too); what it
    put into the cluster stays
  - `"filler_clusters": N` - N extra clusters listed before the real one (forces pages)
  - `"add_clusters": [{"name": ..., "region": ...}]` - e.g. a duplicate name
  - `"garbage_collection": {"running_for": S, "reads": N}` - a garbage collection is active for
    S seconds (default an hour), or (with `reads`) for the next N reads of it
  - `"gc_seconds": S` - how long a garbage collection started through the API runs
  - `"registry_tags": {"repo": [{"tag": ..., "digest": ..., "updated_at": ...}]}` - the tags
    of the in-memory registry (without --registry-storage)
- `GET /_fake/faults` - the current switches; `POST /_fake/reset` - same as `"reset": true`
- `GET /_fake/requests` - the API requests so far (Authorization redacted, no response bodies;
  `fake.requests` in-process also has the response bodies)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

CLUSTER_ID_NAMESPACE = uuid.UUID("6f1c2a63-1b0e-4d5e-9a57-5d0d3c1e7a10")
DEFAULT_CLUSTER_NAME = "djk-local"
DEFAULT_REGISTRY = "registry.digitalocean.com"
DEFAULT_REGISTRY_NAME = "djk-local"
SYNC_INTERVAL_S = 1.0  # how often the DOSecret stand-in looks for namespaces without the secret
SEVEN_DAYS = 7 * 24 * 3600
MIN_TOKEN_SECONDS = 600  # kube-apiserver rejects TokenRequests shorter than 10 minutes
RATE_LIMIT = 5000

ERRORS = {
    400: ("bad_request", "The request was malformed."),
    401: ("unauthorized", "Unable to authenticate you."),
    403: ("forbidden", "You do not have access for the attempted action."),
    404: ("not_found", "The resource you requested could not be found."),
    405: ("method_not_allowed", "Method not allowed."),
    409: ("conflict", "A garbage collection is already running."),
    # GET /v2/registry when the account has several registries (the spec's own example text).
    412: (
        "precondition_failed",
        "This API is not supported if you have created multiple registries.",
    ),
    429: ("too_many_requests", "API rate limit exceeded."),
    500: ("server_error", "Unexpected server-side error"),
    502: ("bad_gateway", "Bad gateway."),
    503: ("service_unavailable", "The service is temporarily unavailable."),
    504: ("gateway_timeout", "Gateway timeout."),
}

CLUSTERS_PATH = "/v2/kubernetes/clusters"
REGISTRY_PATH = "/v2/registry"
DOCKER_CREDENTIALS_PATH = "/v2/registry/docker-credentials"
LINK_PATH = "/v2/kubernetes/registry"
_CLUSTER_PATH = re.compile(r"^/v2/kubernetes/clusters/([^/]+)(/kubeconfig)?$")
TAGS_PATH = REGISTRY_PATH + "/{registry_name}/repositories/{repository_name}/tags"
GC_PATH = REGISTRY_PATH + "/{registry_name}/garbage-collection"
_TAGS_PATH = re.compile(r"^/v2/registry/([^/]+)/repositories/([^/]+)/tags(/[^/]+)?$")
_GC_PATH = re.compile(r"^/v2/registry/([^/]+)/garbage-collection$")

# The spec's operationIds (and what each needs), by method and path.
OPERATIONS = {
    "kubernetes_list_clusters": ("GET", CLUSTERS_PATH, {"kubernetes:read"}),
    "kubernetes_get_cluster": ("GET", CLUSTERS_PATH + "/{cluster_id}", {"kubernetes:read"}),
    "kubernetes_get_kubeconfig": (
        "GET",
        CLUSTERS_PATH + "/{cluster_id}/kubeconfig",
        {"kubernetes:access_cluster"},
    ),
    "kubernetes_add_registry": ("POST", LINK_PATH, {"kubernetes:create", "kubernetes:update"}),
    "registry_get": ("GET", REGISTRY_PATH, {"registry:read"}),
    # read_write=true needs registry:update too (the spec lists both scopes).
    "registry_get_dockerCredentials": ("GET", DOCKER_CREDENTIALS_PATH, {"registry:read"}),
    "registry_list_repositoryTags": ("GET", TAGS_PATH, {"registry:read"}),
    "registry_delete_repositoryTag": (
        "DELETE",
        TAGS_PATH + "/{repository_tag}",
        {"registry:delete"},
    ),
    "registry_get_garbageCollection": ("GET", GC_PATH, {"registry:read"}),
    "registry_run_garbageCollection": ("POST", GC_PATH, {"registry:update"}),
}


def operation_of(method: str, path: str) -> str | None:
    """The operationId a request goes to, or None when the stand-in has no such endpoint."""
    template = _template(path)
    for name, (verb, route, _) in OPERATIONS.items():
        if verb == method and route == template:
            return name
    return None


def _template(path: str) -> str:
    """The spec's path template a concrete path falls under (the path itself when none)."""
    if match := _CLUSTER_PATH.match(path):
        return f"{CLUSTERS_PATH}/{{cluster_id}}{match.group(2) or ''}"
    if match := _TAGS_PATH.match(path):
        return TAGS_PATH + ("/{repository_tag}" if match.group(3) else "")
    if _GC_PATH.match(path):
        return GC_PATH
    return path


def cluster_id_for(name: str, index: int = 0) -> str:
    """The stable id the stand-in gives the `index`-th cluster called `name`."""
    return str(uuid.uuid5(CLUSTER_ID_NAMESPACE, name if index == 0 else f"{name}#{index}"))


# -- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MintedToken:
    token: str
    expires_at: datetime


TokenMinter = Callable[[int], MintedToken]


def random_minter(expiry_seconds: int) -> MintedToken:
    """A made-up token for tests that need no apiserver."""
    seconds = max(expiry_seconds, MIN_TOKEN_SECONDS)
    return MintedToken(
        token="fake-doks-" + secrets.token_hex(16),
        expires_at=datetime.now(UTC) + timedelta(seconds=seconds),
    )


@dataclass(frozen=True)
class AdminKubeconfig:
    """What the stand-in needs from the admin kubeconfig (single cluster, single user)."""

    server: str
    ca_data: str  # base64 PEM, as kubeconfig's certificate-authority-data
    client_cert: bytes | None = None  # PEM
    client_key: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def load(cls, path: Path) -> AdminKubeconfig:
        text = path.read_text()
        values = _kubeconfig_values(text)
        base = path.parent

        def pem(data_key: str, file_key: str) -> bytes | None:
            if values.get(data_key):
                return base64.b64decode(values[data_key])
            if values.get(file_key):
                return (base / values[file_key]).read_bytes()
            return None

        ca = pem("certificate-authority-data", "certificate-authority")
        if not values.get("server") or ca is None:
            raise ValueError(f"{path}: no server or certificate authority found")
        return cls(
            server=values["server"],
            ca_data=base64.b64encode(ca).decode(),
            client_cert=pem("client-certificate-data", "client-certificate"),
            client_key=pem("client-key-data", "client-key"),
            token=values.get("token"),
        )


_KUBECONFIG_KEYS = (
    "server",
    "certificate-authority-data",
    "certificate-authority",
    "client-certificate-data",
    "client-certificate",
    "client-key-data",
    "client-key",
    "token",
)


def _kubeconfig_values(text: str) -> dict[str, str]:
    """The first value of each key we need, from JSON or from block YAML as kubectl writes it."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        current = doc.get("current-context")
        contexts = {c.get("name"): c.get("context", {}) for c in doc.get("contexts", [])}
        ctx: dict[str, Any] = contexts.get(current) or next(iter(contexts.values()), {})
        clusters = {c.get("name"): c.get("cluster", {}) for c in doc.get("clusters", [])}
        users = {u.get("name"): u.get("user", {}) for u in doc.get("users", [])}
        merged = {**clusters.get(ctx.get("cluster"), {}), **users.get(ctx.get("user"), {})}
        return {k: str(v) for k, v in merged.items() if k in _KUBECONFIG_KEYS and v}
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^\s*(?:-\s+)?([A-Za-z-]+):\s*(\S.*?)\s*$", line)
        if match and match.group(1) in _KUBECONFIG_KEYS and match.group(1) not in values:
            values[match.group(1)] = match.group(2).strip("\"'")
    return values


class AdminClient:
    """Just enough of a Kubernetes API client, as the admin of the stack's apiserver."""

    def __init__(self, admin: AdminKubeconfig) -> None:
        self.admin = admin
        self.server = admin.server.rstrip("/")
        self._dir = tempfile.mkdtemp(prefix="fake-do-")  # private (0700); removed by close()
        self.context = ssl.create_default_context(cadata=base64.b64decode(admin.ca_data).decode())
        if admin.client_cert and admin.client_key:
            cert, key = Path(self._dir, "client.crt"), Path(self._dir, "client.key")
            for target, data in ((cert, admin.client_cert), (key, admin.client_key)):
                target.touch(mode=0o600)
                target.write_bytes(data)
            self.context.load_cert_chain(cert, key)

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """(status, parsed JSON body); HTTP errors are returned, not raised."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self.admin.token:
            headers["Authorization"] = f"Bearer {self.admin.token}"
        request = urllib.request.Request(  # noqa: S310 - the URL is the admin kubeconfig's https
            self.server + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=10) as response:  # noqa: S310
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            with exc:
                try:
                    return exc.code, json.load(exc)
                except ValueError:
                    return exc.code, None


class TokenRequestMinter:
    """Mints real service-account tokens with TokenRequest, as the admin of the apiserver."""

    def __init__(self, admin: AdminClient, service_account: str) -> None:
        namespace, sep, name = service_account.partition("/")
        if not sep or not namespace or not name:
            raise ValueError(f"--service-account must be NAMESPACE/NAME, got {service_account!r}")
        self.client = admin
        self.path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"

    def __call__(self, expiry_seconds: int) -> MintedToken:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": max(expiry_seconds, MIN_TOKEN_SECONDS)},
        }
        code, answer = self.client.call("POST", self.path, body)
        if code != 201 or not isinstance(answer, dict):
            raise OSError(f"TokenRequest answered HTTP {code}")
        status = answer["status"]
        return MintedToken(
            token=status["token"],
            expires_at=datetime.fromisoformat(status["expirationTimestamp"]),
        )


class PullSecretOperator:
    """What DOKS's DOSecret operator does once a registry is integrated with the cluster: a
    `registry-<name>` dockerconfigjson Secret in every namespace, named in the imagePullSecrets of
    each namespace's `default` ServiceAccount (so new pods that name no pull secret get it)."""

    def __init__(self, client: AdminClient, log: Callable[[str], None]) -> None:
        self.client = client
        self.log = log
        self._done: set[str] = set()  # namespace uids already served

    def forget(self) -> None:
        self._done.clear()

    def sync(self, secret_name: str, dockerconfigjson: bytes) -> None:
        code, namespaces = self.client.call("GET", "/api/v1/namespaces")
        if code != 200 or not isinstance(namespaces, dict):
            self.log(f"DOSecret: cannot list namespaces (HTTP {code})")
            return
        for item in namespaces.get("items", []):
            meta = item.get("metadata", {})
            uid, ns = meta.get("uid", ""), meta.get("name", "")
            if uid in self._done or meta.get("deletionTimestamp"):
                continue
            if self._serve(ns, secret_name, dockerconfigjson):
                self._done.add(uid)

    def _serve(self, ns: str, name: str, dockerconfigjson: bytes) -> bool:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(dockerconfigjson).decode()},
        }
        code, _ = self.client.call("POST", f"/api/v1/namespaces/{ns}/secrets", secret)
        if code not in (201, 409):
            return False
        sa_path = f"/api/v1/namespaces/{ns}/serviceaccounts/default"
        code, account = self.client.call("GET", sa_path)
        if code != 200 or not isinstance(account, dict):
            return False  # the controller-manager has not made it yet: next round
        pulls = account.get("imagePullSecrets") or []
        if any(p.get("name") == name for p in pulls):
            return True
        patch = {
            "metadata": {"resourceVersion": account["metadata"]["resourceVersion"]},
            "imagePullSecrets": [*pulls, {"name": name}],
        }
        code, _ = self.client.call("PATCH", sa_path, patch, "application/merge-patch+json")
        if code == 200:
            self.log(f"DOSecret: {ns}/serviceaccount/default pulls with secret {name}")
        return code == 200


# -- registry tags (retention) ----------------------------------------------------------------


class MemoryTags:
    """A registry's tags held in memory: {repository: {tag: (digest, updated_at)}}."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, tuple[str, str]]] = {}

    def seed(self, repos: dict[str, list[dict[str, str]]]) -> None:
        self.repos = {
            str(repo): {
                str(t["tag"]): (str(t.get("digest", "")), str(t.get("updated_at", "")))
                for t in tags
            }
            for repo, tags in repos.items()
        }

    def tags(self, registry: str, repo: str) -> list[tuple[str, str, str]] | None:
        del registry
        held = self.repos.get(repo)
        return None if held is None else [(t, d, u) for t, (d, u) in held.items()]

    def delete(self, registry: str, repo: str, tag: str) -> bool:
        del registry
        return self.repos.get(repo, {}).pop(tag, None) is not None


class StorageTags:
    """The tags of docker-registry's filesystem storage (`rootdirectory`), read and untagged the
    way the registry itself does: a tag is `_manifests/tags/<tag>/current/link` (the digest),
    untagging removes `_manifests/tags/<tag>`; the manifest revision stays (a GC's job)."""

    def __init__(self, root: Path) -> None:
        self.repositories = root / "docker" / "registry" / "v2" / "repositories"

    def _tags_dir(self, registry: str, repo: str) -> Path | None:
        if ".." in repo.split("/") or repo.startswith("/"):
            return None
        path = self.repositories / registry / repo / "_manifests" / "tags"
        return path if path.is_dir() else None

    def tags(self, registry: str, repo: str) -> list[tuple[str, str, str]] | None:
        tags_dir = self._tags_dir(registry, repo)
        if tags_dir is None:
            return None
        found = []
        for entry in sorted(tags_dir.iterdir()):
            link = entry / "current" / "link"
            try:
                digest = link.read_text().strip()
                mtime = link.stat().st_mtime
            except OSError:
                continue  # being written or removed
            when = datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            found.append((entry.name, digest, when))
        return found

    def delete(self, registry: str, repo: str, tag: str) -> bool:
        tags_dir = self._tags_dir(registry, repo)
        if tags_dir is None or "/" in tag or tag in (".", ".."):
            return False
        target = tags_dir / tag
        if not target.is_dir():
            return False
        shutil.rmtree(target)
        return True


# -- the server ---------------------------------------------------------------------------------


@dataclass
class FakeCluster:
    id: str
    name: str
    region: str
    endpoint: str
    created_at: str = "2026-01-05T10:00:00Z"
    registries: list[str] = field(default_factory=list)  # integrated DOCR registry names

    def to_api(self) -> dict[str, Any]:
        """A cluster object as the API returns it (schema `cluster_read`)."""
        node_id = str(uuid.uuid5(CLUSTER_ID_NAMESPACE, f"{self.id}/node"))
        return {
            "id": self.id,
            "name": self.name,
            "region": self.region,
            "version": "1.35.0-do.0",
            "cluster_subnet": "10.244.0.0/16",
            "service_subnet": "10.245.0.0/16",
            "vpc_uuid": str(uuid.uuid5(CLUSTER_ID_NAMESPACE, f"{self.region}/vpc")),
            "endpoint": self.endpoint,
            "tags": ["k8s", f"k8s:{self.id}"],
            "node_pools": [
                {
                    "id": str(uuid.uuid5(CLUSTER_ID_NAMESPACE, f"{self.id}/pool")),
                    "name": "kwok-pool",
                    "size": "s-2vcpu-4gb",
                    "count": 1,
                    "tags": ["k8s", f"k8s:{self.id}", "k8s:worker"],
                    "labels": None,
                    "taints": [],
                    "auto_scale": False,
                    "min_nodes": 0,
                    "max_nodes": 0,
                    "nodes": [
                        {
                            "id": node_id,
                            "name": "kwok-node-0",
                            "status": {"state": "running"},
                            "droplet_id": "100000001",
                            "created_at": self.created_at,
                            "updated_at": self.created_at,
                        }
                    ],
                }
            ],
            "maintenance_policy": {"start_time": "00:00", "duration": "4h0m0s", "day": "any"},
            "auto_upgrade": False,
            "isolated_workers": False,
            "status": {"state": "running", "message": "Cluster is running."},
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "surge_upgrade": False,
            "registry_enabled": bool(self.registries),
            "registries": list(self.registries) or None,
            "ha": False,
            "control_plane_firewall": None,
            "sso": {"enabled": False, "required": False},
        }


@dataclass
class FaultRule:
    count: int = 1
    status: int | None = None
    retry_after: int | None = None
    ratelimit_reset_in: int | None = None
    delay: float = 0.0
    path: str = ""
    endpoint: str = ""  # an operationId (OPERATIONS): only requests to that endpoint
    skip: int = 0  # let this many matching requests through first

    @classmethod
    def parse(cls, raw: object) -> FaultRule:
        if not isinstance(raw, dict) or not set(raw) <= set(cls.__dataclass_fields__):
            raise ValueError(f"bad fault rule {raw!r}")
        rule = cls(**raw)
        if rule.status is not None and rule.status not in ERRORS:
            raise ValueError(f"fault status must be one of {sorted(ERRORS)}")
        if rule.endpoint and rule.endpoint not in OPERATIONS:
            raise ValueError(f"fault endpoint must be one of {sorted(OPERATIONS)}")
        return rule

    def matches(self, method: str, path: str) -> bool:
        if self.count <= 0 or self.path not in path:
            return False
        return not self.endpoint or operation_of(method, path) == self.endpoint


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class FakeDigitalOcean:
    """The stand-in. Thread-safe; `start()`/`stop()` or use it as a context manager."""

    def __init__(
        self,
        access_token: str,
        *,
        cluster_name: str = DEFAULT_CLUSTER_NAME,
        region: str = "nyc1",
        server: str = "https://127.0.0.1:6443",
        ca_data: str = base64.b64encode(b"not a real CA").decode(),
        token_minter: TokenMinter = random_minter,
        registry: str = DEFAULT_REGISTRY,
        registry_name: str = DEFAULT_REGISTRY_NAME,
        registry_login: tuple[str, str] | None = None,
        operator: PullSecretOperator | None = None,
        registry_storage: Path | None = None,
        port: int = 0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.access_token = access_token
        self.cluster = FakeCluster(cluster_id_for(cluster_name), cluster_name, region, server)
        self.server_url = server
        self.ca_data = ca_data
        self.token_minter = token_minter
        self.registry = registry
        self.registry_name = registry_name
        self.registry_login = registry_login
        # Read-only pull credentials the DOSecret stand-in puts into the cluster (made once).
        pull = base64.b64encode(f"pull-{secrets.token_hex(8)}:{secrets.token_hex(16)}".encode())
        self.pull_config = json.dumps({"auths": {DEFAULT_REGISTRY: {"auth": pull.decode()}}})
        self.operator = operator
        self.memory_tags = MemoryTags()
        self.tag_store: MemoryTags | StorageTags = (
            StorageTags(registry_storage) if registry_storage else self.memory_tags
        )
        self._stopping = threading.Event()
        self._syncer: threading.Thread | None = None
        self.log = log or (lambda line: None)
        self.link_base: str | None = None  # tests point next-page links elsewhere with it
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self._reset()

    # -- lifecycle

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeDigitalOcean:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.05)  # stop() returns within 50 ms

    def stop(self) -> None:
        self._stopping.set()
        if self._syncer is not None:
            self._syncer.join(timeout=5)
        if self._thread is not None:  # shutdown() would wait forever on a server never started
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeDigitalOcean:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- fault switches (also over HTTP at /_fake/faults)

    def _reset(self) -> None:
        self.faults: list[FaultRule] = []
        self.forbidden_scopes: set[str] = set()
        self.filler_clusters = 0
        self.extra_clusters: list[FakeCluster] = []
        self.requests: list[dict[str, Any]] = []
        self.remaining = RATE_LIMIT
        self.window_start = time.time()
        self.cluster.registries = []
        self.gc: dict[str, Any] | None = None  # the last garbage collection, with its end time
        self.gc_seconds = 1.0
        self.garbage_collections: list[str] = []  # uuids started through the API
        self.deleted_tags: list[str] = []  # repo:tag
        self.memory_tags.seed({})
        if self.operator is not None:
            self.operator.forget()

    def configure(self, switches: dict[str, Any]) -> dict[str, Any]:
        known = {
            "reset",
            "faults",
            "forbid_scopes",
            "filler_clusters",
            "add_clusters",
            "unlink_registry",
            "garbage_collection",
            "gc_seconds",
            "registry_tags",
        }
        if not isinstance(switches, dict) or not set(switches) <= known:
            raise ValueError(f"fault switches must be an object with keys from {sorted(known)}")
        rules = [FaultRule.parse(r) for r in switches.get("faults", [])]
        with self._lock:
            if switches.get("reset"):
                self._reset()
            self.faults.extend(rules)
            if "forbid_scopes" in switches:
                self.forbidden_scopes = {str(s) for s in switches["forbid_scopes"]}
            if "filler_clusters" in switches:
                self.filler_clusters = int(switches["filler_clusters"])
            if switches.get("unlink_registry"):
                self.cluster.registries = []
                if self.operator is not None:
                    self.operator.forget()
            if "garbage_collection" in switches:
                running = switches["garbage_collection"]
                self.gc = self._new_gc(float(running.get("running_for", 3600)))
                self.gc["status"] = "scanning manifests"
                if "reads" in running:
                    self.gc["reads"] = int(running["reads"])
            if "gc_seconds" in switches:
                self.gc_seconds = float(switches["gc_seconds"])
            if "registry_tags" in switches:
                self.memory_tags.seed(switches["registry_tags"])
            for extra in switches.get("add_clusters", []):
                name = str(extra["name"])
                index = 1 + sum(c.name == name for c in self.extra_clusters)
                cid = cluster_id_for(name, index)
                region = str(extra.get("region", "ams3"))
                endpoint = f"https://{cid}.k8s.ondigitalocean.com"
                self.extra_clusters.append(FakeCluster(cid, name, region, endpoint))
            return self.switches()

    def switches(self) -> dict[str, Any]:
        return {
            "faults": [vars(rule).copy() for rule in self.faults],
            "forbid_scopes": sorted(self.forbidden_scopes),
            "filler_clusters": self.filler_clusters,
            "add_clusters": [{"name": c.name, "region": c.region} for c in self.extra_clusters],
            "registry_linked": [c.id for c in [self.cluster, *self.extra_clusters] if c.registries],
            "garbage_collections": list(self.garbage_collections),
            "deleted_tags": list(self.deleted_tags),
        }

    def all_clusters(self) -> list[FakeCluster]:
        # Fillers first, so the real cluster sits on the last page of a long listing.
        fillers = [
            FakeCluster(
                cluster_id_for(f"filler-{i:04d}"),
                f"filler-{i:04d}",
                "fra1",
                f"https://{cluster_id_for(f'filler-{i:04d}')}.k8s.ondigitalocean.com",
            )
            for i in range(self.filler_clusters)
        ]
        return [*fillers, *self.extra_clusters, self.cluster]

    # -- request handling

    def _next_fault(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.faults:
                if rule.matches(method, path):
                    if rule.skip > 0:
                        rule.skip -= 1
                        return None
                    rule.count -= 1
                    if rule.count == 0:
                        self.faults.remove(rule)
                    return rule
        return None

    def _rate_headers(self, rule: FaultRule | None) -> dict[str, str]:
        with self._lock:
            self.remaining = max(0, self.remaining - 1)
            remaining, reset = self.remaining, int(self.window_start) + 3600
        if rule is not None and rule.ratelimit_reset_in is not None:
            remaining, reset = 0, int(time.time()) + rule.ratelimit_reset_in
        return {
            "ratelimit-limit": str(RATE_LIMIT),
            "ratelimit-remaining": str(remaining),
            "ratelimit-reset": str(reset),
        }

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> _Reply:
        parts = urlsplit(target)
        rule = self._next_fault(method, parts.path)
        request_id = str(uuid.uuid4())
        if rule is not None and rule.delay:
            time.sleep(rule.delay)
        auth = headers.get("authorization", "")
        auth_state = (
            "ok" if auth == f"Bearer {self.access_token}" else "wrong" if auth else "missing"
        )
        if rule is not None and rule.status is not None:
            reply = _error(rule.status, request_id)
            if rule.retry_after is not None:
                reply.headers["retry-after"] = str(rule.retry_after)
        elif auth_state != "ok":
            reply = _error(401, request_id)
        else:
            reply = self._route(method, parts.path, parts.query, body, request_id)
        reply.headers.update(self._rate_headers(rule))
        reply.headers["x-request-id"] = request_id
        entry = {
            "time": time.time(),
            "method": method,
            "path": parts.path,
            "query": parts.query,
            "headers": {k: _redact(k, v) for k, v in headers.items()},
            "body": body.decode(errors="replace"),
            "auth": auth_state,
            "status": reply.status,
            "response_headers": {"content-type": reply.content_type, **reply.headers},
            "response_body": reply.body.decode(),
        }
        with self._lock:
            self.requests.append(entry)
        return reply

    def _route(self, method: str, path: str, query: str, body: bytes, request_id: str) -> _Reply:
        operation = operation_of(method, path)
        if operation is None:
            known_path = any(route == path for _, route, _ in OPERATIONS.values())
            return _error(405 if known_path else 404, request_id)
        try:
            params = _params(query)
            self._need(OPERATIONS[operation][2])
            if operation == "kubernetes_list_clusters":
                return self._list(params, request_id)
            if operation == "registry_get_dockerCredentials":
                if _bool(params, "read_write"):
                    self._need({"registry:update"})
                return self._docker_credentials(_int(params, "expiry_seconds", 0, 0))
            if operation == "registry_get":
                return self._registry()
            if operation == "kubernetes_add_registry":
                return self._link(body, request_id)
            if operation == "registry_list_repositoryTags":
                return self._tags(path, params, request_id)
            if operation == "registry_delete_repositoryTag":
                return self._delete_tag(path, request_id)
            if operation == "registry_get_garbageCollection":
                return self._get_gc(path, request_id)
            if operation == "registry_run_garbageCollection":
                return self._run_gc(path, body, request_id)
            match = _CLUSTER_PATH.match(path)
            assert match is not None
            with self._lock:
                cluster = next((c for c in self.all_clusters() if c.id == match.group(1)), None)
            what = match.group(2)
            if cluster is None:
                return _error(404, request_id)
            if not what:
                return _json(200, {"kubernetes_cluster": cluster.to_api()})
            expiry = _int(params, "expiry_seconds", 0, 0) or SEVEN_DAYS
            _token_type(params)
            return self._kubeconfig(cluster, expiry)
        except _BadRequest as exc:
            return _error(400, request_id, str(exc))
        except _Forbidden:
            return _error(403, request_id)
        except (OSError, ValueError, KeyError) as exc:  # the minter failed
            self.log(f"error: {type(exc).__name__}: {exc}")
            return _error(500, request_id)

    def _need(self, scopes: set[str]) -> None:
        with self._lock:
            if scopes & self.forbidden_scopes:
                raise _Forbidden

    def _list(self, params: dict[str, str], request_id: str) -> _Reply:
        per_page = _int(params, "per_page", 20, 1, 200)
        page = _int(params, "page", 1, 1)
        with self._lock:
            clusters = self.all_clusters()
        total = len(clusters)
        last = max(1, -(-total // per_page))
        body: dict[str, Any] = {
            "kubernetes_clusters": [
                c.to_api() for c in clusters[(page - 1) * per_page : page * per_page]
            ],
            "meta": {"total": total},
        }
        if last > 1:

            def link(n: int) -> str:
                query = urlencode({"page": n, "per_page": per_page})
                return f"{self.link_base or self.url}{CLUSTERS_PATH}?{query}"

            pages: dict[str, str] = {}
            if page > 1:
                pages.update(first=link(1), prev=link(min(page - 1, last)))
            if page < last:
                pages.update(next=link(page + 1), last=link(last))
            body["links"] = {"pages": pages}
        return _json(200, body)

    def _kubeconfig(self, cluster: FakeCluster, expiry: int) -> _Reply:
        minted = self.token_minter(expiry)
        name = f"do-{cluster.region}-{cluster.name}"
        q = json.dumps  # JSON strings are valid YAML double-quoted scalars
        text = "\n".join(
            [
                "apiVersion: v1",
                "clusters:",
                "- cluster:",
                f"    certificate-authority-data: {q(self.ca_data)}",
                f"    server: {q(self.server_url)}",
                f"  name: {q(name)}",
                "contexts:",
                "- context:",
                f"    cluster: {q(name)}",
                f"    user: {q(name + '-admin')}",
                f"  name: {q(name)}",
                f"current-context: {q(name)}",
                "kind: Config",
                "preferences: {}",
                "users:",
                f"- name: {q(name + '-admin')}",
                "  user:",
                f"    token: {q(minted.token)}",
                "",
            ]
        )
        return _Reply(200, text.encode(), "application/yaml")

    def _registry(self) -> _Reply:
        created = "2026-01-05T10:00:00Z"
        return _json(
            200,
            {
                "registry": {
                    "name": self.registry_name,
                    "created_at": created,
                    "region": self.cluster.region,
                    "storage_usage_bytes": 0,
                    "storage_usage_bytes_updated_at": created,
                }
            },
        )

    def _link(self, body: bytes, request_id: str) -> _Reply:
        try:
            request = json.loads(body or b"null")
        except ValueError:
            raise _BadRequest("the body is not JSON") from None
        uuids = request.get("cluster_uuids") if isinstance(request, dict) else None
        if not isinstance(uuids, list) or not uuids or not all(isinstance(u, str) for u in uuids):
            raise _BadRequest("cluster_uuids must be a non-empty array of cluster ids")
        with self._lock:
            clusters = {c.id: c for c in self.all_clusters()}
            if any(u not in clusters for u in uuids):
                return _error(404, request_id)
            for u in uuids:
                if self.registry_name not in clusters[u].registries:
                    clusters[u].registries.append(self.registry_name)
        if self.cluster.id in uuids:
            self._start_syncer()
        return _Reply(204, b"", "")

    def _repo(self, path: str) -> tuple[str, str, str] | None:
        """(registry, repository, tag) of a tags path; None when it is not this registry."""
        match = _TAGS_PATH.match(path)
        assert match is not None
        if match.group(1) != self.registry_name:
            return None
        tag = unquote(match.group(3)[1:]) if match.group(3) else ""
        return match.group(1), unquote(match.group(2)), tag

    def _tags(self, path: str, params: dict[str, str], request_id: str) -> _Reply:
        per_page = _int(params, "per_page", 20, 1, 200)
        page = _int(params, "page", 1, 1)
        where = self._repo(path)
        found = self.tag_store.tags(where[0], where[1]) if where else None
        if where is None or found is None:
            return _error(404, request_id)
        registry, repo, _ = where
        items = [
            {
                "registry_name": registry,
                "repository": repo,
                "tag": tag,
                "manifest_digest": digest,
                "updated_at": updated,
            }
            for tag, digest, updated in found
        ]
        total = len(items)
        last = max(1, -(-total // per_page))
        body: dict[str, Any] = {
            "tags": items[(page - 1) * per_page : page * per_page],
            "meta": {"total": total},
        }
        if page < last:
            query = urlencode({"page": page + 1, "per_page": per_page})
            body["links"] = {"pages": {"next": f"{self.link_base or self.url}{path}?{query}"}}
        return _json(200, body)

    def _delete_tag(self, path: str, request_id: str) -> _Reply:
        where = self._repo(path)
        if where is None or not self.tag_store.delete(*where):
            return _error(404, request_id)
        with self._lock:
            self.deleted_tags.append(f"{where[1]}:{where[2]}")
        self.log(f"registry: deleted tag {where[1]}:{where[2]}")
        return _Reply(204, b"", "")

    def _new_gc(self, seconds: float) -> dict[str, Any]:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "uuid": str(uuid.uuid4()),
            "registry_name": self.registry_name,
            "status": "requested",
            "created_at": now,
            "updated_at": now,
            "blobs_deleted": 0,
            "freed_bytes": 0,
            "ends": time.monotonic() + seconds,
        }

    def _active_gc(self, read: bool = False) -> dict[str, Any] | None:
        """The running garbage collection; a `read` counts against its `reads` (if it has)."""
        with self._lock:
            gc = self.gc
            if gc is None or time.monotonic() >= gc["ends"] or gc.get("reads", 1) <= 0:
                return None
            if read and "reads" in gc:
                gc["reads"] -= 1
            return {k: v for k, v in gc.items() if k not in ("ends", "reads")}

    def _get_gc(self, path: str, request_id: str) -> _Reply:
        match = _GC_PATH.match(path)
        assert match is not None
        gc = self._active_gc(read=True) if match.group(1) == self.registry_name else None
        if gc is None:
            return _error(404, request_id)
        return _json(200, {"garbage_collection": gc})

    def _run_gc(self, path: str, body: bytes, request_id: str) -> _Reply:
        match = _GC_PATH.match(path)
        assert match is not None
        if match.group(1) != self.registry_name:
            return _error(404, request_id)
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise _BadRequest("the body is not JSON") from None
        kinds = (
            "untagged manifests only",
            "unreferenced blobs only",
            "untagged manifests and unreferenced blobs",
        )
        if not isinstance(request, dict) or request.get("type", kinds[0]) not in kinds:
            raise _BadRequest(f"type must be one of {', '.join(kinds)}")
        if self._active_gc() is not None:
            return _error(409, request_id)
        with self._lock:
            self.gc = self._new_gc(self.gc_seconds)
            self.garbage_collections.append(self.gc["uuid"])
            shown = {k: v for k, v in self.gc.items() if k != "ends"}
        return _json(201, {"garbage_collection": shown})

    def _start_syncer(self) -> None:
        """The DOSecret stand-in: serve every namespace now, then new ones every second."""
        if self.operator is None:
            return
        with self._lock:
            if self._syncer is not None and self._syncer.is_alive():
                return
            self._syncer = threading.Thread(target=self._sync_loop, daemon=True)
            self._syncer.start()

    def _sync_loop(self) -> None:
        assert self.operator is not None
        secret = f"registry-{self.registry_name}"
        while not self._stopping.is_set():
            if self.registry_name not in self.cluster.registries:
                return  # unlinked (or reset): stop
            try:
                self.operator.sync(secret, self.pull_config.encode())
            except (OSError, ValueError, KeyError) as exc:
                self.log(f"DOSecret: {type(exc).__name__}: {exc}")
            self._stopping.wait(SYNC_INTERVAL_S)

    def _docker_credentials(self, expiry: int) -> _Reply:
        del expiry  # the stand-in's registry login does not expire by itself
        user, password = self.registry_login or ("fake-docr-" + secrets.token_hex(8),) * 2
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        return _json(200, {"auths": {self.registry: {"auth": auth}}})

    def control(self, method: str, path: str, body: bytes) -> _Reply:
        try:
            if method == "GET" and path == "/_fake/requests":
                with self._lock:
                    log = [
                        {k: v for k, v in e.items() if k != "response_body"} for e in self.requests
                    ]
                return _json(200, log)
            if method == "GET" and path == "/_fake/faults":
                with self._lock:
                    return _json(200, self.switches())
            if method == "POST" and path == "/_fake/faults":
                return _json(200, self.configure(json.loads(body or b"{}")))
            if method == "POST" and path == "/_fake/reset":
                return _json(200, self.configure({"reset": True}))
        except (ValueError, TypeError, KeyError) as exc:
            return _json(400, {"id": "bad_request", "message": str(exc)})
        return _json(404, {"id": "not_found", "message": f"no control endpoint {method} {path}"})


class _BadRequest(Exception):
    pass


class _Forbidden(Exception):
    pass


def _redact(name: str, value: str) -> str:
    if name != "authorization":
        return value
    scheme, _, _ = value.partition(" ")
    return f"{scheme} <redacted>"


def _params(query: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise _BadRequest(f"bad query string: {exc}") from None
    if any(len(v) > 1 for v in parsed.values()):
        raise _BadRequest("repeated query parameter")
    return {k: v[0] for k, v in parsed.items()}


def _int(params: dict[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]+", raw) or int(raw) < low or (high is not None and int(raw) > high):
        limit = f"{low}..{high}" if high is not None else f">= {low}"
        raise _BadRequest(f"{name} must be an integer {limit}")
    return int(raw)


def _token_type(params: dict[str, str]) -> None:
    kind = params.get("type", "token")
    if kind not in ("token", "sso"):
        raise _BadRequest("type must be token or sso")
    if kind == "sso":
        raise _BadRequest("SSO is not enabled for this cluster")


def _bool(params: dict[str, str], name: str) -> bool:
    raw = params.get(name, "false")
    if raw not in ("true", "false"):
        raise _BadRequest(f"{name} must be true or false")
    return raw == "true"


def _json(status: int, body: object) -> _Reply:
    return _Reply(status, json.dumps(body).encode())


def _error(status: int, request_id: str, message: str = "") -> _Reply:
    code, default = ERRORS[status]
    return _json(status, {"id": code, "message": message or default, "request_id": request_id})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-digitalocean/1"

    def _serve(self) -> None:
        fake: FakeDigitalOcean = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        if path.startswith("/_fake/"):
            reply = fake.control(self.command, path, body)
        else:
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = fake.handle(self.command, self.path, headers, body)
            fake.log(f"{self.command} {path} -> {reply.status}")
        try:
            self.send_response(reply.status)
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out on a slow answer: expected with delay faults

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per API request is logged by _serve, without headers


# -- command line -------------------------------------------------------------------------------


def _stderr(line: str) -> None:
    print(f"fake-digitalocean: {line}", file=sys.stderr, flush=True)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--admin-kubeconfig", type=Path, required=True)
    parser.add_argument("--service-account", required=True, help="NAMESPACE/NAME")
    token = parser.add_mutually_exclusive_group(required=True)
    token.add_argument("--access-token", help="the DigitalOcean token clients must send")
    token.add_argument("--access-token-file", type=Path, help="a file holding that token")
    parser.add_argument("--cluster-name", default=DEFAULT_CLUSTER_NAME)
    parser.add_argument("--region", default="nyc1")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help="host for docker-credentials")
    parser.add_argument(
        "--registry-name", default=DEFAULT_REGISTRY_NAME, help="what GET /v2/registry names"
    )
    parser.add_argument(
        "--registry-storage",
        type=Path,
        help="the stack registry's storage root: its tags are what the retention calls see",
    )
    parser.add_argument(
        "--registry-login-file",
        type=Path,
        help="file with `user:password` handed out by docker-credentials (default: random)",
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def _running(args: argparse.Namespace) -> Iterator[FakeDigitalOcean]:
    admin = AdminClient(AdminKubeconfig.load(args.admin_kubeconfig))
    minter = TokenRequestMinter(admin, args.service_account)
    token = args.access_token or args.access_token_file.read_text().strip()
    login = None
    if args.registry_login_file:
        user, _, password = args.registry_login_file.read_text().strip().partition(":")
        login = (user, password)
    try:
        fake = FakeDigitalOcean(
            token,
            cluster_name=args.cluster_name,
            region=args.region,
            server=admin.admin.server,
            ca_data=admin.admin.ca_data,
            token_minter=minter,
            registry=args.registry,
            registry_name=args.registry_name,
            registry_login=login,
            operator=PullSecretOperator(admin, _stderr),
            registry_storage=args.registry_storage,
            port=args.port,
            log=_stderr,
        )
        try:
            yield fake
        finally:
            fake.stop()
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        with _running(args) as fake:
            tmp = args.port_file.with_name(args.port_file.name + ".tmp")
            tmp.write_text(f"{fake.port}\n")
            os.replace(tmp, args.port_file)  # readers never see a half-written file
            _stderr(f"listening on {fake.url}, cluster {fake.cluster.name} ({fake.cluster.id})")

            def stop(signum: int, frame: object) -> None:
                threading.Thread(target=fake._httpd.shutdown, daemon=True).start()

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            fake.serve_forever()
            _stderr("stopped")
    except (OSError, ValueError, ssl.SSLError) as exc:
        _stderr(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
