"""Migrations first: the Jobs that must complete before anything else changes (pure planning).

Design (README "Migrations first"): **one Job per commit and spec.** A run-first Job named `migrate`
in the manifests is applied as `migrate-<sha8>-<spec5>`, where `<spec5>` hashes the rendered Job
spec. Why:

* A Job's pod template is immutable, so a new image can never be applied onto the old Job; a new
  name sidesteps that without deleting anything first (no race with the old pods, no lost logs).
* The name is the memory: a redeploy of the same commit finds its Job. Complete: skipped (the
  migration does not run twice) unless `rerun-first` asks. Failed: run again (re-running a failed
  deploy is asking). Still running (a concurrent or cancelled deploy): waited for, not doubled.
* A changed Job spec at the same commit (other args, a new env) gets a new name, so it runs.
* Old Jobs are labelled with their base name and cleaned up by the action: the newest
  `KEEP_JOBS` per base name stay (their logs with them), older ones are deleted with background
  propagation (never the API default, which orphans the pods). We do not use
  `ttlSecondsAfterFinished`: the Job vanishing would make the next deploy of that commit run it
  again (Argo CD's pitfall).

Marked either by the `run-first` input (Job names) or the annotation
`django-k8s-deploy/run-first: "true"` on the Job.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from deployer import manifests
from deployer.errors import InputError
from deployer.workloads import job_verdict

RUN_FIRST_ANNOTATION = "django-k8s-deploy/run-first"
BASE_NAME_LABEL = "django-k8s-deploy/run-first"
SHA_LABEL = "django-k8s-deploy/sha"
KEEP_JOBS = 3
_MAX_NAME = 63  # a Job's name becomes a label value of its pods


@dataclass(frozen=True)
class RunFirstJob:
    base: str  # the name in the manifests
    name: str  # the per-commit name applied
    namespace: str
    document: manifests.Document


Decision = Literal["run", "skip", "rerun", "attach"]


def _suggestion(missing: Sequence[str], held: list[str]) -> str:
    """Names that would work: the Jobs the manifests hold nearest to the ones asked for."""
    if not held:
        return "Add the Job to the manifests (kind: Job), or drop it from run-first."
    near: list[str] = []
    for name in missing:
        close = difflib.get_close_matches(name, held, n=1, cutoff=0.6)
        near += close or [h for h in held if name in h][:1]
    if near:
        return f"Did you mean {', '.join(dict.fromkeys(near))}? Name Jobs the manifests define."
    example = next((h for h in held if "migrate" in h), held[0])
    return f"Name Jobs defined in the manifests (kind: Job), e.g. {example}."


def select(
    documents: list[manifests.Document], wanted: Sequence[str], root: Any = None
) -> list[manifests.Document]:
    """The run-first Jobs: named in `wanted` (the input) or annotated. A name that is not a Job of
    the manifests is an input error, found before anything slow."""
    jobs = {d.name: d for d in documents if d.kind == "Job"}
    missing = [n for n in wanted if n not in jobs]
    if missing:
        raise InputError(
            f"Job {', '.join(missing)} is not in the manifests "
            f"(they hold: {', '.join(sorted(jobs)) or 'no Job'})",
            where="run-first",
            hint=_suggestion(missing, sorted(jobs)),
        )
    chosen = []
    for d in documents:
        annotations = (d.body.get("metadata") or {}).get("annotations") or {}
        marked = str(annotations.get(RUN_FIRST_ANNOTATION, "")).lower() == "true"
        if d.kind == "Job" and (d.name in wanted or marked):
            chosen.append(d)
    for d in chosen:
        ttl = (d.body.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is not None:
            raise InputError(
                f"job/{d.name} runs first but sets ttlSecondsAfterFinished: once deleted, the next "
                "deploy of the same commit would run it again",
                file=manifests.display_path(d.path, root),
                line=d.line,
                hint="Remove ttlSecondsAfterFinished; the action keeps the newest "
                f"{KEEP_JOBS} such Jobs and deletes older ones.",
            )
    return chosen


def plan(documents: list[manifests.Document], sha: str) -> list[RunFirstJob]:
    """Rename each run-first Job (in place) to its per-commit name and label it."""
    planned = []
    for d in documents:
        base = d.name
        spec_hash = hashlib.sha256(
            json.dumps(d.body.get("spec") or {}, sort_keys=True).encode()
        ).hexdigest()[:5]
        suffix = f"-{sha[:8]}-{spec_hash}"
        name = base[: _MAX_NAME - len(suffix)].rstrip("-.") + suffix
        metadata = d.body.setdefault("metadata", {})
        metadata["name"] = name
        labels = metadata.get("labels")
        if not isinstance(labels, dict):
            labels = metadata["labels"] = {}
        labels[BASE_NAME_LABEL] = base[:63].rstrip("-.")
        labels[SHA_LABEL] = sha[:40]
        planned.append(RunFirstJob(base, name, d.namespace, d))
    return planned


def decide(existing: Mapping[str, Any] | None, *, rerun: bool) -> tuple[Decision, str]:
    """What to do with a run-first Job given the one of that name in the cluster (or None)."""
    if existing is None:
        return "run", "runs first"
    verdict = job_verdict(existing)  # the same judge as when we wait for it
    if verdict.done and verdict.ok:
        if rerun:
            return "rerun", "completed before at this commit; running it again (rerun-first)"
        return "skip", "already completed at this commit: skipped (rerun-first: true runs it again)"
    if verdict.done:
        reason = (verdict.reason or "Failed")[:100]
        return "rerun", f"failed before at this commit ({reason}); running it again"
    if rerun:
        return "rerun", "still running from an earlier deploy; replaced (rerun-first)"
    return "attach", "still running from an earlier deploy of this commit: waiting for it"


def to_clean_up(
    jobs: Sequence[Mapping[str, Any]], keep: int = KEEP_JOBS, current: Collection[str] = ()
) -> list[str]:
    """Names of run-first Jobs to delete: per base name, all but the `keep` newest. The Jobs of
    this deploy (`current`) are the newest whatever their timestamps say (those have one-second
    resolution: older Jobs made in the same second would otherwise sort either way), and Jobs
    still running are never deleted."""
    by_base: dict[str, list[Mapping[str, Any]]] = {}
    for job in jobs:
        labels = (job.get("metadata") or {}).get("labels") or {}
        base = labels.get(BASE_NAME_LABEL)
        if base:
            by_base.setdefault(str(base), []).append(job)
    doomed = []
    for group in by_base.values():
        group.sort(
            key=lambda j: (
                _name_of(j) in current,
                str((j.get("metadata") or {}).get("creationTimestamp") or ""),
                _name_of(j),
            ),
            reverse=True,
        )
        for job in group[keep:]:
            if (job.get("status") or {}).get("active") or _name_of(job) in current:
                continue
            doomed.append(_name_of(job))
    return sorted(doomed)


def _name_of(job: Mapping[str, Any]) -> str:
    return str((job.get("metadata") or {}).get("name") or "")


def split(
    documents: list[manifests.Document], jobs: Sequence[RunFirstJob]
) -> tuple[list[manifests.Document], list[manifests.Document]]:
    """(applied before the run-first Jobs complete, applied after). Before: what the Jobs may
    need and that changes no running pod by itself (namespaces, RBAC, ConfigMaps, Secrets,
    volumes claims, Services), then the Jobs. After: every other workload and what routes or
    scales them. Pods read config only at start, so nothing running changes before the Jobs end."""
    ids = {id(j.document) for j in jobs}
    before: list[manifests.Document] = []
    after: list[manifests.Document] = []
    for d in manifests.apply_order(documents):
        if id(d) in ids:
            continue
        (before if d.kind in manifests.APPLIED_BEFORE_WORKLOADS else after).append(d)
    return before + [j.document for j in jobs], after
