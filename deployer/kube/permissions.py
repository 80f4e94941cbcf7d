"""What this identity may not do that the deploy needs, asked before the slow build."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deployer.kube.connection import Connection, json_of
from deployer.status import PODS, REPLICASETS, Collection
from deployer.workloads import KINDS

# What the watch and the diagnosis read in every namespace we deploy to; plus the collection of
# every other waited kind (workloads.KINDS) the manifests hold.
_READS: tuple[Collection, ...] = (KINDS["Deployment"].collection, REPLICASETS, PODS)


def missing_permissions(
    connection: Connection,
    documents: Sequence[Mapping[str, Any]],
    also: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> list[str]:
    """One SelfSubjectAccessReview per (verb, resource, namespace): `patch` for every object we
    apply (server-side apply is a PATCH), what the watch and diagnosis read, and each (verb,
    object) of `also` (what rollback and prune need: an object's apiVersion, kind and namespace
    name the resource). Returns kubectl-style lines like "patch deployments.apps in namespace
    shop".
    """
    wanted: list[tuple[str, str, str, str | None, str]] = []
    namespaces: set[str] = set()
    for verb, doc in [*(("patch", d) for d in documents), *also]:
        resource = connection.resource(str(doc.get("apiVersion")), str(doc.get("kind")))
        ns = (doc.get("metadata") or {}).get("namespace") if resource.namespaced else None
        group = str(doc.get("apiVersion", "")).rpartition("/")[0]
        # The review wants the bare plural (`deployments`) and the group apart, not `deployments.apps`.
        wanted.append((verb, group, str(resource.name), ns, ""))
        if ns:
            namespaces.add(ns)
    kinds = {str(doc.get("kind")) for doc in documents}
    reads = [*_READS, *(k.collection for k in KINDS.values() if k.kind in kinds)]
    for ns in sorted(namespaces):
        for collection in dict.fromkeys(reads):
            group = collection.api_version.rpartition("/")[0]
            plural = collection.plural
            wanted += [("list", group, plural, ns, ""), ("watch", group, plural, ns, "")]
        wanted += [("list", "", "events", ns, ""), ("get", "", "pods", ns, "log")]
    missing: list[str] = []
    for verb, group, plural, ns, sub in dict.fromkeys(wanted):
        if not _allowed(connection, verb, group, plural, ns, sub):
            what = f"{plural}{'/' + sub if sub else ''}{'.' + group if group else ''}"
            missing.append(f"{verb} {what}" + (f" in namespace {ns}" if ns else " (cluster-wide)"))
    return missing


def _allowed(
    connection: Connection, verb: str, group: str, plural: str, ns: str | None, sub: str
) -> bool:
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
    response = connection.call(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        [],
        what="ask the API server what this identity may do",
        verb="create",
        resource="selfsubjectaccessreviews.authorization.k8s.io",
        body=body,
        content_type="application/json",
    )
    return bool((json_of(response).get("status") or {}).get("allowed"))
