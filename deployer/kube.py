"""The Kubernetes API, and the only module that imports the `kubernetes` client.

Everything leaves this module as plain dicts (the JSON the API server sent, camelCase keys), so
`status.py` can judge them and tests can fake them. Every API failure leaves it as one of our own
error classes, which are also `deployer.errors` classes, so the CLI maps them to exit codes
without knowing about HTTP:

* `Unauthorized`, `Forbidden`, `NotFound`, `Conflict`, `Invalid` -> `InputError` (exit 2): the
  credentials, the identity's rights or the manifests must change; the message says which.
* `ApiUnavailable` -> `ServiceError("Kubernetes API", ...)` (exit 3): unreachable, or 429/5xx
  after urllib3's bounded retries.
* `Expired` (a watch's resourceVersion is too old, HTTP 410) never leaves the watcher.

Credentials. A kubeconfig given as a dict is never written to the workspace: the client needs
its CA (and any client certificate/key) as files, so `Cluster` makes a private 0700 directory
in memory-backed /dev/shm when there is one (else the system temp dir, which in the action's
container is the container's own /tmp, not the mounted workspace), points the client there, and
deletes it on `close()` (also at interpreter exit). The bearer token stays in memory.

Server-side apply policy: field manager `django-k8s-deploy`. With `force_conflicts=True`
(kubectl's `--force-conflicts`) we take ownership of every field *our manifests set* from
other managers (`kubectl edit`, `kubectl scale`, an older client-side apply); fields we do not
set are never touched. Without it, a conflict stops the deploy with the fields and their owners.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException
from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError
from kubernetes.watch.watch import iter_resp_lines
from urllib3.util.retry import Retry

from deployer.errors import InputError, ServiceError

FIELD_MANAGER = "django-k8s-deploy"
ROLLBACK_FIELD_MANAGER = "django-k8s-deploy-rollback"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"

WatchKind = Literal["Deployment", "ReplicaSet", "Pod"]

# One-shot calls (apply, get, list, events, rollback): bounded retries with backoff, honouring
# Retry-After on 429. PATCH is retried too: server-side apply and our JSON patch are idempotent.
_RETRY = Retry(
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
_TIMEOUT = (10.0, 60.0)  # connect, read (seconds) for one-shot calls
_LOG_LIMIT_BYTES = 256 * 1024

# kubectl's annotationsToSkip (kubectl/pkg/polymorphichelpers/rollback.go): kept from the
# Deployment, never copied from the ReplicaSet we roll back to.
_ROLLBACK_KEEP_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


# --- errors ---------------------------------------------------------------------------------


class KubeError(Exception):
    """Marker base of every error this module raises; `status` is the HTTP status, if any."""

    status: int | None = None


class Unauthorized(InputError, KubeError):
    status = 401


class Forbidden(InputError, KubeError):
    status = 403


class NotFound(InputError, KubeError):
    status = 404


class Conflict(InputError, KubeError):
    status = 409
    fields = ""  # for apply conflicts: "<field> (owned by <manager>); ..."


class Invalid(InputError, KubeError):
    """The API server refused an object (400/422): the manifest must change."""

    status = 422


class ApiUnavailable(ServiceError, KubeError):
    def __init__(self, message: str, *, hint: str = "", status: int | None = None) -> None:
        super().__init__("Kubernetes API", message, hint=hint)
        self.status = status


class Expired(KubeError):
    """A watch's resourceVersion is gone from the API server's history: list again."""

    status = 410


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    kind: str
    name: str
    namespace: str | None
    generation: int | None
    uid: str


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]

    @property
    def resource_version(self) -> str | None:
        rv = (self.object.get("metadata") or {}).get("resourceVersion")
        return str(rv) if rv is not None else None


@dataclass(frozen=True)
class Rollback:
    """What `rollback` did: `done` False means nothing was changed, `message` says why."""

    deployment: str
    namespace: str
    done: bool
    from_revision: str | None
    to_revision: str | None
    message: str


class EventStream:
    """One watch connection: iterate for events; `close()` from any thread ends it promptly."""

    def __init__(self, response: Any, what: str) -> None:
        self._response = response
        self._what = what
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent]:
        try:
            for line in iter_resp_lines(self._response):
                if self._closed.is_set():
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = str(event.get("type"))
                obj = event.get("object") or {}
                if kind == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        raise Expired(obj.get("message") or "resource version too old")
                    raise _from_status(int(code or 500), obj, f"watch {self._what}")
                yield WatchEvent(kind, obj)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if self._closed.is_set():
                return
            raise ApiUnavailable(f"the watch of {self._what} broke: {_short(exc)}") from None
        finally:
            self._release()

    def close(self) -> None:
        self._closed.set()
        # shutdown() unblocks a read in another thread; close() alone may wait for the server.
        with contextlib.suppress(Exception):
            self._response.shutdown()
        with contextlib.suppress(Exception):
            self._response.close()

    def _release(self) -> None:
        # A stream we cut is closed, not handed back to the pool half shut.
        with contextlib.suppress(Exception):
            if self._closed.is_set():
                self._response.close()
            else:
                self._response.release_conn()


# --- the cluster ----------------------------------------------------------------------------


class Cluster:
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
        configuration.retries = _RETRY
        self._api = k8s_client.ApiClient(configuration)
        # Logs and watches do their own retrying (a log from a kubelet that has none, or a watch
        # that the reflector reconnects, must not sit in five rounds of backoff).
        streaming = copy.copy(configuration)
        streaming.retries = Retry(
            total=2, connect=2, read=0, redirect=0, status=0, other=0, raise_on_status=False
        )
        streaming.connection_pool_maxsize = 32
        self._stream_api = k8s_client.ApiClient(streaming)
        self._dynamic: DynamicClient | None = None
        self._lock = threading.Lock()
        self._closed = False
        # Deletes the private directory even if nobody calls close() (also at interpreter exit).
        self._finalizer = weakref.finalize(self, _remove_private_dir, private_dir)

    # construction ---------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig_dict(cls, cfg: Mapping[str, Any], context: str | None = None) -> Cluster:
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
                f"the kubeconfig cannot be used: {_short(exc)}",
                where="kubeconfig",
                hint="Check the cluster name/id and that the token may read its kubeconfig.",
            ) from None
        return cls._loaded(configuration, private_dir, default_namespace)

    @classmethod
    def _loaded(cls, configuration: Any, private_dir: str, default_namespace: object) -> Cluster:
        return cls(
            configuration,
            private_dir=private_dir,
            where=str(configuration.host),
            default_namespace=str(default_namespace or "default"),
        )

    @classmethod
    def from_kubeconfig_file(cls, path: str, context: str | None = None) -> Cluster:
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
                f"the kubeconfig {path} cannot be used: {_short(exc)}",
                where="KUBECONFIG",
                hint="Point KUBECONFIG at a valid kubeconfig (and --context at one of its "
                "contexts).",
            ) from None
        return cls._loaded(configuration, private_dir, default_namespace)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for api in (self._api, self._stream_api):
            with contextlib.suppress(Exception):
                api.rest_client.pool_manager.clear()
        self._finalizer()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # reading --------------------------------------------------------------------------------

    def server_version(self) -> str:
        data = self._get_json("/version", what="read the server version")
        return str(data.get("gitVersion") or "unknown")

    def exists(
        self, kind: str, name: str, namespace: str | None, *, api_version: str = "v1"
    ) -> bool:
        """Does the object exist? For preflight checks of referenced ConfigMaps and Secrets."""
        resource = self._resource(api_version, kind)
        ns = namespace if resource.namespaced else None
        try:
            self._call(
                "GET",
                resource.path(name=name, namespace=ns),
                [],
                what=f"get {kind}/{name}",
                verb="get",
                resource=_plural(resource),
                namespace=ns,
            )
        except NotFound:
            return False
        return True

    def pull_secrets(self, service_account: str, namespace: str) -> list[str] | None:
        """The imagePullSecrets of a ServiceAccount; None when it is not there (yet) or may not
        be read, so the caller can say it could not tell."""
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/serviceaccounts/" + quote(
            service_account, safe=""
        )
        try:
            account = self._get_json(path, what=f"get serviceaccount/{service_account}")
        except (NotFound, Forbidden):
            return None
        refs = account.get("imagePullSecrets") or []
        return [str(r.get("name")) for r in refs if isinstance(r, dict) and r.get("name")]

    def missing_permissions(self, documents: Sequence[Mapping[str, Any]]) -> list[str]:
        """What this identity may not do that the deploy needs, asked before the slow build.

        One SelfSubjectAccessReview per (verb, resource, namespace): `patch` for every object we
        apply (server-side apply is a PATCH), and what the watch and diagnosis read. Returns
        kubectl-style lines like "patch deployments.apps in namespace shop".
        """
        wanted: list[tuple[str, str, str, str | None, str]] = []
        namespaces: set[str] = set()
        for doc in documents:
            resource = self._resource(str(doc.get("apiVersion")), str(doc.get("kind")))
            ns = (doc.get("metadata") or {}).get("namespace") if resource.namespaced else None
            group = str(doc.get("apiVersion", "")).rpartition("/")[0]
            # The review wants the bare plural (`deployments`) and the group apart, not `deployments.apps`.
            wanted.append(("patch", group, str(resource.name), ns, ""))
            if ns:
                namespaces.add(ns)
        for ns in sorted(namespaces):
            for group, plural in (("apps", "deployments"), ("apps", "replicasets"), ("", "pods")):
                wanted += [("list", group, plural, ns, ""), ("watch", group, plural, ns, "")]
            wanted += [("list", "", "events", ns, ""), ("get", "", "pods", ns, "log")]
        missing: list[str] = []
        for verb, group, plural, ns, sub in dict.fromkeys(wanted):
            attributes = {"verb": verb, "group": group, "resource": plural}
            if ns:
                attributes["namespace"] = ns
            if sub:
                attributes["subresource"] = sub
            body = {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes},
            }
            response = self._call(
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                [],
                what="ask the API server what this identity may do",
                verb="create",
                resource="selfsubjectaccessreviews.authorization.k8s.io",
                body=body,
                content_type="application/json",
            )
            if not (_json(response).get("status") or {}).get("allowed"):
                what = f"{plural}{'/' + sub if sub else ''}{'.' + group if group else ''}"
                missing.append(
                    f"{verb} {what}" + (f" in namespace {ns}" if ns else " (cluster-wide)")
                )
        return missing

    @property
    def default_namespace(self) -> str:
        """The kubeconfig context's namespace, else "default" (as kubectl)."""
        return self._default_namespace

    def deployment_generation(self, name: str, namespace: str) -> int | None:
        """The Deployment's current metadata.generation; None when it does not exist."""
        deployment = self.get_deployment(name, namespace)
        if deployment is None:
            return None
        return int((deployment.get("metadata") or {}).get("generation") or 0)

    def get_deployment(self, name: str, namespace: str) -> dict[str, Any] | None:
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        try:
            return self._get_json(path, what=f"get deployments in {namespace}", verb="get")
        except NotFound:
            return None

    def list_replicasets(
        self, namespace: str, selector: Mapping[str, Any] | str | None = None
    ) -> list[dict[str, Any]]:
        return self._list("ReplicaSet", namespace, selector)[0]

    def list_pods(
        self, namespace: str, selector: Mapping[str, Any] | str | None = None
    ) -> list[dict[str, Any]]:
        return self._list("Pod", namespace, selector)[0]

    def list_objects(self, kind: WatchKind, namespace: str) -> tuple[list[dict[str, Any]], str]:
        """Every object of `kind` in `namespace` and the list's resourceVersion (to watch from)."""
        return self._list(kind, namespace, None, api=self._stream_api)

    def watch_objects(
        self, kind: WatchKind, namespace: str, resource_version: str, *, timeout_s: int
    ) -> EventStream:
        """Changes after `resource_version`; the server ends the stream after `timeout_s`."""
        path = _collection_path(kind, namespace)
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_s)),
        ]
        response = self._call(
            "GET",
            path,
            query,
            what=f"watch {_PLURALS[kind]} in {namespace}",
            verb="watch",
            resource=_PLURALS[kind],
            namespace=namespace,
            api=self._stream_api,
            timeout=(10.0, timeout_s + 15.0),
        )
        return EventStream(response, f"{_PLURALS[kind]} in {namespace}")

    def pod_logs(
        self,
        name: str,
        namespace: str,
        container: str,
        *,
        tail: int = 50,
        previous: bool = False,
    ) -> str:
        query = [
            ("container", container),
            ("tailLines", str(tail)),
            ("previous", "true" if previous else "false"),
            ("limitBytes", str(_LOG_LIMIT_BYTES)),
        ]
        response = self._call(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods/{name}/log",
            query,
            what=f"read logs of pod {name}",
            verb="get",
            resource="pods/log",
            namespace=namespace,
            api=self._stream_api,
            timeout=(10.0, 20.0),
            accept="*/*",  # the log is text/plain; an error is a JSON Status
        )
        return bytes(response.data).decode("utf-8", errors="replace")

    def events_for(self, kind: str, name: str, namespace: str) -> list[dict[str, Any]]:
        """Core events about one object (the same ones `kubectl describe` shows)."""
        query = [("fieldSelector", f"involvedObject.kind={kind},involvedObject.name={name}")]
        response = self._call(
            "GET",
            f"/api/v1/namespaces/{namespace}/events",
            query,
            what=f"list events in {namespace}",
            verb="list",
            resource="events",
            namespace=namespace,
        )
        items = _json(response).get("items") or []
        return [dict(item) for item in items]

    # writing --------------------------------------------------------------------------------

    def apply(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = FIELD_MANAGER,
        force_conflicts: bool,
        namespace: str = "default",
        on_applied: Callable[[Applied], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> list[Applied]:
        """Server-side apply each document, in the order given (the caller sorts them).

        Namespaced documents without `metadata.namespace` go to `namespace`. `on_applied` hears
        of each object as soon as it is applied (so a later failure still reports what changed);
        `warn` gets the API server's warnings (unknown fields, deprecated APIs) and, with
        `force_conflicts`, which fields were taken over from which manager. Stops at the first
        refusal.
        """
        applied: list[Applied] = []
        for doc in docs:
            api_version = str(doc.get("apiVersion") or "")
            kind = str(doc.get("kind") or "")
            name = str((doc.get("metadata") or {}).get("name") or "")
            if not (api_version and kind and name):
                raise Invalid(
                    "a document lacks apiVersion, kind or metadata.name",
                    hint="Every manifest document needs all three.",
                )
            resource = self._resource(api_version, kind)
            ns: str | None = None
            if resource.namespaced:
                ns = str((doc.get("metadata") or {}).get("namespace") or namespace)
            path = resource.path(name=name, namespace=ns)
            what = (kind, name, ns, _plural(resource))
            try:
                # Always first without force: a conflict is then seen, and reported as a
                # warning when we are told to take the fields over anyway.
                response = self._server_side_apply(path, doc, field_manager, False, what)
            except Conflict as conflict:
                if not force_conflicts:
                    raise
                if warn is not None:
                    warn(
                        f"{kind.lower()}/{name}: taking over fields set by other managers "
                        f"(force-conflicts): {conflict.fields}"
                    )
                response = self._server_side_apply(path, doc, field_manager, True, what)
            if warn is not None:
                for text in _warnings(response):
                    warn(f"{kind.lower()}/{name}: {text}")
            meta = _json(response).get("metadata") or {}
            generation = meta.get("generation")
            item = Applied(
                kind=kind,
                name=name,
                namespace=ns,
                generation=int(generation) if generation is not None else None,
                uid=str(meta.get("uid") or ""),
            )
            applied.append(item)
            if on_applied is not None:
                on_applied(item)
        return applied

    def _server_side_apply(
        self,
        path: str,
        doc: Mapping[str, Any],
        field_manager: str,
        force: bool,
        what: tuple[str, str, str | None, str],
    ) -> Any:
        kind, name, ns, plural = what
        query = [("fieldManager", field_manager)]
        if force:
            query.append(("force", "true"))
        try:
            return self._api.call_api(
                path,
                "PATCH",
                query_params=query,
                header_params={
                    "Accept": "application/json",
                    "Content-Type": "application/apply-patch+yaml",  # JSON is YAML
                },
                body=dict(doc),
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=_TIMEOUT,
            )
        except ApiException as exc:
            if exc.status == 409:
                raise _apply_conflict(exc, kind, name, ns) from None
            _raise(exc, "patch", plural, ns, f"apply {kind}/{name}")
        except urllib3.exceptions.HTTPError as exc:
            raise self._unreachable(exc) from None

    def rollback(self, deployment_name: str, namespace: str) -> Rollback:
        """Return a Deployment to its previous revision, as `kubectl rollout undo` does.

        kubectl does it client-side: find the ReplicaSet with the second-highest revision, copy
        its pod template (minus the pod-template-hash label) and annotations into the
        Deployment with a JSON patch. We use our own field manager, so the next deploy's apply
        takes those fields back (with force_conflicts; without it, it names this manager).
        """
        subject = f"deployment/{deployment_name}"
        deployment = self.get_deployment(deployment_name, namespace)
        if deployment is None:
            return Rollback(deployment_name, namespace, False, None, None, f"{subject} not found")
        if (deployment.get("spec") or {}).get("paused"):
            return Rollback(
                deployment_name,
                namespace,
                False,
                None,
                None,
                f"{subject} is paused; resume it before rolling back",
            )
        uid = (deployment.get("metadata") or {}).get("uid")
        current = _revision(deployment)
        selector = (deployment.get("spec") or {}).get("selector")
        owned = [
            rs
            for rs in self.list_replicasets(namespace, selector)
            if _controller_uid(rs) == uid and _revision(rs) is not None
        ]
        owned.sort(key=lambda rs: int(_revision(rs) or 0), reverse=True)
        if len(owned) < 2:
            return Rollback(
                deployment_name,
                namespace,
                False,
                current,
                None,
                f"{subject}: no previous revision to roll back to",
            )
        target = owned[1]
        to_revision = _revision(target)
        template = copy.deepcopy((target.get("spec") or {}).get("template") or {})
        labels = (template.get("metadata") or {}).get("labels") or {}
        labels.pop("pod-template-hash", None)
        if template == (deployment.get("spec") or {}).get("template"):
            return Rollback(
                deployment_name,
                namespace,
                False,
                current,
                to_revision,
                f"{subject}: already runs the template of revision {to_revision}",
            )
        old_annotations = (deployment.get("metadata") or {}).get("annotations") or {}
        annotations = {k: v for k, v in old_annotations.items() if k in _ROLLBACK_KEEP_ANNOTATIONS}
        for key, value in ((target.get("metadata") or {}).get("annotations") or {}).items():
            if key not in _ROLLBACK_KEEP_ANNOTATIONS:
                annotations[key] = value
        patch = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]
        self._call(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment_name}",
            [("fieldManager", ROLLBACK_FIELD_MANAGER)],
            what=f"roll back {subject}",
            verb="patch",
            resource="deployments",
            namespace=namespace,
            body=patch,
            content_type="application/json-patch+json",
        )
        return Rollback(
            deployment_name,
            namespace,
            True,
            current,
            to_revision,
            f"{subject}: rolled back from revision {current} to revision {to_revision}",
        )

    # plumbing -------------------------------------------------------------------------------

    def _dyn(self) -> DynamicClient:
        with self._lock:
            if self._dynamic is None:
                try:
                    self._dynamic = DynamicClient(
                        self._api, cache_file=os.path.join(self._private_dir, "discovery.json")
                    )
                except ApiException as exc:
                    _raise(exc, "get", "the API discovery document", None, "discovery")
                except urllib3.exceptions.HTTPError as exc:
                    raise self._unreachable(exc) from None
            return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self._dyn().resources.get(api_version=api_version, kind=kind)
        except (ResourceNotFoundError, ResourceNotUniqueError):
            raise Invalid(
                f"the cluster does not serve kind {kind} in apiVersion {api_version}",
                hint="Check the apiVersion/kind spelling, or install the CRD first.",
            ) from None
        except ApiException as exc:
            _raise(exc, "get", f"the API discovery of {api_version}", None, kind)
        except urllib3.exceptions.HTTPError as exc:
            raise self._unreachable(exc) from None

    def _list(
        self,
        kind: WatchKind,
        namespace: str,
        selector: Mapping[str, Any] | str | None,
        *,
        api: Any = None,
    ) -> tuple[list[dict[str, Any]], str]:
        query: list[tuple[str, str]] = []
        if selector:
            query.append(("labelSelector", label_selector(selector)))
        response = self._call(
            "GET",
            _collection_path(kind, namespace),
            query,
            what=f"list {_PLURALS[kind]} in {namespace}",
            verb="list",
            resource=_PLURALS[kind],
            namespace=namespace,
            api=api,
        )
        data = _json(response)
        rv = str((data.get("metadata") or {}).get("resourceVersion") or "")
        return [dict(item) for item in data.get("items") or []], rv

    def _get_json(self, path: str, *, what: str, verb: str = "get") -> dict[str, Any]:
        return _json(self._call("GET", path, [], what=what, verb=verb))

    def _call(
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
        timeout: tuple[float, float] = _TIMEOUT,
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
            _raise(exc, verb, resource or what, namespace, what)
        except urllib3.exceptions.HTTPError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: Exception) -> ApiUnavailable:
        return ApiUnavailable(
            f"cannot reach {self.where} after retries: {_short(exc)}",
            hint="Is the cluster running and its API reachable from here?",
        )


# --- helpers --------------------------------------------------------------------------------

_PLURALS: dict[str, str] = {"Deployment": "deployments", "ReplicaSet": "replicasets", "Pod": "pods"}


def _collection_path(kind: WatchKind, namespace: str) -> str:
    if kind == "Pod":
        return f"/api/v1/namespaces/{namespace}/pods"
    return f"/apis/apps/v1/namespaces/{namespace}/{_PLURALS[kind]}"


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


def _revision(obj: Mapping[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    return str(value) if value is not None and str(value).isdigit() else None


def _controller_uid(obj: Mapping[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _plural(resource: Any) -> str:
    name = str(getattr(resource, "name", "") or "")
    group = str(getattr(resource, "group", "") or "")
    return f"{name}.{group}" if group else name


def _json(response: Any) -> dict[str, Any]:
    try:
        data = json.loads(bytes(response.data).decode("utf-8"))
    except ValueError as exc:
        raise ApiUnavailable(f"the API server sent something that is not JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def _status_body(exc: ApiException) -> dict[str, Any]:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str) and body.strip().startswith("{"):
        with contextlib.suppress(ValueError):
            data = json.loads(body)
            if isinstance(data, dict):
                return data
    return {"message": str(body or exc.reason or "")}


def _raise(
    exc: ApiException, verb: str, resource: str, namespace: str | None, what: str
) -> NoReturn:
    raise _from_status(
        int(exc.status or 0),
        _status_body(exc),
        what,
        verb=verb,
        resource=resource,
        namespace=namespace,
    )


def _from_status(
    status: int,
    body: Mapping[str, Any],
    what: str,
    *,
    verb: str = "",
    resource: str = "",
    namespace: str | None = None,
) -> KubeError:
    server = _short(body.get("message") or body.get("reason") or f"HTTP {status}")
    where = f' in namespace "{namespace}"' if namespace else " (cluster-wide)"
    if status == 401:
        return Unauthorized(
            f"the cluster rejected the credentials (401 Unauthorized) trying to {what}",
            hint="The kubeconfig's token is invalid or has expired; fetch a fresh one.",
        )
    if status == 403:
        return Forbidden(
            f'the cluster identity may not "{verb}" {resource}{where}: {server}',
            hint=f'Grant the identity "{verb}" on {resource}{where} (a Role and RoleBinding), '
            "or use credentials that have it.",
        )
    if status == 404:
        return NotFound(f"not found while trying to {what}: {server}")
    if status == 409:
        return Conflict(f"conflict while trying to {what}: {server}")
    if status in (400, 422):
        return Invalid(f"the API server rejected {what}: {server}")
    if status == 410:
        return Expired(server)
    if status == 0:
        return ApiUnavailable(f"cannot {what}: {server}")
    return ApiUnavailable(
        f"{what} failed with HTTP {status}: {server}",
        hint="The cluster's API server is unwell; try again later.",
        status=status,
    )


def _apply_conflict(exc: ApiException, kind: str, name: str, namespace: str | None) -> Conflict:
    body = _status_body(exc)
    causes = (body.get("details") or {}).get("causes") or []
    owned: list[str] = []
    for cause in causes:
        field = cause.get("field") or "?"
        manager = str(cause.get("message") or "").removeprefix("conflict with ")
        owned.append(f"{field} (owned by {manager})")
    where = f' in namespace "{namespace}"' if namespace else ""
    fields = "; ".join(owned) or _short(body.get("message") or "")
    conflict = Conflict(
        f"{kind}/{name}{where}: server-side apply conflicts with other field managers: {fields}",
        hint="Another tool (kubectl edit/scale, an HPA, a previous client-side apply) set "
        "these fields. Remove them from the manifest to leave them to it, or deploy with "
        "force-conflicts to take them over (what `kubectl apply --server-side "
        "--force-conflicts` does).",
    )
    conflict.fields = fields
    return conflict


def _warnings(response: Any) -> list[str]:
    """The API server's `Warning: 299 - "text"` headers, as text."""
    headers = getattr(response, "headers", None)
    raw = headers.getlist("Warning") if headers is not None and hasattr(headers, "getlist") else []
    out = []
    for value in raw:
        text = str(value)
        if text[:3].isdigit():
            text = text[3:].strip().removeprefix("-").strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1].replace('\\"', '"')
        out.append(text)
    return out


def _short(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 400 else text[:399] + "…"


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
