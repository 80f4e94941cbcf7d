"""Whole-release rollback (`rollback-on-failure`) and the config a failed migration changed.

Before anything is applied, `capture` reads what the deploy is about to change (it knows exactly
which objects it applies): each ConfigMap and Secret (their content, or that they were absent),
and, for a rollback, each Deployment, StatefulSet and DaemonSet with the revision it ran (a
Deployment's revision number; the ControllerRevision of a StatefulSet or DaemonSet).

`restore_config` puts the ConfigMaps and Secrets back (a failed run-first Job: the running pods
keep reading the config they started with, and so does any of them that restarts). `roll_back`
does that too, returns every workload the deploy changed to the revision it ran (`kubectl rollout
undo --to-revision` for a Deployment, its ControllerRevision's template for a StatefulSet or a
DaemonSet), deletes what the deploy created, then watches the restored workloads through the one
`roll_out`, within a budget of its own; its verdict is reported beside the failure's.

Secret values are held in memory only and never shown: every line names objects, never data.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deployer.errors import DeployError
from deployer.kube import FIELD_MANAGER
from deployer.objects import condition, controller_uid, subject
from deployer.results import RolloutResult, Target
from deployer.rollouts import Stage, roll_out
from deployer.run import Run
from deployer.services import ClusterApi
from deployer.status import PODS, REVISION_ANNOTATION, Collection

CONFIG_KINDS = ("ConfigMap", "Secret")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
CONTROLLER_REVISIONS = Collection("ControllerRevision", "apps/v1", "controllerrevisions")
# Never carried back: written by the API server, or kubectl's own record of its last apply.
_SKIPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
# What makes a ConfigMap's or Secret's content (what a pod reads).
_CONTENT = ("data", "binaryData", "type", "immutable")


@dataclass(frozen=True)
class Before:
    """One object as it was before this deploy: `live` None when it did not exist; for a
    workload, `revision` is the revision it ran (None: it had none we could tell)."""

    api_version: str
    kind: str
    name: str
    namespace: str
    live: dict[str, Any] | None
    revision: str | None = None

    @property
    def subject(self) -> str:
        return subject(self.kind, self.name)


@dataclass
class Snapshot:
    """What `capture` read; `unread` names the objects it could not read (never restored)."""

    before: list[Before] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)

    def config(self) -> list[Before]:
        return [b for b in self.before if b.kind in CONFIG_KINDS]


# --- pure ---------------------------------------------------------------------------------------


def restored_body(before: Before) -> dict[str, Any]:
    """The server-side apply body that puts a ConfigMap or Secret back as it was: its content,
    labels and annotations (kubectl's last-applied record left where it is). Applied by our
    field manager, it also removes the keys this deploy added."""
    live = before.live or {}
    meta = live.get("metadata") or {}
    body: dict[str, Any] = {
        "apiVersion": before.api_version,
        "kind": before.kind,
        "metadata": {"name": before.name, "namespace": before.namespace},
    }
    labels = dict(meta.get("labels") or {})
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k not in _SKIPPED_ANNOTATIONS
    }
    if labels:
        body["metadata"]["labels"] = labels
    if annotations:
        body["metadata"]["annotations"] = annotations
    for key in _CONTENT:
        if key in live:
            body[key] = copy.deepcopy(live[key])
    return body


def same_content(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Do two ConfigMaps/Secrets give a pod the same thing?"""
    if a is None or b is None:
        return a is b
    return all((a.get(k) or None) == (b.get(k) or None) for k in _CONTENT)


def running_revision(
    workload: Mapping[str, Any], revisions: Sequence[Mapping[str, Any]]
) -> str | None:
    """The ControllerRevision a StatefulSet or DaemonSet runs: for a StatefulSet whose status is
    current, its `updateRevision`; else the newest revision it owns."""
    meta = workload.get("metadata") or {}
    status = workload.get("status") or {}
    current = status.get("observedGeneration") == meta.get("generation")
    if current and status.get("updateRevision"):
        return str(status["updateRevision"])
    uid = meta.get("uid")
    owned = [r for r in revisions if controller_uid(r) == uid]
    if not owned:
        return None
    newest = max(owned, key=lambda r: int(r.get("revision") or 0))
    return str((newest.get("metadata") or {}).get("name") or "") or None


def revision_patch(revision: Mapping[str, Any]) -> dict[str, Any] | None:
    """The strategic merge patch a ControllerRevision holds (`spec.template` with `$patch:
    replace`), as `kubectl rollout undo` sends it for a StatefulSet or a DaemonSet."""
    data = revision.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
        return None
    return copy.deepcopy(data)


def stuck_pods(
    statefulset: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], revision: str
) -> list[str]:
    """The StatefulSet's pods not at `revision` (the one restored) that are not Ready, or whose
    containers have restarted: with the default OrderedReady policy the controller waits for
    them forever, so after reverting the template they must be deleted (the Kubernetes
    documentation's "forced rollback"). A crash-looping container without a readiness probe is
    Ready for a moment at each start: Ready alone would keep such a pod if read in that moment."""
    uid = (statefulset.get("metadata") or {}).get("uid")
    stuck = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if controller_uid(pod) != uid:
            continue
        if (meta.get("labels") or {}).get("controller-revision-hash") == revision:
            continue
        status = pod.get("status") or {}
        ready = condition(status, "Ready")
        restarted = any(
            int(cs.get("restartCount") or 0) > 0
            for cs in status.get("containerStatuses") or []
            if isinstance(cs, Mapping)
        )
        if ready is None or ready.get("status") != "True" or restarted:
            stuck.append(str(meta.get("name")))
    return sorted(stuck)


def rights_needed(
    bodies: Sequence[Mapping[str, Any]], *, workloads: bool
) -> list[tuple[str, dict[str, Any]]]:
    """What reading before apply and restoring after need beyond applying (`patch`), as (verb,
    an object of the resource) for the permission preflight: `get` and `delete` (what the deploy
    created goes) on each ConfigMap and Secret and, with `workloads`, on each Deployment,
    StatefulSet and DaemonSet; ControllerRevisions read; a stuck StatefulSet pod deleted."""
    kinds = CONFIG_KINDS + (WORKLOAD_KINDS if workloads else ())
    needed: list[tuple[str, dict[str, Any]]] = []
    for body in bodies:
        kind = str(body.get("kind") or "")
        if kind not in kinds:
            continue
        namespace = str((body.get("metadata") or {}).get("namespace") or "")
        stub = _stub(str(body.get("apiVersion") or ""), kind, namespace)
        needed += [("get", stub), ("delete", stub)]
        if kind in ("StatefulSet", "DaemonSet"):
            revisions = _stub("apps/v1", "ControllerRevision", namespace)
            needed += [("get", revisions), ("list", revisions)]
        if kind == "StatefulSet":
            needed.append(("delete", _stub("v1", "Pod", namespace)))
    return needed


def _stub(api_version: str, kind: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"namespace": namespace}}


def generation(obj: Mapping[str, Any] | None) -> int | None:
    value = ((obj or {}).get("metadata") or {}).get("generation")
    return int(value) if value is not None else None


# --- phases -------------------------------------------------------------------------------------


def capture(
    run: Run, cluster: ClusterApi, bodies: Sequence[Mapping[str, Any]], *, workloads: bool
) -> Snapshot:
    """Read, before anything is applied, each ConfigMap and Secret of `bodies` (and, with
    `workloads`, each Deployment, StatefulSet and DaemonSet and the revision it runs). One GET
    per object; an object that cannot be read is named and will not be restored."""
    kinds = CONFIG_KINDS + (WORKLOAD_KINDS if workloads else ())
    snapshot = Snapshot()
    for body in bodies:
        kind = str(body.get("kind") or "")
        if kind not in kinds:
            continue
        meta = body.get("metadata") or {}
        api_version, name = str(body.get("apiVersion") or ""), str(meta.get("name") or "")
        namespace = str(meta.get("namespace") or "")
        try:
            live = cluster.get_object(api_version, kind, name, namespace)
            revision = _revision(cluster, kind, namespace, live)
        except DeployError as error:
            snapshot.unread.append(subject(kind, name))
            run.reporter.warning(
                f"{subject(kind, name)}: could not be read before apply ({error}); "
                "it will not be restored if the deploy fails",
                title="Rollback",
            )
            continue
        snapshot.before.append(Before(api_version, kind, name, namespace, live, revision))
    return snapshot


def _revision(
    cluster: ClusterApi, kind: str, namespace: str, live: Mapping[str, Any] | None
) -> str | None:
    if live is None or kind not in WORKLOAD_KINDS:
        return None
    if kind == "Deployment":
        value = ((live.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
        return str(value) if value is not None else None
    selector = (live.get("spec") or {}).get("selector")
    revisions, _ = cluster.list_collection(CONTROLLER_REVISIONS, namespace, selector)
    return running_revision(live, revisions)


def restore_config(run: Run, cluster: ClusterApi, snapshot: Snapshot, why: str) -> None:
    """A run-first Job failed: the ConfigMaps and Secrets this deploy changed go back to what
    they were (those it created are deleted), so a pod that restarts reads what it read before."""
    items = snapshot.config()
    if not items:
        return
    with run.phase("rollback", f"Restore config: {why}"):
        for before in items:
            _restore(run, cluster, before)


def roll_back(run: Run, cluster: ClusterApi, snapshot: Snapshot, timeout_s: float) -> None:
    """The whole release back to what ran before this deploy: config first (the pods the
    workloads' rollback starts read it), then every workload the deploy changed; what it created
    is deleted. Then the restored workloads are watched (their own `timeout_s`) and diagnosed
    like any rollout; their verdicts are the rollback's, kept apart from the deploy's."""
    outcome = run.outcome
    targets: list[Target] = []
    with run.phase("rollback", "Rollback: the whole release, to what ran before this deploy"):
        for before in snapshot.config():
            _restore(run, cluster, before)
        for before in snapshot.before:
            if before.kind in WORKLOAD_KINDS:
                target = _restore(run, cluster, before)
                if target is not None:
                    targets.append(target)
        for unread in snapshot.unread:
            outcome.rollback_problems.append(f"{unread}: not restored (it could not be read)")
        if targets:
            run.reporter.line(
                f"waiting for the restored release: {', '.join(t.subject for t in targets)} "
                f"(timeout {timeout_s:.0f}s)"
            )
    if not targets:
        return
    results: list[RolloutResult] = roll_out(
        run,
        cluster,
        targets,
        timeout_s=timeout_s,
        stage=Stage("the rollback", "Rollback: watch the restored release", record=False),
    )
    outcome.rollback_results = list(results)


def _restore(run: Run, cluster: ClusterApi, before: Before) -> Target | None:
    """Put one object back; a Target when a restored workload's pods roll again. A refusal is
    reported and recorded, and the rest is still restored."""
    try:
        return _restore_one(run, cluster, before)
    except DeployError as error:
        line = f"{before.subject}: not restored: {error}"
        run.outcome.rollback_problems.append(line)
        run.reporter.warning(line, title="Rollback incomplete")
        return None


def _restore_one(run: Run, cluster: ClusterApi, before: Before) -> Target | None:
    reporter, outcome = run.reporter, run.outcome
    b = before
    now = cluster.get_object(b.api_version, b.kind, b.name, b.namespace)
    if b.live is None:
        if now is None:
            return None
        cluster.delete_object(b.api_version, b.kind, b.name, b.namespace, propagation="Background")
        _done(run, f"{b.subject}: deleted (this deploy created it)", f"{b.subject} (deleted)")
        return None
    if b.kind in CONFIG_KINDS:
        if same_content(b.live, now):
            return None
        cluster.server_side_apply(
            [restored_body(b)],
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
            namespace=b.namespace,
        )
        _done(
            run,
            f"{b.subject}: restored to what it was before this deploy",
            f"{b.subject} (restored)",
        )
        return None
    if now is None:
        line = f"{b.subject}: gone since this deploy started; not restored"
        outcome.rollback_problems.append(line)
        reporter.warning(line, title="Rollback incomplete")
        return None
    if b.kind == "Deployment":
        return _undo_deployment(run, cluster, b, now)
    if generation(now) == generation(b.live):
        return None  # this deploy did not change its spec
    if b.revision is None:
        line = f"{b.subject}: no revision it ran before this deploy is known; not restored"
        outcome.rollback_problems.append(line)
        reporter.warning(line, title="Rollback incomplete")
        return None
    revision = cluster.get_object("apps/v1", "ControllerRevision", b.revision, b.namespace)
    patch = revision_patch(revision or {})
    if patch is None:
        line = f"{b.subject}: controllerrevision/{b.revision} is no longer kept; not restored"
        outcome.rollback_problems.append(line)
        reporter.warning(line, title="Rollback incomplete")
        return None
    patched = cluster.patch_object(b.api_version, b.kind, b.name, b.namespace, patch)
    _done(
        run,
        f"{b.subject}: back to the template of controllerrevision/{b.revision}",
        f"{b.subject} (to {b.revision})",
    )
    if b.kind == "StatefulSet":
        selector = (patched.get("spec") or {}).get("selector")
        pods, _ = cluster.list_collection(PODS, b.namespace, selector)
        for name in stuck_pods(patched, pods, b.revision):
            cluster.delete_object("v1", "Pod", name, b.namespace, propagation="Background")
            run.reporter.line(
                f"{b.subject}: deleted pod {name}: it ran the failed revision and never became "
                "ready, and a StatefulSet waits for such a pod forever (forced rollback)"
            )
    return Target(b.name, b.namespace, generation(patched), kind=b.kind)


def _undo_deployment(
    run: Run, cluster: ClusterApi, b: Before, now: Mapping[str, Any]
) -> Target | None:
    revision_now = ((now.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    if b.revision is None or str(revision_now) == b.revision:
        return None  # its template is the one it ran before this deploy
    undo = cluster.undo_rollout(b.name, b.namespace, to_revision=b.revision)
    if not undo.done:
        line = f"{b.subject}: {undo.message}"
        run.outcome.rollback_problems.append(line)
        run.reporter.warning(line, title="Rollback skipped")
        return None
    _done(run, undo.message, f"{b.subject} (to revision {undo.to_revision})")
    run.reporter.notice(
        f"{b.subject} was rolled back to revision {undo.to_revision}", title="Rolled back"
    )
    return Target(b.name, b.namespace, undo.generation, kind="Deployment")


def _done(run: Run, line: str, short: str) -> None:
    run.reporter.line(line)
    run.outcome.rolled_back.append(short)
