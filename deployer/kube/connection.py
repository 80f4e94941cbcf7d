"""One connection to one cluster: kubeconfig loading, private credential files, the raw calls.

Credentials. A kubeconfig given as a dict is never written to the workspace: the client needs
its CA (and any client certificate/key) as files, so the connection makes a private 0700
directory in memory-backed /dev/shm when there is one (else the system temp dir, which in the
action's container is the container's own /tmp, not the mounted workspace), points the client
there, and deletes it on `close()` (also at interpreter exit). The bearer token stays in memory.

Every call goes through `call()`, which turns the client's failures into `kube.errors` classes
(chained to the client's exception) and returns the raw response; `json_of` reads its body.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Self

import urllib3
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError
from urllib3.util.retry import Retry

from deployer.errors import InputError
from deployer.kube.errors import ApiUnavailable, Invalid, from_api_exception, short
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
TIMEOUT = (10.0, 60.0)  # connect, read (seconds) for one-shot calls


class Connection:
    """A connection to one cluster. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        configuration: Any,
        *,
        private_dir: str,
        where: str,
        default_namespace: str = "default",
    ) -> None:
        self._private_dir = private_dir
        self.where = where
        self._default_namespace = default_namespace or "default"
        configuration.retries = RETRY
        self._api = k8s_client.ApiClient(configuration)
        # Logs and watches do their own retrying (a log from a kubelet that has none, or a watch
        # that the reflector reconnects, must not sit in five rounds of backoff).
        streaming = copy.copy(configuration)
        streaming.retries = Retry(
            total=2, connect=2, read=0, redirect=0, status=0, other=0, raise_on_status=False
        )
        streaming.connection_pool_maxsize = 32
        self.stream_api = k8s_client.ApiClient(streaming)
        # The dry run answers at once: its 500 "failed to create typed patch object" is the
        # manifest's fault, not the server's, and must not sit in five rounds of backoff.
        checking = copy.copy(configuration)
        checking.retries = RETRY.new(status_forcelist=(429, 502, 503, 504))
        self.check_api = k8s_client.ApiClient(checking)
        self._dynamic: DynamicClient | None = None
        self._lock = threading.Lock()
        self._closed = False
        # Deletes the private directory even if nobody calls close() (also at interpreter exit).
        self._finalizer = weakref.finalize(self, _remove_private_dir, private_dir)

    # construction ---------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig_dict(cls, cfg: Mapping[str, Any], context: str | None = None) -> Self:
        """Load a kubeconfig held in memory (e.g. from the DigitalOcean API); never touches the
        workspace (see the module docstring for where the CA file goes)."""
        private_dir = _private_dir()
        configuration = k8s_client.Configuration()
        try:
            loader = kube_config.KubeConfigLoader(
                config_dict=copy.deepcopy(dict(cfg)),
                active_context=context,
                temp_file_path=private_dir,
            )
            loader.load_and_set(configuration)
            default_namespace = (loader.current_context.get("context") or {}).get("namespace")
        except (ConfigException, KeyError, TypeError, ValueError, AttributeError) as exc:
            _remove_private_dir(private_dir)
            raise InputError(
                f"the kubeconfig cannot be used: {short(exc)}",
                where="kubeconfig",
                hint="Check the cluster name/id and that the token may read its kubeconfig.",
            ) from exc
        return cls._loaded(configuration, private_dir, default_namespace)

    @classmethod
    def from_kubeconfig_file(cls, path: str, context: str | None = None) -> Self:
        """Load a kubeconfig file (KUBECONFIG may list several, joined with os.pathsep)."""
        private_dir = _private_dir()
        configuration = k8s_client.Configuration()
        try:
            kube_config.load_kube_config(
                config_file=path,
                context=context,
                client_configuration=configuration,
                persist_config=False,
                temp_file_path=private_dir,
            )
            contexts, active = kube_config.list_kube_config_contexts(config_file=path)
            chosen = next((c for c in contexts if c.get("name") == context), None) or active
            default_namespace = ((chosen or {}).get("context") or {}).get("namespace")
        except (ConfigException, OSError, KeyError, TypeError, ValueError) as exc:
            _remove_private_dir(private_dir)
            raise InputError(
                f"the kubeconfig {path} cannot be used: {short(exc)}",
                where="KUBECONFIG",
                hint="Point KUBECONFIG at a valid kubeconfig (and --context at one of its "
                "contexts).",
            ) from exc
        return cls._loaded(configuration, private_dir, default_namespace)

    @classmethod
    def _loaded(cls, configuration: Any, private_dir: str, default_namespace: object) -> Self:
        return cls(
            configuration,
            private_dir=private_dir,
            where=str(configuration.host),
            default_namespace=str(default_namespace or "default"),
        )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for api in (self._api, self.stream_api, self.check_api):
            with contextlib.suppress(Exception):
                api.rest_client.pool_manager.clear()
        self._finalizer()

    @property
    def default_namespace(self) -> str:
        """The kubeconfig context's namespace, else "default" (as kubectl)."""
        return self._default_namespace

    # calls ----------------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> Any:
        """The discovered API resource of `kind` (its path, plural, whether namespaced)."""
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
        api: Any = None,
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
        api: Any = None,
        timeout: tuple[float, float] = TIMEOUT,
        body: Any = None,
        content_type: str | None = None,
        accept: str = "application/json",
    ) -> Any:
        api = api or self._api
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            return api.call_api(
                path,
                method,
                query_params=query,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout,
            )
        except ApiException as exc:
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

    def _discovery(self) -> DynamicClient:
        with self._lock:
            if self._dynamic is None:
                try:
                    self._dynamic = DynamicClient(
                        self._api, cache_file=os.path.join(self._private_dir, "discovery.json")
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
    # The client caches "content -> temp file" process-wide; forget our (now deleted) files so
    # it neither hands them out again nor keeps the key material in memory.
    cache: dict[str, str] = getattr(kube_config, "_temp_files", {})
    for key in [k for k, v in cache.items() if str(v).startswith(path + os.sep)]:
        cache.pop(key, None)
