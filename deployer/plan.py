"""What a deploy's phases share about the manifests: the `Plan` preflight makes of them, with its
`Renders` (each object rendered once per image reference, and what the API server's dry run
accepted). What the run has done is `run.Outcome`."""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer import applyset, manifests, run_first, stamps
from deployer.envfile import secret_manifest
from deployer.settings import Settings

SECRET_CHECKSUM_ANNOTATION = "django-k8s-deploy/secrets-checksum"  # noqa: S105 - a name, not a secret


class Renders:
    """One deploy's rendered manifests, once per image reference, and the bodies the API server's
    dry run accepted. The dry run alongside the build renders them; the render phase takes the
    same documents when the reference is the same (always, but with pin-digest); apply dry-runs
    again only a body that changed since (its image pinned to the pushed digest). So each object
    is rendered once and dry-run once, and still every body applied was dry-run as it is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the cluster checks' thread renders first
        self._by_ref: dict[str, Rendered] = {}
        self._accepted: dict[tuple[str, ...], dict[str, Any]] = {}
        # kind/name of the objects an admission webhook refused before the push (it may look at
        # the registry): apply dry-runs them, the image pushed by then.
        self.after_push: list[str] = []

    def of(self, image_ref: str, render: Callable[[str], Rendered]) -> Rendered:
        """The documents rendered for `image_ref`, by `render` the first time it is asked."""
        with self._lock:
            if image_ref not in self._by_ref:
                self._by_ref[image_ref] = render(image_ref)
            return self._by_ref[image_ref]

    def accepted(self, bodies: list[dict[str, Any]]) -> None:
        """The dry run passed `bodies` (checked, or left to apply as only apply can check them)."""
        with self._lock:
            self._accepted.update((_identity(b), copy.deepcopy(b)) for b in bodies)

    def already_accepted(self, bodies: list[dict[str, Any]]) -> frozenset[int]:
        """The indices of `bodies` the dry run already passed exactly as they are."""
        with self._lock:
            return frozenset(
                i for i, b in enumerate(bodies) if self._accepted.get(_identity(b)) == b
            )


def _identity(body: dict[str, Any]) -> tuple[str, ...]:
    meta = body.get("metadata") or {}
    return tuple(
        str(x or "")
        for x in (body.get("apiVersion"), body.get("kind"), meta.get("namespace"), meta.get("name"))
    )


@dataclass
class Plan:
    """What preflight learned from the manifests (and the deploy's renders of them)."""

    sources: dict[Path, str]
    documents: list[manifests.Document]
    namespace: str
    targets: list[manifests.Document]
    deferred_refs: list[manifests.ConfigReference]
    run_first: list[str] = field(default_factory=list)  # base names of the run-first Jobs
    renders: Renders = field(default_factory=Renders, compare=False, repr=False)

    def rendered(self, settings: Settings, image_ref: str) -> Rendered:
        """The manifests rendered for `image_ref`, once per reference (see `Renders`)."""
        return self.renders.of(image_ref, lambda ref: render_documents(settings, self, ref))


@dataclass
class Rendered:
    """The documents as they will be applied (in apply order) and the run-first Jobs among them,
    already under their per-commit names; `notes` say what rendering stamped, for its log."""

    documents: list[manifests.Document]
    jobs: list[run_first.RunFirstJob]
    notes: list[str] = field(default_factory=list)
    after: list[run_first.RunFirstJob] = field(default_factory=list)  # the run-after Jobs

    def rolled_out(self) -> list[manifests.Document]:
        """What the rollouts apply: all but the run-first and run-after Jobs (and, with run-first
        Jobs, what was applied before them)."""
        ordered = [j.document for j in (*self.jobs, *self.after)]
        if self.jobs:
            _, rest = run_first.split(self.documents, self.jobs)
        else:
            rest = self.documents
        return [d for d in rest if not any(d is o for o in ordered)]


def render_documents(settings: Settings, plan: Plan, image_ref: str) -> Rendered:
    """Placeholder replaced, checksums and cause stamped, the Secret from the secrets input
    added, run-first Jobs renamed per commit; in apply order. With the reference preflight
    rendered, its parsed documents are copied rather than the manifests parsed again."""
    if image_ref == settings.image_ref:
        documents = [_copy_document(d) for d in plan.documents]
    else:
        documents = manifests.prepare(
            plan.sources,
            placeholder=settings.placeholder,
            image_ref=image_ref,
            repository=settings.image,
            namespace=settings.namespace,
            root=settings.workspace,
        ).documents
    notes: list[str] = []
    config_users = stamps.stamp_config_checksums(documents)
    if config_users:
        notes.append(
            "the ConfigMaps/Secrets of the manifests each workload uses: checksum on the pod "
            f"templates of {', '.join(config_users)}"
        )
    if settings.secrets:
        secret = secret_manifest(settings.secret_name, plan.namespace, settings.secrets)
        # Pods read a Secret at start: its checksum rolls exactly the workloads using it.
        users = stamps.stamp_checksum(
            documents,
            {("Secret", plan.namespace, settings.secret_name): secret},
            SECRET_CHECKSUM_ANNOTATION,
        )
        # Sorted with the rest: after config it may need, before the workloads that use it.
        documents.append(manifests.Document(path=Path("secrets"), line=1, body=secret))
        notes.append(
            f"secret/{settings.secret_name}: {len(settings.secrets)} key(s) from the secrets input"
            + (f"; its checksum is on the pod templates of {', '.join(users)}" if users else "")
        )
    cause = stamps.change_cause(settings.sha, settings.run_url)
    if stamps.stamp_change_cause(documents, cause):
        notes.append(f"change cause (kubectl rollout history): {cause}")
    first = run_first.select(documents, plan.run_first)
    jobs = run_first.plan(first, settings.sha)
    for job in jobs:
        notes.append(f"job/{job.base} runs first as job/{job.name} (one Job per commit)")
    after = run_first.plan(run_first.select_after(documents, first), settings.sha)
    for job in after:
        notes.append(
            f"job/{job.base} runs after the rollouts as job/{job.name} (one Job per commit)"
        )
    for d, label, image in manifests.images(documents):
        if image == image_ref:
            notes.append(f"{d.subject} {label}: {image}")
    if settings.prune:
        # After the checksums: joining the set rolls no pod. The Jobs have their own cleanup.
        own = {id(j.document) for j in (*jobs, *after)}
        set_id = applyset.applyset_id(applyset.parent_name(settings.image), plan.namespace)
        count = applyset.label_members((d.body for d in documents if id(d) not in own), set_id)
        notes.append(
            f"prune: {count} object(s) labelled {applyset.PART_OF_LABEL}={set_id} "
            f"(parent secret/{applyset.parent_name(settings.image)})"
        )
    return Rendered(manifests.apply_order(documents), jobs, notes, after)


def _copy_document(d: manifests.Document) -> manifests.Document:
    """A deep copy of a parsed document that still knows the line of each of its parts."""
    memo: dict[int, Any] = {}
    body = copy.deepcopy(d.body, memo)
    lines = {id(memo[part]): line for part, line in d.lines.items() if part in memo}
    return dataclasses.replace(d, body=body, lines=lines)
