"""`prune: true`: the deploy is an ApplySet as kubectl defines it (KEP-3659,
`kubectl apply --prune --applyset`), and objects of the set that the manifests no longer hold
are deleted once the deploy is green.

The standard, as kubectl implements it (pkg/cmd/apply/applyset.go):
- the parent is a Secret (here `<app>-applyset` in the deploy's namespace, `<app>` the image
  repository's last part) labelled `applyset.kubernetes.io/id: applyset-<id>-v1`, the id being
  base64url(sha256("<name>.<namespace>.<Kind>.<group>")) without padding;
- it carries `applyset.kubernetes.io/tooling: <tool>/<version>` (a tool refuses a set whose
  tooling names another tool), `applyset.kubernetes.io/contains-group-kinds` (sorted
  `Kind.group` list) and `applyset.kubernetes.io/additional-namespaces`;
- every member is labelled `applyset.kubernetes.io/part-of: <the id>`;
- before apply the parent is updated to the superset of the kinds and namespaces it had and the
  ones applied now (an interrupted deploy leaks nothing); after a green deploy, members of those
  kinds in those namespaces that this deploy did not apply are deleted and the parent is set to
  what was applied.

Members are the namespaced objects of the manifests and the Secret from `secrets`; cluster-scoped
objects (a Namespace, a ClusterRole) and the run-first and run-after Jobs (their own cleanup) are
never members, so never pruned. Nothing without the label is ever listed, let alone deleted.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer import __version__, manifests
from deployer.errors import DeployError, InputError
from deployer.objects import subject
from deployer.run import Run
from deployer.services import ClusterApi

ID_LABEL = "applyset.kubernetes.io/id"
PART_OF_LABEL = "applyset.kubernetes.io/part-of"
TOOLING_ANNOTATION = "applyset.kubernetes.io/tooling"
KINDS_ANNOTATION = "applyset.kubernetes.io/contains-group-kinds"
RESOURCES_ANNOTATION = "applyset.kubernetes.io/contains-group-resources"  # deprecated form
NAMESPACES_ANNOTATION = "applyset.kubernetes.io/additional-namespaces"
TOOL = "django-k8s-deploy"
TOOLING = f"{TOOL}/{__version__}"  # django-k8s-deploy/v1.2.3 (v0.0.0-dev from a checkout)
PARENT_FIELD_MANAGER = f"{TOOL}-applyset"  # kubectl's is kubectl-applyset
PARENT_API_VERSION, PARENT_KIND = "v1", "Secret"


# --- pure ---------------------------------------------------------------------------------------


def parent_name(image: str) -> str:
    """The parent Secret's name: the image repository's last part, made a valid name."""
    repo = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    base = re.sub(r"[^a-z0-9-]+", "-", repo.lower()).strip("-")[:200] or "app"
    return f"{base}-applyset"


def applyset_id(name: str, namespace: str, kind: str = PARENT_KIND, group: str = "") -> str:
    """kubectl's ApplySet id of a parent: applyset-<base64url(sha256(name.ns.Kind.group))>-v1."""
    digest = hashlib.sha256(f"{name}.{namespace}.{kind}.{group}".encode()).digest()
    return "applyset-" + base64.urlsafe_b64encode(digest).decode().rstrip("=") + "-v1"


def group_kind(api_version: str, kind: str) -> str:
    """`Kind.group` (`Kind` for the core group), as schema.GroupKind prints it."""
    group = api_version.rpartition("/")[0]
    return f"{kind}.{group}" if group else kind


def split_group_kind(text: str) -> tuple[str, str]:
    """(group, Kind) of `Kind.group`, as schema.ParseGroupKind reads it."""
    kind, _, group = text.partition(".")
    return group, kind


def tooling_base(value: str) -> str:
    """The tool's name of a tooling annotation (`kubectl/v1.32` → `kubectl`)."""
    parts = value.split("/")
    return "/".join(parts[:-1]) if len(parts) >= 2 else value


def is_member(body: Mapping[str, Any]) -> bool:
    kind = str(body.get("kind") or "")
    namespace = (body.get("metadata") or {}).get("namespace")
    return bool(namespace) and kind not in manifests.CLUSTER_SCOPED_KINDS


@dataclass(frozen=True)
class SetState:
    """A set's kinds (`Kind.group`) and namespaces (the parent's own included)."""

    kinds: frozenset[str]
    namespaces: frozenset[str]

    def union(self, other: SetState) -> SetState:
        return SetState(self.kinds | other.kinds, self.namespaces | other.namespaces)


def state_of(bodies: Iterable[Mapping[str, Any]], parent_namespace: str) -> SetState:
    """What a set holds once `bodies` (its members) are applied."""
    kinds, namespaces = set(), {parent_namespace}
    for body in bodies:
        kinds.add(group_kind(str(body.get("apiVersion") or ""), str(body.get("kind") or "")))
        namespaces.add(str((body.get("metadata") or {}).get("namespace")))
    return SetState(frozenset(kinds), frozenset(namespaces))


def read_parent(live: Mapping[str, Any] | None, name: str, namespace: str) -> SetState | None:
    """The set a live parent records (None: no parent yet). A parent another tool manages, or
    one that is not this set's, is refused as kubectl refuses it."""
    if live is None:
        return None
    meta = live.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    where = f"secret/{name} in namespace {namespace}"
    tooling = annotations.get(TOOLING_ANNOTATION)
    if tooling is None:
        raise InputError(
            f"{where} exists and is not an ApplySet parent (no {TOOLING_ANNOTATION} annotation)",
            where="prune",
            hint="It is someone else's Secret: rename it, or set prune: false.",
        )
    if tooling_base(str(tooling)) != TOOL:
        raise InputError(
            f"{where} is the ApplySet parent of another tool ({tooling}), not of {TOOL}",
            where="prune",
            hint="One tool manages a set: prune with that tool, or set prune: false.",
        )
    if labels.get(ID_LABEL) != applyset_id(name, namespace):
        raise InputError(
            f"{where} has label {ID_LABEL}={labels.get(ID_LABEL)!r}, not this set's id",
            where="prune",
            hint="The parent was edited by hand: restore the label or delete the parent.",
        )
    if KINDS_ANNOTATION in annotations:
        text = str(annotations[KINDS_ANNOTATION])
        kinds = frozenset(k for k in text.split(",") if k)
    else:
        kinds = frozenset()
    extra = str(annotations.get(NAMESPACES_ANNOTATION) or "")
    return SetState(kinds, frozenset({namespace, *(n for n in extra.split(",") if n)}))


def parent_body(name: str, namespace: str, state: SetState) -> dict[str, Any]:
    """The parent as kubectl writes it (server-side apply of its metadata)."""
    return {
        "apiVersion": PARENT_API_VERSION,
        "kind": PARENT_KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {ID_LABEL: applyset_id(name, namespace)},
            "annotations": {
                TOOLING_ANNOTATION: TOOLING,
                KINDS_ANNOTATION: ",".join(sorted(state.kinds)),
                NAMESPACES_ANNOTATION: ",".join(sorted(state.namespaces - {namespace})),
            },
        },
    }


def label_members(bodies: Iterable[dict[str, Any]], set_id: str) -> int:
    """Label each member `part-of` the set; how many were labelled."""
    count = 0
    for body in bodies:
        if is_member(body):
            body.setdefault("metadata", {}).setdefault("labels", {})[PART_OF_LABEL] = set_id
            count += 1
    return count


def check_manifests(documents: Sequence[manifests.Document], root: Path) -> None:
    """Refused as kubectl refuses them: no object at all (an empty glob must not delete an app),
    or an object that already carries a set's label."""
    if not documents:
        raise InputError(
            "the manifests hold no object: with prune: true that would delete every object of "
            "the app",
            where="prune",
            hint="Check the manifests input (an empty file or glob?), or set prune: false.",
        )
    for d in documents:
        labels = (d.body.get("metadata") or {}).get("labels") or {}
        for key in (PART_OF_LABEL, ID_LABEL):
            if key in labels:
                raise InputError(
                    f"{d.subject} sets label {key}: with prune: true the action sets it",
                    file=manifests.display_path(d.path, root),
                    line=d.line,
                    hint="Remove the label from the manifest.",
                )


def rights_needed(
    bodies: Sequence[Mapping[str, Any]], namespace: str
) -> list[tuple[str, dict[str, Any]]]:
    """What prune needs beyond applying, as (verb, an object of the resource) for the
    permission preflight: the parent Secret read and written, each member kind listed and
    deleted in its namespace."""

    def stub(api_version: str, kind: str, ns: str) -> dict[str, Any]:
        return {"apiVersion": api_version, "kind": kind, "metadata": {"namespace": ns}}

    parent = stub(PARENT_API_VERSION, PARENT_KIND, namespace)
    needed = [("get", parent), ("patch", parent)]
    for body in bodies:
        if is_member(body):
            ns = str((body.get("metadata") or {}).get("namespace"))
            member = stub(str(body.get("apiVersion") or ""), str(body.get("kind") or ""), ns)
            needed += [("list", member), ("delete", member)]
    return needed


def key_of(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    gk = group_kind(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
    return gk, str(meta.get("namespace") or ""), str(meta.get("name") or "")


# --- phases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pruning:
    """One deploy's set: its parent, what the set held before (and now, as a superset), and
    the members this deploy applies."""

    name: str
    namespace: str
    previous: SetState
    applied: SetState
    members: tuple[tuple[str, str, str], ...]

    @property
    def set_id(self) -> str:
        return applyset_id(self.name, self.namespace)

    @property
    def parent(self) -> str:
        return f"secret/{self.name}"


def plan_set(
    run: Run, cluster: ClusterApi, bodies: Sequence[Mapping[str, Any]], namespace: str
) -> Pruning:
    """The parent read and checked (refused if another tool's); nothing is written."""
    name = parent_name(run.settings.image)
    live = cluster.get_object(PARENT_API_VERSION, PARENT_KIND, name, namespace)
    previous = read_parent(live, name, namespace) or SetState(frozenset(), frozenset())
    members = [b for b in bodies if is_member(b)]
    _refuse_members_of_another_set(cluster, members, applyset_id(name, namespace))
    return Pruning(
        name,
        namespace,
        previous,
        state_of(members, namespace),
        tuple(key_of(b) for b in members),
    )


def _refuse_members_of_another_set(
    cluster: ClusterApi, members: Sequence[Mapping[str, Any]], set_id: str
) -> None:
    """An object of the manifests that is already a member of another set (another parent,
    another tool) is refused: applying would move it out of that set silently. One list per kind
    and namespace (label selector: in some set, not this one)."""
    wanted: dict[tuple[str, str, str], set[str]] = {}
    for body in members:
        meta = body.get("metadata") or {}
        key = (str(body.get("apiVersion")), str(body.get("kind")), str(meta.get("namespace")))
        wanted.setdefault(key, set()).add(str(meta.get("name")))
    selector = f"{PART_OF_LABEL},{PART_OF_LABEL}!={set_id}"
    for (api_version, kind, namespace), names in wanted.items():
        for obj in cluster.list_labelled(api_version, kind, namespace, selector):
            meta = obj.get("metadata") or {}
            other = (meta.get("labels") or {}).get(PART_OF_LABEL)
            if meta.get("name") in names and other and other != set_id:
                raise InputError(
                    f"{subject(kind, str(meta.get('name')))} in namespace {namespace} belongs to "
                    f"another ApplySet ({PART_OF_LABEL}={other})",
                    where="prune",
                    hint="An object belongs to one set: remove it from one app's manifests, or "
                    "set prune: false.",
                )


def before_apply(
    run: Run, cluster: ClusterApi, bodies: Sequence[Mapping[str, Any]], namespace: str
) -> Pruning:
    """Before anything is applied: the parent checked, then written with the superset of what
    the set held and what is applied now (kubectl's BeforeApply)."""
    with run.phase("apply", f"ApplySet: {TOOL} set of the app (prune: true)"):
        pruning = plan_set(run, cluster, bodies, namespace)
        _write_parent(cluster, pruning, pruning.previous.union(pruning.applied))
        run.reporter.line(
            f"{pruning.parent} in {namespace} is the ApplySet parent (id {pruning.set_id}); "
            f"{len(pruning.members)} member(s) labelled {PART_OF_LABEL}"
        )
    return pruning


def _write_parent(cluster: ClusterApi, pruning: Pruning, state: SetState) -> None:
    cluster.server_side_apply(
        [parent_body(pruning.name, pruning.namespace, state)],
        field_manager=PARENT_FIELD_MANAGER,
        force_conflicts=True,
        namespace=pruning.namespace,
    )


def candidates(cluster: ClusterApi, pruning: Pruning) -> list[dict[str, Any]]:
    """The set's members in the cluster (its label, of the kinds and in the namespaces the set
    held or holds now) that this deploy does not apply."""
    state = pruning.previous.union(pruning.applied)
    keep = set(pruning.members)
    selector = f"{PART_OF_LABEL}={pruning.set_id}"
    found: list[dict[str, Any]] = []
    for gk in sorted(state.kinds):
        group, kind = split_group_kind(gk)
        api_version = cluster.preferred_version(group)
        if api_version is None:
            continue  # the kind is no longer served (its CRD went): nothing of it to list
        for namespace in sorted(state.namespaces):
            for obj in cluster.list_labelled(api_version, kind, namespace, selector):
                obj.setdefault("apiVersion", api_version)
                obj.setdefault("kind", kind)
                labels = (obj.get("metadata") or {}).get("labels") or {}
                if labels.get(PART_OF_LABEL) != pruning.set_id:
                    continue  # the selector said so; checked again, deleting is not undone
                key = (gk, namespace, str((obj.get("metadata") or {}).get("name") or ""))
                if key not in keep:
                    found.append(obj)
    return found


def prune(run: Run, cluster: ClusterApi, pruning: Pruning) -> None:
    """After a green deploy: delete the set's members this deploy did not apply, list them, and
    record the set as applied now. A refusal fails the deploy (the release itself is live)."""
    with run.phase("prune", f"Prune: objects of {pruning.parent} no longer in the manifests"):
        try:
            gone = candidates(cluster, pruning)
            for obj in gone:
                meta = obj.get("metadata") or {}
                what = subject(str(obj["kind"]), str(meta.get("name")))
                cluster.delete_object(
                    str(obj["apiVersion"]),
                    str(obj["kind"]),
                    str(meta.get("name")),
                    str(meta.get("namespace")),
                    propagation="Background",
                )
                run.outcome.pruned.append(what)
                run.reporter.line(f"pruned {what} in {meta.get('namespace')}")
            _write_parent(cluster, pruning, pruning.applied)
        except DeployError as error:
            raise DeployError(
                f"prune failed: {error}; the release itself is live (every rollout succeeded)"
            ) from error
        if not gone:
            run.reporter.line("nothing to prune: every object of the set is in the manifests")


def preview(
    run: Run, cluster: ClusterApi, bodies: Sequence[Mapping[str, Any]], namespace: str
) -> None:
    """dry-run: what prune would delete (nothing is written, the parent neither)."""
    with run.phase("preview", "Preview: prune (nothing is deleted)"):
        pruning = plan_set(run, cluster, bodies, namespace)
        if not pruning.previous.kinds:
            run.reporter.line(
                f"no ApplySet {pruning.parent} in {namespace} yet: nothing would be pruned "
                "(the first deploy with prune: true creates it)"
            )
            run.outcome.prune_preview = True
            return
        for obj in candidates(cluster, pruning):
            meta = obj.get("metadata") or {}
            what = subject(str(obj["kind"]), str(meta.get("name")))
            run.outcome.pruned.append(what)
            run.reporter.line(f"would prune {what} in {meta.get('namespace')}")
        run.outcome.prune_preview = True
        if not run.outcome.pruned:
            run.reporter.line(
                "nothing would be pruned: every object of the set is in the manifests"
            )
