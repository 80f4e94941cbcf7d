"""A Deployment's revision history, and the plan to go back one revision, as pure functions.

`kubectl rollout undo` does it client-side: find the ReplicaSet with the second-highest
revision, copy its pod template (minus the pod-template-hash label) and annotations into the
Deployment with a JSON patch. `plan_rollback` decides that from plain objects; `kube` sends it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deployer.objects import controller_uid
from deployer.status import REVISION_ANNOTATION, Obj, revision

# kubectl's annotationsToSkip (kubectl/pkg/polymorphichelpers/rollback.go): kept from the
# Deployment, never copied from the ReplicaSet we roll back to.
KEEP_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


@dataclass(frozen=True)
class RollbackPlan:
    """`patch` is the JSON patch to send, or None when there is nothing to do (`message` says
    why); `message` otherwise describes the change for after it is made."""

    from_revision: str | None
    to_revision: str | None
    patch: list[dict[str, Any]] | None
    message: str


def plan_rollback(
    deployment: Obj | None,
    replicasets: Sequence[Obj],
    name: str,
    *,
    to_revision: str | None = None,
) -> RollbackPlan:
    """The JSON patch that returns `deployment` to its previous revision (or to `to_revision`,
    `kubectl rollout undo --to-revision`), as kubectl would."""
    subject = f"deployment/{name}"
    if deployment is None:
        return RollbackPlan(None, None, None, f"{subject} not found")
    spec = deployment.get("spec") or {}
    if spec.get("paused"):
        return RollbackPlan(None, None, None, f"{subject} is paused; resume it before rolling back")
    current = revision(deployment)
    history = owned_revisions(deployment, replicasets)
    if to_revision is not None:
        wanted = [rs for rs in history if revision(rs) == to_revision]
        if not wanted:
            return RollbackPlan(
                current, None, None, f"{subject}: revision {to_revision} is no longer kept"
            )
        target = wanted[0]
    elif len(history) < 2:
        return RollbackPlan(current, None, None, f"{subject}: no previous revision to roll back to")
    else:
        target = history[1]
    to_revision = revision(target)
    template = copy.deepcopy((target.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop("pod-template-hash", None)
    if template == spec.get("template"):
        return RollbackPlan(
            current,
            to_revision,
            None,
            f"{subject}: already runs the template of revision {to_revision}",
        )
    old_annotations = (deployment.get("metadata") or {}).get("annotations") or {}
    annotations = {k: v for k, v in old_annotations.items() if k in KEEP_ANNOTATIONS}
    for key, value in ((target.get("metadata") or {}).get("annotations") or {}).items():
        if key not in KEEP_ANNOTATIONS:
            annotations[key] = value
    patch = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    return RollbackPlan(
        current,
        to_revision,
        patch,
        f"{subject}: rolled back from revision {current} to revision {to_revision}",
    )


def owned_revisions(deployment: Obj, replicasets: Sequence[Obj]) -> list[Obj]:
    """The Deployment's own ReplicaSets that carry a revision, newest first."""
    uid = (deployment.get("metadata") or {}).get("uid")
    owned = [rs for rs in replicasets if controller_uid(rs) == uid and revision(rs) is not None]
    return sorted(owned, key=lambda rs: int(revision(rs) or 0), reverse=True)
