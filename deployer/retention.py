"""Registry retention, as plain logic: which tags of the deployed repository stay and which go.

`registry-retention: N` keeps, in the image's DOCR repository,
- the N newest commit tags (tags of the form the deploy pushes: a full commit SHA),
- every tag that a workload in the target namespace runs, or whose digest one runs (pod specs of
  Pods, ReplicaSets — a Deployment's history, what a rollback returns to —, Deployments,
  StatefulSets, DaemonSets, Jobs, CronJobs and ControllerRevisions, and the digests the pods'
  statuses report), so neither the running image nor a rollback's is ever deleted,
- the build cache tag;
and deletes the other commit tags. Tags of another form (`latest`, `v1.2`) are never deleted:
they were not pushed by the deploy. The pipeline reads the cluster and the registry; no I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployer.digitalocean.answers import RegistryTag

COMMIT_TAG = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

# What is read from the cluster: every kind that holds a pod template or runs pods.
SOURCES: tuple[tuple[str, str], ...] = (
    ("v1", "Pod"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "ControllerRevision"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
)


@dataclass(frozen=True)
class InUse:
    """What the namespace runs from one repository: tags and digests."""

    tags: frozenset[str] = frozenset()
    digests: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Decision:
    keep: tuple[tuple[str, str], ...]  # (tag, why), newest first
    delete: tuple[str, ...]  # oldest last
    untouched: tuple[str, ...]  # tags not of the commit form: never deleted


def _pod_spec(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    kind = obj.get("kind")
    spec = obj.get("spec")
    if kind == "ControllerRevision":
        data = obj.get("data")
        spec = data.get("spec") if isinstance(data, dict) else None
        kind = "template-holder"
    if not isinstance(spec, dict):
        return None
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        job = spec.get("jobTemplate")
        spec = job.get("spec") if isinstance(job, dict) else None
        if not isinstance(spec, dict):
            return None
    template = spec.get("template")
    pod = template.get("spec") if isinstance(template, dict) else None
    return pod if isinstance(pod, dict) else None


def images_of(obj: Mapping[str, Any]) -> list[str]:
    """Every image an object's pod spec names, and every image id its pod status reports."""
    images: list[str] = []
    spec = _pod_spec(obj)
    if spec is not None:
        for key in ("initContainers", "containers", "ephemeralContainers"):
            for container in spec.get(key) or ():
                if isinstance(container, dict) and isinstance(container.get("image"), str):
                    images.append(container["image"])
    status = obj.get("status") if obj.get("kind") == "Pod" else None
    if isinstance(status, dict):
        for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            for container in status.get(key) or ():
                if isinstance(container, dict):
                    for field in ("image", "imageID"):
                        if isinstance(container.get(field), str):
                            images.append(container[field])
    return images


def in_use(objects: Iterable[Mapping[str, Any]], repository: str) -> InUse:
    """The tags and digests of `repository` (host/registry/name) the objects run."""
    tags: set[str] = set()
    digests: set[str] = set()
    for obj in objects:
        for written in images_of(obj):
            plain = re.sub(r"^[a-z-]+://", "", written)  # docker-pullable://, containerd ids
            name, _, digest = plain.partition("@")
            base, tag = name, ""
            slash = name.rfind("/")
            colon = name.rfind(":")
            if colon > slash:
                base, tag = name[:colon], name[colon + 1 :]
            if base != repository:
                continue
            if tag:
                tags.add(tag)
            if _DIGEST.match(digest):
                digests.add(digest)
    return InUse(frozenset(tags), frozenset(digests))


def decide(
    tags: Sequence[RegistryTag], keep_newest: int, running: InUse, cache_tag: str = ""
) -> Decision:
    """Which tags stay (and why) and which commit tags go. A tag without a date counts as new:
    what cannot be ordered is not deleted."""
    ordered = sorted(
        tags,
        key=lambda t: (
            t.updated_at is not None,
            -t.updated_at.timestamp() if t.updated_at else 0.0,
            t.tag,
        ),
    )
    keep: list[tuple[str, str]] = []
    delete: list[str] = []
    untouched: list[str] = []
    newest = 0
    for tag in ordered:
        if not COMMIT_TAG.match(tag.tag):
            if tag.tag == cache_tag:
                keep.append((tag.tag, "build cache"))
            else:
                untouched.append(tag.tag)
            continue
        why = []
        if newest < keep_newest:
            newest += 1
            why.append(f"newest {newest}")
        if tag.tag in running.tags:
            why.append("running")
        elif tag.digest and tag.digest in running.digests:
            why.append("its digest is running")
        if tag.tag == cache_tag:
            why.append("build cache")
        if why:
            keep.append((tag.tag, ", ".join(why)))
        else:
            delete.append(tag.tag)
    return Decision(tuple(keep), tuple(delete), tuple(untouched))


def docr_repository(image: str) -> tuple[str, str]:
    """`host/<registry>/<repository...>` -> (registry, repository)."""
    _, _, rest = image.partition("/")
    registry, _, repository = rest.partition("/")
    return registry, repository
