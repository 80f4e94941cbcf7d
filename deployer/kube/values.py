"""The plain values the kube package hands back (no client types): what was applied, what a
dry run would make of an object, what a rollback did, one watch event. Importing them does not
import the `kubernetes` client, so the phases can name them before the cluster is needed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deployer.objects import subject

FIELD_MANAGER = "django-k8s-deploy"
ROLLBACK_FIELD_MANAGER = "django-k8s-deploy-rollback"


@dataclass(frozen=True)
class Applied:
    kind: str
    name: str
    namespace: str | None
    generation: int | None
    uid: str

    @property
    def subject(self) -> str:
        return subject(self.kind, self.name)


@dataclass(frozen=True)
class Planned:
    """A dry-run apply's answer: the object as it is (None: absent) and as it would be."""

    live: dict[str, Any] | None
    planned: dict[str, Any]
    sent: dict[str, Any] | None = None  # what was sent: a new object's fields without defaults


@dataclass(frozen=True)
class Rollback:
    """What `undo_rollout` did: `done` False means nothing was changed, `message` says why."""

    deployment: str
    namespace: str
    done: bool
    from_revision: str | None
    to_revision: str | None
    message: str
    generation: int | None = None  # the Deployment's generation after the patch (to watch)


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]

    @property
    def resource_version(self) -> str | None:
        rv = (self.object.get("metadata") or {}).get("resourceVersion")
        return str(rv) if rv is not None else None
