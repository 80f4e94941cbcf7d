"""The DigitalOcean HTTP client: the only module that speaks HTTP to DigitalOcean.

Which endpoint gives the kubeconfig
-----------------------------------
`kubeconfig()` uses `GET /v2/kubernetes/clusters/{id}/kubeconfig?expiry_seconds=N&type=token`,
the route doctl's `kubeconfig save --expiry-seconds` takes. `type=token` is sent because an
SSO-enabled cluster otherwise answers with an exec (`doctl` OIDC login) kubeconfig that a CI job
cannot complete and on which `expiry_seconds` has no effect. The endpoint's token behaviour is
documented; `/credentials` is documented only as a token source for exec plugins and its behaviour
on SSO-required clusters is an open question, so the client does not call it.

Every successful call mints a new DigitalOcean API token in the user's token list, so retries
are few and bounded.

Retries
-------
One `requests.Session` with an `HTTPAdapter` whose `urllib3.Retry` subclass (`_Retry`) retries
GETs on 429/500/502/503/504 and connection errors. Waits: `retry-after` if present; for a 429
without it, `ratelimit-reset` (epoch seconds) minus now; otherwise exponential backoff. Every
single wait is capped and so is their sum, so a flooded token cannot stall a deploy for long.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import yaml

from deployer.digitalocean.answers import (
    _REGISTRY_NAME,
    _UUID,
    DEFAULT_API_URL,
    HOW_TO_CREATE,
    MAX_PAGES,
    PER_PAGE,
    SCOPE_ACCESS,
    SCOPE_READ,
    SCOPE_REGISTRY_DELETE,
    SCOPE_REGISTRY_READ,
    SCOPE_REGISTRY_UPDATE,
    SCOPES_LINK,
    SCOPES_PUSH,
    SERVICE,
    USER_AGENT,
    DoksCluster,
    GarbageCollection,
    Kubeconfig,
    RegistryTag,
    _check_api_url,
    _check_expiry,
    _checked_kubeconfig,
    _cluster,
    _garbage_collection,
    _list_of,
    _mark,
    _no_such_cluster,
    _registry_tag,
)
from deployer.endpoints import bearer_token, origin
from deployer.errors import InputError, ServiceError
from deployer.http_client import RetryPolicy, SessionClient, retrying_session


class DigitalOcean(SessionClient):
    """A client for the few DigitalOcean API calls a deploy needs."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        token = bearer_token(
            token, where="digitalocean-token", empty="is empty; pass a DigitalOcean API token"
        )
        self.api_url = _check_api_url(api_url)
        self.timeout = timeout
        self._session, self._retry = retrying_session(
            retry or RetryPolicy(),
            methods=["GET"],
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
        )

    # -- clusters ---------------------------------------------------------------------------

    def find_cluster(self, name_or_id: str) -> DoksCluster:
        """A hyphenated UUID is taken as the id without a call; a name must match exactly once."""
        wanted = name_or_id.strip()
        if not wanted:
            raise InputError("is empty; give the cluster's name or id", where="cluster")
        if _UUID.match(wanted):
            return DoksCluster(id=wanted.lower())
        clusters = list(self.list_clusters())
        matches = [c for c in clusters if c.name == wanted]
        if len(matches) == 1:
            return matches[0]
        if matches:
            ids = ", ".join(f"{c.id} ({c.region})" for c in matches)
            raise InputError(
                f"{len(matches)} clusters are named `{wanted}`: {ids}",
                where="cluster",
                hint="Pass the id of the one you mean instead of the name.",
            )
        raise InputError(_no_such_cluster(wanted, clusters), where="cluster")

    def list_clusters(self) -> Iterator[DoksCluster]:
        """Every cluster the token can see, following `links.pages.next`; any page error fails."""
        url: str | None = f"{self.api_url}/v2/kubernetes/clusters"
        params: dict[str, Any] | None = {"per_page": PER_PAGE}
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) >= MAX_PAGES:
                raise ServiceError(SERVICE, f"cluster list pagination does not end ({url})")
            seen.add(url)
            body = self._json(self._get(url, params, SCOPE_READ, "list clusters"))
            params = None  # the next link already carries the query
            for item in _list_of(body, "kubernetes_clusters"):
                yield _cluster(item)
            url = self._next_page(body)

    def get_cluster(self, cluster_id: str) -> DoksCluster:
        body = self._json(
            self._get(
                self._cluster_url(cluster_id),
                None,
                SCOPE_READ,
                "read the cluster",
                cluster_id=cluster_id,
            )
        )
        item = body.get("kubernetes_cluster")
        if not isinstance(item, dict):
            raise ServiceError(SERVICE, "cluster response has no `kubernetes_cluster` object")
        return _cluster(item)

    # -- credentials --------------------------------------------------------------------------

    def kubeconfig(self, cluster_id: str, expiry_seconds: int) -> Kubeconfig:
        """A token kubeconfig from /kubeconfig (YAML), its token valid for `expiry_seconds`."""
        _check_expiry(expiry_seconds)
        requested_at = datetime.now(UTC)
        response = self._get(
            f"{self._cluster_url(cluster_id)}/kubeconfig",
            {"expiry_seconds": expiry_seconds, "type": "token"},
            SCOPE_ACCESS,
            "fetch a kubeconfig",
            cluster_id=cluster_id,
            accept="application/yaml, application/json",
        )
        try:
            config = yaml.safe_load(response.text)
        except yaml.YAMLError as exc:
            raise ServiceError(SERVICE, f"kubeconfig response is not YAML ({_mark(exc)})") from None
        return _checked_kubeconfig(config, requested_at + timedelta(seconds=expiry_seconds))

    def registry_credentials(self, registry: str, expiry_seconds: int) -> tuple[str, str]:
        """Read-write DOCR login (user, password) for `registry` (host, or host/name).

        `GET /v2/registry/docker-credentials`, the call doctl's `registry login` makes. It is
        deprecated upstream in favour of `/v2/registries/{name}/docker-credentials`, whose spec
        entry lacks the `read_write` and `expiry_seconds` parameters we need.
        """
        _check_expiry(expiry_seconds)
        host = registry.strip().split("/", 1)[0]
        body = self._json(
            self._get(
                f"{self.api_url}/v2/registry/docker-credentials",
                {"read_write": "true", "expiry_seconds": expiry_seconds},
                SCOPES_PUSH,
                "get push credentials for the container registry",
            )
        )
        auths = body.get("auths")
        entry = auths.get(host) if isinstance(auths, dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("auth"), str):
            hosts = ", ".join(sorted(auths)) if isinstance(auths, dict) else "none"
            raise ServiceError(SERVICE, f"registry credentials are not for {host} (got: {hosts})")
        try:
            user, sep, password = (
                base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if not sep or not user or not password:
            raise ServiceError(SERVICE, "registry credentials are not base64 `user:password`")
        return user, password

    # -- registry integration (link-registry) --------------------------------------------------

    def registry_name(self) -> str:
        """The account's container registry name (`GET /v2/registry`)."""
        body = self._json(
            self._get(
                f"{self.api_url}/v2/registry",
                None,
                SCOPE_REGISTRY_READ,
                "read the container registry",
                not_found=(
                    "this DigitalOcean account has no container registry",
                    "Create one (doctl registry create NAME), or push the image elsewhere.",
                ),
            )
        )
        registry = body.get("registry")
        name = registry.get("name") if isinstance(registry, dict) else None
        if not isinstance(name, str) or not _REGISTRY_NAME.match(name):
            raise ServiceError(SERVICE, "registry response has no valid `registry.name`")
        return name

    def link_registry(self, cluster_id: str) -> bool:
        """Integrate the account's registry with the cluster (`POST /v2/kubernetes/registry`), so
        DigitalOcean puts a `registry-<name>` pull secret into the cluster's namespaces. Returns
        False without a write when the cluster already has it (`registry_enabled`)."""
        if self.get_cluster(cluster_id).registry_enabled:
            return False
        self._send(
            "POST",
            f"{self.api_url}/v2/kubernetes/registry",
            {"cluster_uuids": [cluster_id]},
            SCOPES_LINK,
            "add the container registry to the cluster",
            cluster_id=cluster_id,
        )
        return True

    # -- registry retention ------------------------------------------------------------------

    def list_tags(self, registry: str, repository: str) -> list[RegistryTag]:
        """Every tag of `repository` in the account's registry `registry`, all pages."""
        url: str | None = self._repository_url(registry, repository) + "/tags"
        params: dict[str, Any] | None = {"per_page": PER_PAGE}
        seen: set[str] = set()
        tags: list[RegistryTag] = []
        while url is not None:
            if url in seen or len(seen) >= MAX_PAGES:
                raise ServiceError(SERVICE, f"tag list pagination does not end ({url})")
            seen.add(url)
            body = self._json(
                self._get(
                    url,
                    params,
                    SCOPE_REGISTRY_READ,
                    f"list the tags of {registry}/{repository}",
                    not_found=(
                        f"the registry has no repository {registry}/{repository}",
                        "Check the image input: registry.digitalocean.com/<registry>/<repository>.",
                    ),
                )
            )
            params = None
            tags.extend(_registry_tag(item) for item in _list_of(body, "tags"))
            url = self._next_page(body)
        return tags

    def delete_tag(self, registry: str, repository: str, tag: str) -> None:
        """Delete one tag (its manifest stays until a garbage collection, if nothing else tags
        it). A tag already gone (404) is not an error."""
        url = f"{self._repository_url(registry, repository)}/tags/{quote(tag, safe='')}"
        try:
            response = self._session.delete(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise self._unreachable(f"delete the tag {tag}", exc) from None
        if response.ok or response.status_code == 404:
            return
        raise _http_error(response, (SCOPE_REGISTRY_DELETE,), f"delete the tag {tag}", "")

    def active_garbage_collection(self, registry: str) -> GarbageCollection | None:
        """The registry's garbage collection that has not ended, or None (the API answers 404
        when there is none)."""
        url = f"{self._registry_url(registry)}/garbage-collection"
        try:
            response = self._session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise self._unreachable("read the registry's garbage collection", exc) from None
        if response.status_code == 404:
            return None
        if not response.ok:
            raise _http_error(
                response, (SCOPE_REGISTRY_READ,), "read the registry's garbage collection", ""
            )
        gc = _garbage_collection(self._json(response))
        return gc if gc.running else None

    def start_garbage_collection(self, registry: str) -> GarbageCollection:
        """Start a garbage collection of untagged manifests and unreferenced blobs."""
        response = self._send(
            "POST",
            f"{self._registry_url(registry)}/garbage-collection",
            {"type": "untagged manifests and unreferenced blobs"},
            (SCOPE_REGISTRY_UPDATE,),
            "start a garbage collection of the registry",
        )
        return _garbage_collection(self._json(response))

    def _registry_url(self, registry: str) -> str:
        if not _REGISTRY_NAME.match(registry):
            raise InputError(f"`{registry}` is not a DOCR registry name", where="image")
        return f"{self.api_url}/v2/registry/{registry}"

    def _repository_url(self, registry: str, repository: str) -> str:
        # A repository with `/` in its name is URL-encoded (the spec says so).
        return f"{self._registry_url(registry)}/repositories/{quote(repository, safe='')}"

    # -- HTTP -----------------------------------------------------------------------------------

    def _cluster_url(self, cluster_id: str) -> str:
        if not _UUID.match(cluster_id):
            raise InputError(f"`{cluster_id}` is not a cluster id (a UUID)", where="cluster")
        return f"{self.api_url}/v2/kubernetes/clusters/{cluster_id}"

    def _get(
        self,
        url: str,
        params: Mapping[str, Any] | None,
        scope: str | tuple[str, ...],
        action: str,
        *,
        cluster_id: str = "",
        accept: str = "",
        not_found: tuple[str, str] | None = None,
    ) -> requests.Response:
        headers = {"Accept": accept} if accept else None
        try:
            response = self._session.get(url, params=params, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise self._unreachable(action, exc) from None
        if response.ok:
            return response
        scopes = (scope,) if isinstance(scope, str) else scope
        raise _http_error(response, scopes, action, cluster_id, not_found)

    def _send(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any],
        scopes: tuple[str, ...],
        action: str,
        *,
        cluster_id: str = "",
    ) -> requests.Response:
        """A write: JSON body, no retries (only GETs are retried)."""
        try:
            response = self._session.request(method, url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise self._unreachable(action, exc) from None
        if response.ok:
            return response
        raise _http_error(response, scopes, action, cluster_id)

    def _unreachable(self, action: str, exc: requests.RequestException) -> ServiceError:
        return ServiceError(
            SERVICE,
            f"could not {action}: {_reason(exc)} (after retries)",
            hint=f"Check that {self.api_url} is reachable from this runner.",
        )

    def _json(self, response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ServiceError(
                SERVICE,
                f"expected a JSON object from {urlsplit(response.url).path}, got "
                f"{response.headers.get('content-type', 'no content type')}{_request_id(response)}",
            )
        return body

    def _next_page(self, body: Mapping[str, Any]) -> str | None:
        links = body.get("links")
        pages = links.get("pages") if isinstance(links, dict) else None
        nxt = pages.get("next") if isinstance(pages, dict) else None
        if not nxt:  # no links, empty pages or no next: the last page
            return None
        if not isinstance(nxt, str) or origin(nxt) != origin(self.api_url):
            # The session carries the token: never send it to a host we were not given.
            raise ServiceError(SERVICE, f"next-page link points elsewhere: {nxt!r}")
        return nxt


# -- errors -------------------------------------------------------------------------------------


def _request_id(response: requests.Response, body: object = None) -> str:
    rid = body.get("request_id") if isinstance(body, dict) else None
    rid = rid or response.headers.get("x-request-id")
    return f", request id {rid}" if rid else ""


def _http_error(
    response: requests.Response,
    scopes: tuple[str, ...],
    action: str,
    cluster_id: str,
    not_found: tuple[str, str] | None = None,
) -> InputError | ServiceError:
    try:
        body: object = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("id") or response.reason or "error")
        message = str(body.get("message") or "").strip()
    else:
        code = response.reason or "error"
        message = response.text.strip()[:200]
    detail = f"HTTP {response.status_code} {code}" + (f' "{message}"' if message else "")
    detail += _request_id(response, body)
    status = response.status_code
    if status == 401:
        return InputError(
            f"DigitalOcean rejected the token as invalid or expired ({detail})",
            where="digitalocean-token",
            hint=f"Create a new token with scopes {SCOPE_READ} and {SCOPE_ACCESS}: {HOW_TO_CREATE}",
        )
    if status == 403:
        needed = " and ".join(f"`{s}`" for s in scopes)
        plural = "s" if len(scopes) > 1 else ""
        return InputError(
            f"the token may not {action}: it needs the {needed} scope{plural} ({detail})",
            where="digitalocean-token",
            hint=f"Give the token the {needed} scope{plural} (custom scopes), "
            "or use a full-access token.",
        )
    if status == 404 and not_found is not None:
        return InputError(
            f"{not_found[0]} ({detail})", where="digitalocean-token", hint=not_found[1]
        )
    if status == 412 and "/v2/registry" in urlsplit(response.url).path:
        return InputError(
            f"the account has several container registries, which /v2/registry cannot serve ({detail})",
            where="digitalocean-token",
            hint="Integrate the registry with the cluster in the control panel or with doctl.",
        )
    if status == 404 and cluster_id:
        return InputError(
            f"no cluster with id {cluster_id} is visible to this token ({detail})",
            where="cluster",
            hint="Check the id, or pass the cluster's name.",
        )
    attempts = _attempts(response)
    if status == 429:
        remaining = response.headers.get("ratelimit-remaining")
        quota = f"; {remaining} requests left this hour" if remaining is not None else ""
        return ServiceError(
            SERVICE,
            f"rate limited while trying to {action}: {detail}{attempts}{quota}",
            hint="Other automation may share this token; retry later or use a separate token.",
        )
    return ServiceError(SERVICE, f"could not {action}: {detail}{attempts}")


def _attempts(response: requests.Response) -> str:
    retries = getattr(response.raw, "retries", None)
    history = getattr(retries, "history", ())
    return f" (after {len(history) + 1} attempts)" if history else ""


def _reason(exc: requests.RequestException) -> str:
    """One short line: requests' messages repeat the pool, the URL and the exception chain."""
    cause: object = exc.args[0] if exc.args else exc
    cause = getattr(cause, "reason", None) or cause  # urllib3's MaxRetryError wraps the cause
    return re.sub(r"^(<[^>]+>|\w+\(host=[^)]*\)): ", "", str(cause))[:300]
