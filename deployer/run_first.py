"""Migrations first: the Jobs that must complete before anything else changes (pure planning).

Design (docs/behaviour.md, "Migrations first"): **one Job per commit and spec.** A run-first Job named `migrate`
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
`django-k8s-deploy/run-first: "true"` on the Job. Jobs annotated `django-k8s-deploy/run-after:
"true"` (contract migrations, cache warm-up, one-off `manage.py` commands) are planned the same
way and run once every rollout is green.

Their time: `run-first-timeout`, else each Job's own `activeDeadlineSeconds` (and a little
longer, so the Job controller's own verdict arrives first), else the deploy's `timeout`; the
rollouts' timeout starts after them.
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
RUN_AFTER_ANNOTATION = "django-k8s-deploy/run-after"
# Past a Job's activeDeadlineSeconds, the Job controller marks it Failed (DeadlineExceeded) within
# moments; waiting this much longer lets that verdict, with its reason, be the one reported.
DEADLINE_SLACK_S = 30.0
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
    chosen = [
        d
        for d in documents
        if d.kind == "Job" and (d.name in wanted or _marked(d, RUN_FIRST_ANNOTATION))
    ]
    _refuse_ttl(chosen, "runs first", root)
    return chosen


def select_after(
    documents: list[manifests.Document], first: Sequence[manifests.Document], root: Any = None
) -> list[manifests.Document]:
    """The run-after Jobs: annotated `django-k8s-deploy/run-after: "true"`. One also chosen to run
    first (`first`) is an input error at its file:line: it cannot run both before and after."""
    chosen = [d for d in documents if d.kind == "Job" and _marked(d, RUN_AFTER_ANNOTATION)]
    for d in chosen:
        if any(d is f for f in first):
            raise InputError(
                f"job/{d.name} is marked to run both first and after (run-first and "
                f"{RUN_AFTER_ANNOTATION})",
                file=manifests.display_path(d.path, root),
                line=d.line,
                hint="Run-first Jobs complete before any workload changes (migrations); run-after "
                "Jobs run once every rollout is green (contract migrations, cache warm-up). "
                "Keep one of the two.",
            )
    _refuse_ttl(chosen, "runs after the rollouts", root)
    return chosen


def _marked(d: manifests.Document, annotation: str) -> bool:
    annotations = (d.body.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(annotation, "")).lower() == "true"


def _refuse_ttl(chosen: list[manifests.Document], what: str, root: Any) -> None:
    for d in chosen:
        ttl = (d.body.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is not None:
            raise InputError(
                f"job/{d.name} {what} but sets ttlSecondsAfterFinished: once deleted, the next "
                "deploy of the same commit would run it again",
                file=manifests.display_path(d.path, root),
                line=d.line,
                hint="Remove ttlSecondsAfterFinished; the action keeps the newest "
                f"{KEEP_JOBS} such Jobs and deletes older ones.",
            )


def time_allowed(jobs: Sequence[RunFirstJob], given_s: float | None, timeout_s: float) -> float:
    """How long to wait for `jobs`: `given_s` (the input) when set; else the longest any of them
    needs, its own activeDeadlineSeconds (and DEADLINE_SLACK_S) where it sets one, else
    `timeout_s`."""
    if given_s is not None:
        return given_s
    allowed: list[float] = []
    for job in jobs:
        deadline = (job.document.body.get("spec") or {}).get("activeDeadlineSeconds")
        if isinstance(deadline, int) and not isinstance(deadline, bool) and deadline > 0:
            allowed.append(deadline + DEADLINE_SLACK_S)
        else:
            allowed.append(timeout_s)
    return max(allowed, default=timeout_s)


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
