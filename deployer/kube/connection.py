"""One connection to one cluster: kubeconfig reading, the private directory, the raw calls.

The kubeconfig is read by `kube.endpoint` (as kubectl reads it) and spoken to through
`kube.transport` (urllib3), so a token or client-certificate kubeconfig never imports the
`kubernetes` package; a user with `exec` or `auth-provider` is loaded by that package's loader,
and the API discovery (`resource()`, for apply) uses its DynamicClient, both imported only then.

Credentials. A kubeconfig is never written to the workspace. What must be a file (a client
certificate and key given as data, while the SSL context loads them; what a credential plugin's
loader writes; the discovery cache) goes into a private 0700 directory in memory-backed /dev/shm
when there is one (else the system temp dir, which in the action's container is the container's
own /tmp, not the mounted workspace), deleted on `close()` (also at interpreter exit). The bearer
token stays in memory.

Every call goes through `call()`, which turns the API server's refusals and the transport's
failures into `kube.errors` classes (chained to the transport's exception) and returns the raw
response; `json_of` reads its body.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import urllib3
from urllib3.util.retry import Retry

from deployer import kubeconfig as kubeconfig_input
from deployer.errors import InputError
from deployer.kube.endpoint import KubeconfigError, Source, choose, client_loaded, endpoint
from deployer.kube.errors import ApiUnavailable, Invalid, from_api_exception, short
from deployer.kube.transport import Answer, Transport
from deployer.status import Collection

# One-shot calls (apply, get, list, events, rollback): bounded retries with backoff, honouring
# Retry-After on 429. PATCH is retried too: server-side apply and our JSON patch are idempotent.
RETRY = Retry(
    total=5,
    connect=5,
    read=2,
    status=5,
    backoff_factor=0.5,
    backoff_max=8,
    status_forcelist=(429, 500, 502, 503, 504),
    allowed_methods=None,
    raise_on_status=False,
    respect_retry_after_header=True,
)
# Logs and watches do their own retrying (a log from a kubelet that has none, or a watch that the
# reflector reconnects, must not sit in five rounds of backoff).
STREAM_RETRY = Retry(
    total=2, connect=2, read=0, redirect=0, status=0, other=0, raise_on_status=False
)
TIMEOUT = (10.0, 60.0)  # connect, read (seconds) for one-shot calls


@dataclass(frozen=True)
class Lane:
    """How one kind of call is retried: `Connection.call(api=...)` picks one."""

    name: str
    retries: Retry


class Connection:
    """A connection to one cluster. Use as a context manager, or call `close()`."""

    def __init__(self, transport: Transport, *, private_dir: str, default_namespace: str) -> None:
        self._private_dir = private_dir
        self._transport = transport
        self.where = transport.server
        self._default_namespace = default_namespace or "default"
        self._api = Lane("one-shot", RETRY)
        self.stream_api = Lane("stream", STREAM_RETRY)
        # The dry run answers at once: its 500 "failed to create typed patch object" is the
        # manifest's fault, not the server's, and must not sit in five rounds of backoff.
        self.check_api = Lane("check", RETRY.new(status_forcelist=(429, 502, 503, 504)))
        self._dynamic: Any = None
        self._lock = threading.Lock()
        self._closed = False
        # Deletes the private directory even if nobody calls close() (also at interpreter exit).
        self._finalizer = weakref.finalize(self, _remove_private_dir, private_dir)

    # construction ---------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig_dict(
        cls,
        cfg: Mapping[str, Any],
        context: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> Self:
        """A kubeconfig held in memory (e.g. from the DigitalOcean API); never touches the
        workspace (see the module docstring for where files go). `env` is the environment the
        CLI was handed (its proxy variables count); None: this process's."""
        try:
            return cls._open([Source("", cfg)], context, env)
        except KubeconfigError as exc:
            raise InputError(
                f"the kubeconfig cannot be used: {short(exc)}",
                where="kubeconfig",
                hint="Check the cluster name/id and that the token may read its kubeconfig.",
            ) from exc

    @classmethod
    def from_kubeconfig_file(
        cls,
        path: str | None,
        context: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> Self:
        """The kubeconfig file `path`, else KUBECONFIG's files (joined with os.pathsep), else
        ~/.kube/config, as kubectl finds it; `--context` picks its context. `env` as above."""
        env = os.environ if env is None else env
        files = kubeconfig_input.read_files(path, env)
        shown = path or env.get("KUBECONFIG") or "~/.kube/config"
        try:
            return cls._open([Source(p, c) for p, c in files], context, env)
        except KubeconfigError as exc:
            raise InputError(
                f"the kubeconfig {shown} cannot be used: {short(exc)}",
                where="KUBECONFIG",
                hint="Point KUBECONFIG at a valid kubeconfig (and --context at one of its "
                "contexts).",
            ) from exc

    @classmethod
    def _open(
        cls, sources: Sequence[Source], context: str | None, env: Mapping[str, str] | None
    ) -> Self:
        chosen = choose(sources, context)
        private_dir = _private_dir()
        try:
            if chosen.needs_client_loader:
                where = client_loaded(sources, chosen, private_dir)
            else:
                where = endpoint(chosen)
            transport = Transport(where, private_dir, env=env)
        except (KubeconfigError, ValueError) as exc:
            _remove_private_dir(private_dir)
            raise KubeconfigError(str(exc)) from exc
        except BaseException:
            _remove_private_dir(private_dir)
            raise
        return cls(transport, private_dir=private_dir, default_namespace=where.namespace)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._transport.close()
        self._finalizer()

    @property
    def default_namespace(self) -> str:
        """The kubeconfig context's namespace, else "default" (as kubectl)."""
        return self._default_namespace

    def server_clock_ahead(self) -> float | None:
        """A lower bound of (the API server's clock - ours), from its answers' `Date` over
        verified TLS; None when there is none (see kube.transport)."""
        return self._transport.server_clock_ahead

    # calls ----------------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> Any:
        """The discovered API resource of `kind` (its path, plural, whether namespaced)."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

        try:
            return self._discovery().resources.get(api_version=api_version, kind=kind)
        except (ResourceNotFoundError, ResourceNotUniqueError) as exc:
            raise Invalid(
                f"the cluster does not serve kind {kind} in apiVersion {api_version}",
                hint="Check the apiVersion/kind spelling, or install the CRD first.",
            ) from exc
        except ApiException as exc:
            raise from_api_exception(
                exc,
                kind,
                verb="get",
                resource=f"the API discovery of {api_version}",
                namespace=None,
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise self.unreachable(exc) from exc

    def list_collection(
        self,
        collection: Collection,
        namespace: str,
        selector: Mapping[str, Any] | str | None,
        *,
        api: Lane | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """The objects of `collection` in `namespace` and the list's resourceVersion."""
        plural = collection.plural
        query: list[tuple[str, str]] = []
        if selector:
            query.append(("labelSelector", label_selector(selector)))
        response = self.call(
            "GET",
            collection_path(collection, namespace),
            query,
            what=f"list {plural} in {namespace}",
            verb="list",
            resource=plural,
            namespace=namespace,
            api=api,
        )
        data = json_of(response)
        rv = str((data.get("metadata") or {}).get("resourceVersion") or "")
        return [dict(item) for item in data.get("items") or []], rv

    def get_json(self, path: str, *, what: str, verb: str = "get") -> dict[str, Any]:
        return json_of(self.call("GET", path, [], what=what, verb=verb))

    def call(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        *,
        what: str,
        verb: str,
        resource: str = "",
        namespace: str | None = None,
        api: Lane | None = None,
        timeout: tuple[float, float] = TIMEOUT,
        body: Any = None,
        content_type: str | None = None,
        accept: str = "application/json",
    ) -> Any:
        lane: Lane = api or self._api
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            return self._transport.request(
                method,
                path,
                query,
                headers=headers,
                body=body,
                timeout=timeout,
                retries=lane.retries,
            )
        except Answer as exc:
            raise from_api_exception(
                exc, what, verb=verb, resource=resource or what, namespace=namespace
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise self.unreachable(exc) from exc

    def unreachable(self, exc: Exception) -> ApiUnavailable:
        return ApiUnavailable(
            f"cannot reach {self.where} after retries: {short(exc)}",
            hint="Is the cluster running and its API reachable from here?",
        )

    def _discovery(self) -> Any:
        from kubernetes.client.exceptions import ApiException

        from deployer.kube.discovery import dynamic_client

        with self._lock:
            if self._dynamic is None:
                try:
                    self._dynamic = dynamic_client(
                        self._transport,
                        RETRY,
                        TIMEOUT,
                        cache_file=os.path.join(self._private_dir, "discovery.json"),
                    )
                except ApiException as exc:
                    raise from_api_exception(
                        exc,
                        "discovery",
                        verb="get",
                        resource="the API discovery document",
                        namespace=None,
                    ) from exc
                except urllib3.exceptions.HTTPError as exc:
                    raise self.unreachable(exc) from exc
            return self._dynamic


# --- helpers --------------------------------------------------------------------------------


def collection_path(collection: Collection, namespace: str) -> str:
    group = "/api/v1" if collection.api_version == "v1" else f"/apis/{collection.api_version}"
    return f"{group}/namespaces/{namespace}/{collection.plural}"


def label_selector(selector: Mapping[str, Any] | str) -> str:
    """A LabelSelector object (matchLabels/matchExpressions) as the query-string syntax."""
    if isinstance(selector, str):
        return selector
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key"), expr.get("operator")
        values = ",".join(str(v) for v in expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def plural_of(resource: Any) -> str:
    """ "deployments.apps" for a discovered resource (plain "configmaps" for the core group)."""
    name = str(getattr(resource, "name", "") or "")
    group = str(getattr(resource, "group", "") or "")
    return f"{name}.{group}" if group else name


def json_of(response: Any) -> dict[str, Any]:
    try:
        data = json.loads(bytes(response.data).decode("utf-8"))
    except ValueError as exc:
        raise ApiUnavailable(f"the API server sent something that is not JSON: {exc}") from exc
    return data if isinstance(data, dict) else {}


# Memory-backed, so key material never reaches a disk; mkdtemp makes a fresh 0700 directory with
# a random name, which is what makes a shared directory safe here.
_SHM = "/dev/shm"  # noqa: S108


def _private_dir() -> str:
    base = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None
    return tempfile.mkdtemp(prefix="djk-kube-", dir=base)


def _remove_private_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    # The client's loader (credential plugins only) caches "content -> temp file" process-wide;
    # forget our (now deleted) files so it neither hands them out again nor keeps the key
    # material in memory.
    loader = sys.modules.get("kubernetes.config.kube_config")
    cache: dict[str, str] = getattr(loader, "_temp_files", {})
    for key in [k for k, v in cache.items() if str(v).startswith(path + os.sep)]:
        cache.pop(key, None)
