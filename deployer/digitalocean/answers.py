"""What the DigitalOcean API answers, read without HTTP: the constants the client and its callers
share, the values the client returns (`DoksCluster`, `Kubeconfig`) and the pure checks and parsers
of the API's answers.

No `requests` or `urllib3` here: settings, services and tests name these at start-up without
paying for the HTTP stack, which `deployer.digitalocean.client` loads when a call is made.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from deployer import __version__
from deployer.endpoints import api_root
from deployer.errors import InputError, ServiceError

if TYPE_CHECKING:
    import yaml

DEFAULT_API_URL = "https://api.digitalocean.com"
SERVICE = "DigitalOcean API"
USER_AGENT = f"django-k8s-deploy/{__version__}"

# Scopes per operation, as the `security` list of each operation in DigitalOcean's spec names them
# (tests/spec/digitalocean-openapi/subset.yaml); 403 bodies do not say which scope was missing.
SCOPE_READ = "kubernetes:read"  # GET /v2/kubernetes/clusters, GET .../{cluster_id}
SCOPE_ACCESS = "kubernetes:access_cluster"  # GET .../{cluster_id}/kubeconfig
SCOPE_REGISTRY_READ = "registry:read"  # GET /v2/registry
# GET /v2/registry/docker-credentials lists registry:read and registry:update. (A maintainer in
# action-doctl#83 once said read-write needs registry:create; the spec is what we name.)
SCOPES_PUSH = ("registry:read", "registry:update")
# POST /v2/kubernetes/registry (add the registry to clusters: link-registry).
SCOPES_LINK = ("kubernetes:create", "kubernetes:update")
# Registry retention: list a repository's tags and read the active garbage collection
# (registry:read), delete a tag (registry:delete), start a garbage collection (registry:update).
SCOPE_REGISTRY_DELETE = "registry:delete"
SCOPE_REGISTRY_UPDATE = "registry:update"
# A garbage collection in one of these states has not ended: the registry is read-only meanwhile.
GC_ENDED = frozenset({"succeeded", "failed", "cancelled"})

HOW_TO_CREATE = "https://docs.digitalocean.com/reference/api/create-personal-access-token/"
PER_PAGE = 200  # the spec's maximum: most accounts need a single request
MAX_PAGES = 100  # 20,000 clusters; a longer chain means a link loop, not an account
NAMES_SHOWN = 20
SEVEN_DAYS = 7 * 24 * 3600  # what the API gives for expiry_seconds=0

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_REGISTRY_NAME = re.compile(r"^[a-z0-9-]{1,63}$")  # the spec's pattern for registry names


@dataclass(frozen=True)
class DoksCluster:
    """A DOKS cluster. Only `id` is known when the input already was an id (no API call)."""

    id: str
    name: str | None = None
    region: str | None = None
    endpoint: str | None = None
    status: str | None = None
    registry_enabled: bool | None = None  # is a container registry integrated with the cluster?
    registries: tuple[str, ...] = ()  # which ones (DOCR registry names)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.id})" if self.name else self.id

    @property
    def warning(self) -> str | None:
        """A line worth printing when the cluster is known not to be running."""
        if self.status is None or self.status == "running":
            return None
        return f"cluster {self.label} is `{self.status}`, not `running`; the deploy may fail"


@dataclass(frozen=True, repr=False)
class Kubeconfig:
    """A kubeconfig dict and the secret strings inside it (mask them before anything prints).

    `expires_at` is when the token stops working: the request time plus the requested expiry,
    which the real expiry is never earlier than.
    """

    config: dict[str, Any]
    token: str | None
    expires_at: datetime | None
    secrets: tuple[str, ...]
    context: str

    def __repr__(self) -> str:  # the default repr would print the token
        return f"Kubeconfig(context={self.context!r}, expires_at={self.expires_at!r})"


# -- checks and parsers of the API's answers ----------------------------------------------------


def _check_api_url(api_url: str) -> str:
    url = api_root(
        api_url, where="DIGITALOCEAN_API_URL", hint=f"Use the API root, e.g. {DEFAULT_API_URL}."
    )
    if urlsplit(url).path.endswith("/v2"):
        raise InputError(
            f"`{api_url}` ends in /v2",
            where="DIGITALOCEAN_API_URL",
            hint=f"Give the API root without /v2, e.g. {DEFAULT_API_URL}.",
        )
    return url


def _check_expiry(expiry_seconds: int) -> None:
    # 0 would mean a 7-day token: never what a deploy wants.
    if (
        isinstance(expiry_seconds, bool)
        or not isinstance(expiry_seconds, int)
        or expiry_seconds < 1
    ):
        raise InputError(
            f"must be a positive number of seconds, got {expiry_seconds!r}", where="expiry-seconds"
        )


def _list_of(body: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    items = body.get(key)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ServiceError(SERVICE, f"response has no `{key}` list")
    return items


def _cluster(item: Mapping[str, Any]) -> DoksCluster:
    cid, name = item.get("id"), item.get("name")
    if not isinstance(cid, str) or not isinstance(name, str):
        raise ServiceError(SERVICE, "a cluster in the response has no id or name")
    status = item.get("status")
    state = status.get("state") if isinstance(status, dict) else None
    enabled = item.get("registry_enabled")
    registries = item.get("registries")
    return DoksCluster(
        id=cid,
        name=name,
        region=_str_or_none(item.get("region")),
        endpoint=_str_or_none(item.get("endpoint")),
        status=_str_or_none(state),
        registry_enabled=enabled if isinstance(enabled, bool) else None,
        registries=tuple(r for r in registries if isinstance(r, str))
        if isinstance(registries, list)
        else (),
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _no_such_cluster(wanted: str, clusters: list[DoksCluster]) -> str:
    names = sorted({c.name for c in clusters if c.name})
    if not names:
        return (
            f"no cluster is named `{wanted}`; this token sees no clusters at all "
            "(is it from the right team?)"
        )
    shown = ", ".join(names[:NAMES_SHOWN])
    more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
    close = difflib.get_close_matches(wanted, names, n=1) or [
        n for n in names if n.lower() == wanted.lower()
    ]
    guess = f" Did you mean `{close[0]}`?" if close else ""
    return f"no cluster is named `{wanted}`; the token sees: {shown}{more}.{guess}"


def _checked_kubeconfig(config: object, expires_at: datetime | None) -> Kubeconfig:
    """Check the kubeconfig is usable by a CI job and collect its secrets."""
    if not isinstance(config, dict):
        raise ServiceError(SERVICE, "kubeconfig response is not a YAML mapping")
    current = config.get("current-context")
    context = _named(config, "contexts", current).get("context") if current else None
    if not isinstance(context, dict):
        raise ServiceError(SERVICE, "kubeconfig has no usable current-context")
    cluster = _named(config, "clusters", context.get("cluster")).get("cluster")
    user = _named(config, "users", context.get("user")).get("user")
    if not isinstance(cluster, dict) or not isinstance(cluster.get("server"), str):
        raise ServiceError(SERVICE, "kubeconfig's current cluster has no server")
    if not isinstance(user, dict):
        raise ServiceError(SERVICE, "kubeconfig's current user is missing")
    if "exec" in user:
        raise InputError(
            "the cluster only hands out SSO (exec) kubeconfigs, which a CI job cannot log in with",
            where="cluster",
            hint="Allow token authentication on the cluster (SSO `required: false`).",
        )
    token = user.get("token") if isinstance(user.get("token"), str) else None
    secrets = tuple(
        value
        for key in ("token", "client-key-data", "client-certificate-data", "password")
        if isinstance(value := user.get(key), str) and value
    )
    if not secrets:
        raise ServiceError(SERVICE, "kubeconfig's current user has no token or client key")
    return Kubeconfig(
        config=config, token=token, expires_at=expires_at, secrets=secrets, context=str(current)
    )


def _named(config: Mapping[str, Any], section: str, name: object) -> dict[str, Any]:
    entries = config.get(section)
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict) and entry.get("name") == name:
                return entry
    return {}


def _mark(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"line {mark.line + 1}" if mark is not None else type(exc).__name__


@dataclass(frozen=True)
class RegistryTag:
    """One tag of a DOCR repository (schema `repository_tag`)."""

    tag: str
    digest: str
    updated_at: datetime | None


@dataclass(frozen=True)
class GarbageCollection:
    """A registry garbage collection (schema `garbage_collection`)."""

    uuid: str
    status: str

    @property
    def running(self) -> bool:
        return self.status not in GC_ENDED


def _registry_tag(item: object) -> RegistryTag:
    if not isinstance(item, dict) or not isinstance(item.get("tag"), str) or not item["tag"]:
        raise ServiceError(SERVICE, "a repository tag in the answer has no `tag`")
    digest = item.get("manifest_digest")
    updated = item.get("updated_at")
    when: datetime | None = None
    if isinstance(updated, str):
        try:
            when = datetime.fromisoformat(updated.replace("Z", "+00:00"))
        except ValueError:
            when = None
    return RegistryTag(item["tag"], digest if isinstance(digest, str) else "", when)


def _garbage_collection(body: Mapping[str, Any]) -> GarbageCollection:
    gc = body.get("garbage_collection")
    if not isinstance(gc, dict) or not isinstance(gc.get("status"), str):
        raise ServiceError(SERVICE, "garbage collection answer has no `garbage_collection.status`")
    return GarbageCollection(str(gc.get("uuid") or ""), gc["status"])
