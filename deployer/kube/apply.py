"""Server-side apply, and its conflict policy.

Field manager `django-k8s-deploy`. With `force_conflicts=True` (kubectl's `--force-conflicts`)
we take ownership of every field *our manifests set* from other managers (`kubectl edit`,
`kubectl scale`, an older client-side apply); fields we do not set are never touched. Without
it, a conflict stops the deploy with the fields and their owners. We always apply without force
first, so a take-over is seen and reported as a warning.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployer.kube.connection import Connection, json_of, plural_of
from deployer.kube.errors import (
    ApiUnavailable,
    Conflict,
    Invalid,
    KubeError,
    NotFound,
    Rejected,
    apply_conflict,
    denying_webhook,
)
from deployer.kube.values import FIELD_MANAGER, Applied, Planned
from deployer.objects import subject


def server_side_apply(
    connection: Connection,
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
        target = _target(connection, doc, namespace, field_manager)
        ns = target.namespace
        try:
            response = _patch(connection, target, doc, force=False)
        except Conflict as conflict:
            if not force_conflicts:
                raise
            if warn is not None:
                warn(
                    f"{kind.lower()}/{name}: taking over fields set by other managers "
                    f"(force-conflicts): {conflict.fields}"
                )
            response = _patch(connection, target, doc, force=True)
        if warn is not None:
            for text in warnings_of(response):
                warn(f"{kind.lower()}/{name}: {text}")
        meta = json_of(response).get("metadata") or {}
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


def dry_run(
    connection: Connection,
    docs: Sequence[Mapping[str, Any]],
    *,
    field_manager: str = FIELD_MANAGER,
    namespace: str = "default",
    skip: frozenset[int] = frozenset(),
) -> int:
    """Send every document as a server-side apply with `dryRun=All` before anything is applied:
    the API server validates and defaults it exactly as it would, and changes nothing. A document
    it refuses for its content (400, 422, or the 500 of a wrongly typed field) is `Rejected`,
    with its index, so the caller can name its file:line while the cluster is still untouched.

    Forced, so a field conflict is left to the real apply's policy. Skipped (they cannot be
    checked before the real apply): objects in a namespace this deploy creates, and objects of
    a kind whose CustomResourceDefinition this deploy brings; and the documents whose index is
    in `skip` (the caller's: already checked as they are). Returns how many were checked.
    """
    creating = _created_namespaces(docs)
    brought = _brought_kinds(docs)
    checked = 0
    for index, doc in enumerate(docs):
        if index in skip:
            continue
        kind = str(doc.get("kind") or "")
        name = _name(doc)
        if (str(doc.get("apiVersion") or "").rpartition("/")[0], kind) in brought:
            continue
        try:
            target = _target(connection, doc, namespace, field_manager)
        except Invalid as exc:
            raise Rejected(exc.message, index=index, kind=kind, name=name, namespace=None) from exc
        try:
            _dry_patch(connection, target, doc, force=True)
        except NotFound:
            if target.namespace in creating:
                continue
            raise
        except Invalid as exc:
            raise _rejected(exc, index, target) from exc
        checked += 1
    return checked


def _dry_patch(
    connection: Connection, target: _Target, doc: Mapping[str, Any], *, force: bool
) -> Any:
    """One dry-run apply; a 500 that is not about the content is retried a little here (the
    client that sends it does not retry 500s, see `Connection.check_api`)."""
    for attempt in range(3):
        try:
            return _patch(connection, target, doc, force=force, dry_run=True)
        except ApiUnavailable as exc:
            if exc.status != 500 or attempt == 2:
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def _rejected(exc: Invalid, index: int, target: _Target) -> Rejected:
    return Rejected(
        exc.message,
        index=index,
        kind=target.kind,
        name=target.name,
        namespace=target.namespace,
        webhook=denying_webhook(exc.body),
    )


def _created_namespaces(docs: Sequence[Mapping[str, Any]]) -> set[str]:
    return {_name(d) for d in docs if d.get("kind") == "Namespace"}


def _brought_kinds(docs: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    return {_crd_kind(d) for d in docs if d.get("kind") == "CustomResourceDefinition"}


def _name(doc: Mapping[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("name") or "")


def _crd_kind(doc: Mapping[str, Any]) -> tuple[str, str]:
    spec = doc.get("spec") or {}
    names = spec.get("names") or {} if isinstance(spec, dict) else {}
    return str(spec.get("group") or "") if isinstance(spec, dict) else "", str(
        names.get("kind") or "" if isinstance(names, dict) else ""
    )


def preview(
    connection: Connection,
    docs: Sequence[Mapping[str, Any]],
    *,
    field_manager: str = FIELD_MANAGER,
    force_conflicts: bool,
    namespace: str = "default",
    tolerate: Callable[[Rejected], bool] | None = None,
) -> list[Planned]:
    """Server-side apply each document with `dryRun=All` (admission, defaulting and validation
    run; nothing is stored) and read the live object beside it. Conflicts are handled as the
    real apply would: with `force_conflicts`, the dry run takes the fields over too.

    That one dry run is also `dry_run`'s check, with its answers: a document refused for its
    content is `Rejected` (with its index) before any other refusal is raised — a conflict, a
    namespace or a kind this deploy brings, which only the real apply could get past. One
    dry-run apply per document; two for one whose fields another manager owns (the forced one
    checks its content). A content refusal that `tolerate` accepts leaves its document out of
    the answer instead (the caller has said why).
    """
    creating = _created_namespaces(docs)
    brought = _brought_kinds(docs)
    out: list[Planned] = []
    stopped: KubeError | None = None  # the first refusal that is not about a document's content
    for index, doc in enumerate(docs):
        kind = str(doc.get("kind") or "")
        name = _name(doc)
        try:
            target = _target(connection, doc, namespace, field_manager)
        except Invalid as exc:
            if (str(doc.get("apiVersion") or "").rpartition("/")[0], kind) in brought:
                stopped = stopped or exc
                continue
            raise Rejected(exc.message, index=index, kind=kind, name=name, namespace=None) from exc
        try:
            live: dict[str, Any] | None = connection.get_json(
                target.path, what=f"get {kind}/{name}"
            )
        except NotFound:
            live = None
        try:
            try:
                response = _dry_patch(connection, target, doc, force=False)
            except Conflict as conflict:
                response = _dry_patch(connection, target, doc, force=True)
                if not force_conflicts:
                    stopped = stopped or conflict
                    continue
        except NotFound:
            if target.namespace not in creating:
                raise
            stopped = stopped or NotFound(
                f"{subject(kind, name)} goes to namespace {target.namespace}, which this deploy "
                "creates: a dry run cannot check objects in a namespace that does not exist yet",
                hint=f"To preview them, create it first (kubectl create namespace "
                f"{target.namespace}); a deploy creates it before them.",
            )
            continue
        except Invalid as exc:
            rejected = _rejected(exc, index, target)
            if tolerate is not None and tolerate(rejected):
                continue
            raise rejected from exc
        out.append(Planned(live, json_of(response), dict(doc)))
    if stopped is not None:
        raise stopped
    return out


def _target(
    connection: Connection, doc: Mapping[str, Any], namespace: str, field_manager: str
) -> _Target:
    """Where `doc` is applied: its kind's path, in its namespace or `namespace` when it names
    none (cluster-scoped kinds have none). Raises Invalid for a kind the cluster does not serve."""
    kind = str(doc.get("kind") or "")
    name = _name(doc)
    resource = connection.resource(str(doc.get("apiVersion") or ""), kind)
    ns: str | None = None
    if resource.namespaced:
        ns = str((doc.get("metadata") or {}).get("namespace") or namespace)
    return _Target(
        resource.path(name=name, namespace=ns), kind, name, ns, plural_of(resource), field_manager
    )


@dataclass(frozen=True)
class _Target:
    path: str
    kind: str
    name: str
    namespace: str | None
    plural: str
    field_manager: str


def _patch(
    connection: Connection,
    target: _Target,
    doc: Mapping[str, Any],
    *,
    force: bool,
    dry_run: bool = False,
) -> Any:
    query = [("fieldManager", target.field_manager)] + ([("force", "true")] if force else [])
    if dry_run:
        query.append(("dryRun", "All"))
    try:
        return connection.call(
            "PATCH",
            target.path,
            query,
            what=f"apply {target.kind}/{target.name}",
            verb="patch",
            resource=target.plural,
            namespace=target.namespace,
            body=dict(doc),
            content_type="application/apply-patch+yaml",  # JSON is YAML
            api=connection.check_api if dry_run else None,
        )
    except Conflict as exc:
        raise apply_conflict(exc, target.kind, target.name, target.namespace) from exc


def warnings_of(response: Any) -> list[str]:
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
