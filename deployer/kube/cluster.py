"""`Cluster`: what the deployer asks of one cluster, each question one method.

Reads (get, list, logs, events) are here; applying, the permission review, watch streams and
the rollback's planning live in their own modules and are reached through the methods below,
so callers (and their fakes) see one object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from deployer.kube import apply as applying
from deployer.kube import permissions
from deployer.kube.connection import Connection, collection_path, json_of, plural_of
from deployer.kube.errors import ApiUnavailable, Forbidden, NotFound, Rejected
from deployer.kube.values import FIELD_MANAGER, ROLLBACK_FIELD_MANAGER, Applied, Planned, Rollback
from deployer.kube.watching import EventStream, open_watch
from deployer.revisions import plan_rollback
from deployer.status import PODS, REPLICASETS, Collection
from deployer.workloads import KINDS

_LOG_LIMIT_BYTES = 256 * 1024


class Cluster(Connection):
    """A connection to one cluster. Use as a context manager, or call `close()`."""

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # reading --------------------------------------------------------------------------------

    def server_version(self) -> str:
        data = self.get_json("/version", what="read the server version")
        return str(data.get("gitVersion") or "unknown")

    def exists(
        self, kind: str, name: str, namespace: str | None, *, api_version: str = "v1"
    ) -> bool:
        """Does the object exist? For preflight checks of referenced ConfigMaps and Secrets."""
        resource = self.resource(api_version, kind)
        ns = namespace if resource.namespaced else None
        try:
            self.call(
                "GET",
                resource.path(name=name, namespace=ns),
                [],
                what=f"get {kind}/{name}",
                verb="get",
                resource=plural_of(resource),
                namespace=ns,
            )
        except NotFound:
            return False
        return True

    def namespace_exists(self, name: str) -> bool | None:
        """Is the namespace there? None when this identity may not read it (a namespace-limited
        one often may not), so the caller can say it could not tell."""
        try:
            self.get_json(
                f"/api/v1/namespaces/{quote(name, safe='')}", what=f"get namespace/{name}"
            )
        except NotFound:
            return False
        except Forbidden:
            return None
        return True

    def pull_secrets(self, service_account: str, namespace: str) -> list[str] | None:
        """The imagePullSecrets of a ServiceAccount; None when it is not there (yet) or may not
        be read, so the caller can say it could not tell."""
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/serviceaccounts/" + quote(
            service_account, safe=""
        )
        try:
            account = self.get_json(path, what=f"get serviceaccount/{service_account}")
        except (NotFound, Forbidden):
            return None
        refs = account.get("imagePullSecrets") or []
        return [str(r.get("name")) for r in refs if isinstance(r, dict) and r.get("name")]

    def get_deployment(self, name: str, namespace: str) -> dict[str, Any] | None:
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
        try:
            return self.get_json(path, what=f"get deployments in {namespace}", verb="get")
        except NotFound:
            return None

    def list_replicasets(
        self, namespace: str, selector: Mapping[str, Any] | str | None = None
    ) -> list[dict[str, Any]]:
        return self.list_collection(REPLICASETS, namespace, selector)[0]

    def list_pods(
        self, namespace: str, selector: Mapping[str, Any] | str | None = None
    ) -> list[dict[str, Any]]:
        return self.list_collection(PODS, namespace, selector)[0]

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
        response = self.call(
            "GET",
            f"/api/v1/namespaces/{namespace}/pods/{name}/log",
            query,
            what=f"read logs of pod {name}",
            verb="get",
            resource="pods/log",
            namespace=namespace,
            api=self.stream_api,
            timeout=(10.0, 20.0),
            accept="*/*",  # the log is text/plain; an error is a JSON Status
        )
        return bytes(response.data).decode("utf-8", errors="replace")

    def events_for(self, kind: str, name: str, namespace: str) -> list[dict[str, Any]]:
        """Core events about one object (the same ones `kubectl describe` shows)."""
        query = [("fieldSelector", f"involvedObject.kind={kind},involvedObject.name={name}")]
        response = self.call(
            "GET",
            f"/api/v1/namespaces/{namespace}/events",
            query,
            what=f"list events in {namespace}",
            verb="list",
            resource="events",
            namespace=namespace,
        )
        items = json_of(response).get("items") or []
        return [dict(item) for item in items]

    # watching -------------------------------------------------------------------------------

    def list_objects(
        self, collection: Collection, namespace: str
    ) -> tuple[list[dict[str, Any]], str]:
        """Every object in `collection` and `namespace`, and the list's resourceVersion (to
        watch from)."""
        return self.list_collection(collection, namespace, None, api=self.stream_api)

    def watch_objects(
        self, collection: Collection, namespace: str, resource_version: str, *, timeout_s: int
    ) -> EventStream:
        """Changes after `resource_version`; the server ends the stream after `timeout_s`."""
        return open_watch(self, collection, namespace, resource_version, timeout_s=timeout_s)

    # asking and writing ---------------------------------------------------------------------

    def missing_permissions(
        self,
        documents: Sequence[Mapping[str, Any]],
        also: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> list[str]:
        """What this identity may not do that the deploy needs (see `kube.permissions`)."""
        return permissions.missing_permissions(self, documents, also)

    def server_side_apply(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = FIELD_MANAGER,
        force_conflicts: bool,
        namespace: str = "default",
        on_applied: Callable[[Applied], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> list[Applied]:
        """Server-side apply each document, in order (see `kube.apply`)."""
        return applying.server_side_apply(
            self,
            docs,
            field_manager=field_manager,
            force_conflicts=force_conflicts,
            namespace=namespace,
            on_applied=on_applied,
            warn=warn,
        )

    def dry_run(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = FIELD_MANAGER,
        namespace: str = "default",
        skip: frozenset[int] = frozenset(),
    ) -> int:
        """Every document through a server-side dry run before any is applied, but those whose
        index is in `skip` (see `kube.apply`)."""
        return applying.dry_run(
            self, docs, field_manager=field_manager, namespace=namespace, skip=skip
        )

    def preview(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = FIELD_MANAGER,
        force_conflicts: bool,
        namespace: str = "default",
        tolerate: Callable[[Rejected], bool] | None = None,
    ) -> list[Planned]:
        """Each document as it is and as a server-side apply would make it; nothing changes.
        A refusal `tolerate` accepts leaves that document out instead of ending the preview."""
        return applying.preview(
            self,
            docs,
            field_manager=field_manager,
            force_conflicts=force_conflicts,
            namespace=namespace,
            tolerate=tolerate,
        )

    def get_object(
        self, api_version: str, kind: str, name: str, namespace: str
    ) -> dict[str, Any] | None:
        """One namespaced object, or None when it does not exist. A kind the deployer waits for
        or reads has a known path: no discovery (which `wait` would pay for at start-up)."""
        known = _known_collection(api_version, kind)
        if known is not None:
            path = f"{collection_path(known, namespace)}/{quote(name, safe='')}"
        else:
            path = self.resource(api_version, kind).path(name=name, namespace=namespace)
        try:
            return self.get_json(path, what=f"get {kind.lower()}/{name}")
        except NotFound:
            return None

    def preferred_version(self, group: str) -> str | None:
        """The API server's preferred `group/version` of an API group (`v1` for the core group);
        None when the group is not served."""
        if not group:
            return "v1"
        try:
            data = self.get_json(
                f"/apis/{quote(group, safe='')}", what=f"discover API group {group}"
            )
        except NotFound:
            return None
        found = (data.get("preferredVersion") or {}).get("groupVersion")
        return str(found) if found else None

    def list_labelled(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        """The objects of a kind in `namespace` that carry the labels of `selector`."""
        resource = self.resource(api_version, kind)
        collection = Collection(kind, api_version, str(resource.name))
        return self.list_collection(collection, namespace, selector)[0]

    def delete_object(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        *,
        propagation: str = "Background",
        wait_s: float = 0.0,
    ) -> None:
        """Delete one object with an explicit propagation policy (never the API's default, which
        orphans a Job's pods); with `wait_s`, wait until it is gone (Foreground: its pods too)."""
        resource = self.resource(api_version, kind)
        path = resource.path(name=name, namespace=namespace)
        try:
            self.call(
                "DELETE",
                path,
                [],
                what=f"delete {kind.lower()}/{name}",
                verb="delete",
                resource=plural_of(resource),
                namespace=namespace,
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": propagation,
                },
                content_type="application/json",
            )
        except NotFound:
            return
        deadline = time.monotonic() + wait_s
        while wait_s and time.monotonic() < deadline:
            if self.get_object(api_version, kind, name, namespace) is None:
                return
            time.sleep(0.2)
        if wait_s:
            raise ApiUnavailable(
                f"{kind.lower()}/{name} was deleted but is still there after {wait_s:.0f}s"
            )

    def patch_object(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        patch: Mapping[str, Any],
        *,
        content_type: str = "application/strategic-merge-patch+json",
        field_manager: str = ROLLBACK_FIELD_MANAGER,
    ) -> dict[str, Any]:
        """Patch one namespaced object (a strategic merge patch unless told); the object as it
        is after."""
        resource = self.resource(api_version, kind)
        response = self.call(
            "PATCH",
            resource.path(name=name, namespace=namespace),
            [("fieldManager", field_manager)],
            what=f"patch {kind.lower()}/{name}",
            verb="patch",
            resource=plural_of(resource),
            namespace=namespace,
            body=dict(patch),
            content_type=content_type,
        )
        return json_of(response)

    def undo_rollout(
        self, deployment_name: str, namespace: str, to_revision: str | None = None
    ) -> Rollback:
        """Return a Deployment to its previous revision (or to `to_revision`), as `kubectl
        rollout undo [--to-revision]` does.

        We use our own field manager, so the next deploy's apply takes those fields back (with
        force_conflicts; without it, it names this manager).
        """
        deployment = self.get_deployment(deployment_name, namespace)
        replicasets: list[dict[str, Any]] = []
        if deployment is not None and not (deployment.get("spec") or {}).get("paused"):
            replicasets = self.list_replicasets(
                namespace, (deployment.get("spec") or {}).get("selector")
            )
        plan = plan_rollback(deployment, replicasets, deployment_name, to_revision=to_revision)
        generation = None
        if plan.patch is not None:
            response = self.call(
                "PATCH",
                f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment_name}",
                [("fieldManager", ROLLBACK_FIELD_MANAGER)],
                what=f"roll back deployment/{deployment_name}",
                verb="patch",
                resource="deployments",
                namespace=namespace,
                body=plan.patch,
                content_type="application/json-patch+json",
            )
            generation = (json_of(response).get("metadata") or {}).get("generation")
        return Rollback(
            deployment_name,
            namespace,
            plan.patch is not None,
            plan.from_revision,
            plan.to_revision,
            plan.message,
            int(generation) if generation is not None else None,
        )


def _known_collection(api_version: str, kind: str) -> Collection | None:
    """The collection of a namespaced kind whose path needs no discovery: the waited kinds
    (`workloads.KINDS`), ReplicaSets and Pods."""
    for collection in (*(row.collection for row in KINDS.values()), REPLICASETS, PODS):
        if (collection.api_version, collection.kind) == (api_version, kind):
            return collection
    return None
