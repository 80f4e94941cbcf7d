"""Pure verdicts for every workload kind the action waits on, behind one table.

`status.py` judges Deployments and single pods; this module adds StatefulSets, DaemonSets and Jobs
with kubectl's meaning of done, and says which pods of each belong to the revision being rolled
out (`new_revision_pods`: the watcher judges those, the diagnosis shows those). A new kind is one
verdict function, one pod selector and one row of `KINDS`; the watcher asks the table.

kubectl's rules (kubectl/pkg/polymorphichelpers/rollout_status.go; `kubectl wait` for Jobs):

* StatefulSet: only `RollingUpdate` can be waited for; then generation observed, every replica
  ready, and either the partition's share updated (a partition of 0, the API's default, means
  every pod) or, with no `rollingUpdate` at all, `updateRevision == currentRevision`.
* DaemonSet: only `RollingUpdate`; then generation observed, every desired pod updated, then
  every desired pod available.
* Job: there is no rollout status; `kubectl wait --for=condition=complete` waits for Complete.
  We are green on Complete=True, as kubectl; red on Failed=True, and on FailureTarget=True
  (Kubernetes >= 1.31 sets it first and Failed only once every pod has ended), where kubectl
  would wait for its timeout.

kubectl refuses to wait for an OnDelete StatefulSet or DaemonSet ("rollout status is only
available for RollingUpdate strategy type"); krane passes them silently. We say plainly that they
were applied and not waited for (`Verdict.waited` False): their pods change only when deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployer import timestamps
from deployer.objects import (
    containers,
    controller_uid,
    get,
    labels,
    mapping,
    name,
    one_line,
    subject,
    true_condition,
)
from deployer.results import PodProblem
from deployer.status import (
    PULL_REFUSAL_GRACE_S,
    Collection,
    Verdict,
    deployment_verdict,
    generation_observed,
    new_replicaset,
    pod_ended,
    pod_verdict,
    pod_waiting_summary,
    pods_of,
    pull_refusal_pending,
)

Obj = Mapping[str, Any]

JOB_OWNER_UID_LABEL = "batch.kubernetes.io/controller-uid"
_DAEMONSET_GENERATION_LABEL = "pod-template-generation"
# The API server bumps this only when the pod template changes, and labels new pods with it;
# metadata.generation also moves for spec changes outside the template (minReadySeconds,
# updateStrategy), which start no new pods.
_DAEMONSET_TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"
_REVISION_HASH_LABEL = "controller-revision-hash"

CANNOT_WAIT = "rollout status is only available for RollingUpdate strategy type"


def statefulset_verdict(sts: Obj, applied_generation: int | None = None) -> Verdict:
    subject = f"statefulset/{name(sts)}"
    spec = sts.get("spec") or {}
    status = sts.get("status") or {}
    strategy = (spec.get("updateStrategy") or {}).get("type") or "RollingUpdate"
    if strategy != "RollingUpdate":
        return _not_waited(subject, strategy)
    generation = int(get(sts, "metadata", "generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    wanted = max(generation, applied_generation or 0)
    if observed == 0 or observed < wanted:
        return Verdict(
            False,
            False,
            f"{subject}: waiting for the statefulset controller to observe generation {wanted} "
            f"(observed {observed})",
        )
    replicas = _replicas(spec)
    ready = int(status.get("readyReplicas") or 0)
    if ready < replicas:
        return Verdict(False, False, f"{subject}: {ready} of {replicas} pods are ready")
    rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate")
    # As kubectl: a partition (the API server defaults it to 0) is judged by the updated count.
    if isinstance(rolling, Mapping) and rolling.get("partition") is not None:
        partition = int(rolling.get("partition") or 0)
        updated = int(status.get("updatedReplicas") or 0)
        want = max(replicas - partition, 0)
        if updated < want:
            kept = (
                f" (partition {partition} keeps the other {min(partition, replicas)} at the old "
                "revision)"
                if partition
                else ""
            )
            return Verdict(False, False, f"{subject}: {updated} of {want} pods updated{kept}")
        if partition == 0:
            return Verdict(
                True, True, f"{subject}: rolling update complete: {updated} pods updated"
            )
        return Verdict(
            True,
            True,
            f"{subject}: partitioned rollout complete: {updated} of {replicas} pods updated, "
            f"partition {partition} keeps the rest at the old revision",
        )
    current = status.get("currentRevision")
    update = status.get("updateRevision")
    if current != update:
        updated = int(status.get("updatedReplicas") or 0)
        return Verdict(
            False,
            False,
            f"{subject}: waiting for the rolling update to complete: {updated} of {replicas} pods "
            f"at revision {update}",
        )
    return Verdict(
        True, True, f"{subject}: rolling update complete: {replicas} pods at revision {update}"
    )


def daemonset_verdict(ds: Obj, applied_generation: int | None = None) -> Verdict:
    subject = f"daemonset/{name(ds)}"
    spec = ds.get("spec") or {}
    status = ds.get("status") or {}
    strategy = (spec.get("updateStrategy") or {}).get("type") or "RollingUpdate"
    if strategy != "RollingUpdate":
        return _not_waited(subject, strategy)
    if not generation_observed(ds, applied_generation):
        generation = max(int(get(ds, "metadata", "generation") or 0), applied_generation or 0)
        observed = int(status.get("observedGeneration") or 0)
        return Verdict(
            False,
            False,
            f"{subject}: waiting for the daemonset controller to observe generation {generation} "
            f"(observed {observed})",
        )
    desired = int(status.get("desiredNumberScheduled") or 0)
    updated = int(status.get("updatedNumberScheduled") or 0)
    available = int(status.get("numberAvailable") or 0)
    if updated < desired:
        return Verdict(
            False, False, f"{subject}: {updated} out of {desired} new pods have been updated"
        )
    if available < desired:
        return Verdict(
            False, False, f"{subject}: {available} of {desired} updated pods are available"
        )
    return Verdict(True, True, f"{subject}: successfully rolled out ({desired} pods)")


def job_verdict(job: Obj, applied_generation: int | None = None) -> Verdict:
    """`applied_generation` is ignored: a Job's template cannot change, so there is nothing older
    to confuse it with (a changed Job is a new Job, see docs/behaviour.md, "Migrations first")."""
    del applied_generation
    subject = f"job/{name(job)}"
    spec = mapping(job, "spec") or {}
    status = mapping(job, "status") or {}
    for kind in ("Failed", "FailureTarget"):
        cond = true_condition(status, kind)
        if cond is not None:
            reason = str(cond.get("reason") or kind)
            message = one_line(str(cond.get("message") or ""))
            return Verdict(
                True,
                False,
                f"{subject}: failed: {reason}"
                + (f" ({message})" if message else "")
                + _counts(spec, status, prefix="; "),
                reason=reason,
            )
    if true_condition(status, "Complete") is not None:
        return Verdict(True, True, f"{subject}: complete" + _counts(spec, status, prefix=" ("))
    if spec.get("suspend"):
        return Verdict(False, False, f"{subject}: suspended; it runs only once resumed")
    return Verdict(False, False, f"{subject}: running" + _counts(spec, status, prefix=" ("))


# -- which pods belong to the revision being rolled out --------------------------------------


def deployment_pods(deployment: Obj, replicasets: Sequence[Obj], pods: Sequence[Obj]) -> list[Obj]:
    """Pods of the new ReplicaSet (old ones are on their way out and prove nothing)."""
    return pods_of(new_replicaset(deployment, replicasets), pods)


def statefulset_pods(sts: Obj, replicasets: Sequence[Obj], pods: Sequence[Obj]) -> list[Obj]:
    """Pods at the update revision (a partition keeps older ones on purpose)."""
    del replicasets
    uid = get(sts, "metadata", "uid")
    revision = get(sts, "status", "updateRevision")
    return [
        p
        for p in pods
        if controller_uid(p) == uid
        and (revision is None or labels(p).get(_REVISION_HASH_LABEL) == revision)
    ]


def daemonset_pods(ds: Obj, replicasets: Sequence[Obj], pods: Sequence[Obj]) -> list[Obj]:
    """Pods of the current template generation (the controller labels each pod with it)."""
    del replicasets
    uid = get(ds, "metadata", "uid")
    template_generation = get(ds, "metadata", "annotations", _DAEMONSET_TEMPLATE_GENERATION)
    generation = str(template_generation or get(ds, "metadata", "generation") or "")
    return [
        p
        for p in pods
        if controller_uid(p) == uid
        and labels(p).get(_DAEMONSET_GENERATION_LABEL, generation) == generation
    ]


def job_pods(job: Obj, replicasets: Sequence[Obj], pods: Sequence[Obj]) -> list[Obj]:
    """Every pod of the Job: its template cannot change, so it has one revision."""
    del replicasets
    uid = get(job, "metadata", "uid")
    return [p for p in pods if controller_uid(p) == uid]


def job_pod_running(pod: Obj) -> bool:
    """Pods still running or waiting. Pods that ended are the Job controller's to count against
    backoffLimit (a retried Job may still complete); their exit shows in `job_failure`."""
    return not pod_ended(pod)


def _every_pod(pod: Obj) -> bool:
    del pod
    return True


def job_failure(job: Obj, pods: Sequence[Obj]) -> PodProblem | None:
    """The most recent failed pod of `job` and how it ended, for the red message and diagnosis."""
    uid = get(job, "metadata", "uid")
    failed = [p for p in pods if controller_uid(p) == uid and get(p, "status", "phase") == "Failed"]
    if not failed:
        return None
    pod = max(failed, key=lambda p: str(get(p, "metadata", "creationTimestamp") or ""))
    for c in containers(pod):
        ended = c.terminated() or {}
        code = ended.get("exitCode")
        if code:
            reason = str(ended.get("reason") or "no reason")
            return PodProblem(
                c.pod,
                c.name,
                c.init,
                "JobPodFailed",
                reason,
                int(code),
                f"{c.label} exited {code} ({reason})",
            )
    reason = str(get(pod, "status", "reason") or "Failed")
    return PodProblem(name(pod), None, False, "JobPodFailed", reason, None, f"pod failed: {reason}")


# -- the table -------------------------------------------------------------------------------

VerdictFn = Callable[[Obj, "int | None"], Verdict]
PodsFn = Callable[[Obj, Sequence[Obj], Sequence[Obj]], list[Obj]]


@dataclass(frozen=True)
class Kind:
    """How the action waits on one workload kind, and where the API serves it (the watcher
    lists and watches that collection; nothing else needs to know the kind)."""

    kind: str
    verdict: VerdictFn
    pods: PodsFn  # the pods of the revision being rolled out (see `new_revision_pods`)
    api_version: str
    plural: str
    judged: Callable[[Obj], bool] = _every_pod  # which of those the fail-fast table judges
    via_replicasets: bool = False  # its pods belong to ReplicaSets it owns (`pods` reads them)
    # Its pods' revision labels describe the spec the controller last observed: they are only
    # this rollout's once it observed the applied generation. A Job's template cannot change.
    pods_follow_generation: bool = True
    # A red verdict's cause among the pods (a Job's last failed pod), for the message and the
    # diagnosis; None: the kind's own message says it all.
    failure: Callable[[Obj, Sequence[Obj]], PodProblem | None] | None = None
    # Held to the settle window once done (green means it stays up); a Job finishes instead.
    settles: bool = True

    @property
    def collection(self) -> Collection:
        return Collection(self.kind, self.api_version, self.plural)


KINDS: dict[str, Kind] = {
    k.kind: k
    for k in (
        Kind(
            "Deployment",
            deployment_verdict,
            deployment_pods,
            "apps/v1",
            "deployments",
            via_replicasets=True,
        ),
        Kind("StatefulSet", statefulset_verdict, statefulset_pods, "apps/v1", "statefulsets"),
        Kind("DaemonSet", daemonset_verdict, daemonset_pods, "apps/v1", "daemonsets"),
        Kind(
            "Job",
            job_verdict,
            job_pods,
            "batch/v1",
            "jobs",
            judged=job_pod_running,
            pods_follow_generation=False,
            failure=job_failure,
            settles=False,
        ),
    )
}
"""Kinds waited on. CronJobs are applied and not waited on: nothing runs until the schedule."""

NOT_WAITED_KINDS = frozenset({"CronJob"})


def new_revision_pods(
    obj: Obj, replicasets: Sequence[Obj], pods: Sequence[Obj], applied_generation: int | None = None
) -> list[Obj]:
    """The pods of the revision this rollout brings, by the kind's rule in `KINDS`: the watcher
    judges these and the diagnosis shows them, so neither ever speaks for an older revision.

    None before the controller observed the generation (`applied_generation`, else the object's
    own): until then its status and its pods' revision labels still describe the older spec.
    A Job has one revision, so all its pods are its.
    """
    kind = KINDS.get(str(obj.get("kind") or ""))
    if kind is None:
        return []
    if kind.pods_follow_generation and not generation_observed(obj, applied_generation):
        return []
    return kind.pods(obj, replicasets, pods)


def workload_verdict(
    obj: Obj,
    replicasets: Sequence[Obj],
    pods: Sequence[Obj],
    applied_generation: int | None = None,
    *,
    restart_tolerance: int = 2,
    unschedulable_for: Callable[[Obj], float] = lambda _pod: 0.0,
    unschedulable_grace_s: float = 10.0,
    pull_failing_for: Callable[[Obj], Mapping[str, float]] = lambda _pod: {},
    pull_refusal_grace_s: float = PULL_REFUSAL_GRACE_S,
    settle_s: float = 0.0,
    up_for: Callable[[Obj, Obj], float | None] | None = None,
) -> tuple[Verdict, PodProblem | None, list[Obj]]:
    """The kind's verdict, else the first doomed pod's red verdict; plus the pods judged.

    Pods are judged only once the controller observed our generation (before that they belong to
    an older spec). A red Job verdict names its last failed pod's exit.

    With `settle_s` > 0, a rollout kubectl calls done is green only once every app container of
    its new-revision pods has been running `settle_s` since its latest start (`up_for`, measured
    by the watcher: `ContainerClock`), and the fail-fast table keeps judging those pods meanwhile
    (issue 17: a container without a readiness probe is Ready the moment it starts, so kubectl's
    "done" can come an instant before it crashes). Jobs are not settled: they finish.
    """
    kind = str(obj.get("kind") or "")
    spec = KINDS[kind]
    verdict = spec.verdict(obj, applied_generation)
    about = subject(kind, name(obj))
    settling = verdict.done and verdict.ok and verdict.waited and settle_s > 0 and spec.settles
    if verdict.done and not settling:
        if not verdict.ok and spec.failure is not None:
            failure = spec.failure(obj, pods)
            if failure is not None:
                last = f"{verdict.message}; last failed pod {failure.pod}: {failure.detail}"
                return Verdict(True, False, last), failure, []
        return verdict, None, []
    mine = [
        p for p in new_revision_pods(obj, replicasets, pods, applied_generation) if spec.judged(p)
    ]
    pending = None  # the first pod whose refused pull awaits the kubelet's retry
    for pod in mine:
        failing = pull_failing_for(pod)
        problem = pod_verdict(
            pod,
            restart_tolerance=restart_tolerance,
            unschedulable_for_s=unschedulable_for(pod),
            unschedulable_grace_s=unschedulable_grace_s,
            pull_failing_for=failing,
            pull_refusal_grace_s=pull_refusal_grace_s,
        )
        if problem is not None:
            return Verdict(True, False, problem.message(about)), problem, mine
        if pending is None and not verdict.done:
            waits = pull_refusal_pending(pod, failing, pull_refusal_grace_s)
            pending = f"pod {name(pod)}: {waits}" if waits else None
    if pending is not None:
        return Verdict(False, False, f"{verdict.message}; {pending}"), None, mine
    if settling:
        unsettled = settle_verdict(about, mine, settle_s, up_for or (lambda _p, _c: None))
        if unsettled is None and len(mine) < _expected_pods(obj):
            # kubectl's counts come from the controller; our pod stream may lag behind them.
            unsettled = Verdict(
                False, False, f"{about}: rolled out, settling: waiting to see its new pods"
            )
        if unsettled is not None:
            return unsettled, None, mine
    return verdict, None, mine


def _expected_pods(obj: Obj) -> int:
    """How many new-revision pods a done rollout has (what settling must have seen)."""
    if obj.get("kind") == "DaemonSet":
        return int(get(obj, "status", "updatedNumberScheduled") or 0)
    if obj.get("kind") == "StatefulSet":
        return int(get(obj, "status", "updatedReplicas") or 0)
    return int(get(obj, "status", "updatedReplicas") or 0)


def settle_verdict(
    subject: str,
    pods: Sequence[Obj],
    settle_s: float,
    up_for: Callable[[Obj, Obj], float | None],
) -> Verdict | None:
    """None when every app container of `pods` has been up `settle_s` since its latest start;
    else a not-done verdict saying the rollout is settling (and why, when a container is not
    running). The message changes only when the reason does, so progress is not a countdown.

    A container that ends within the window starts it again at its next start: when its
    restarts reach the restart tolerance the fail-fast table calls it a crash loop (red, with
    its exit code); below that, it has its window to prove it recovered (a worker that crashed
    once while its database started still goes green).
    """
    settled = True
    for pod in pods:
        if get(pod, "metadata", "deletionTimestamp"):
            continue
        statuses = {c.name: c.status for c in containers(pod) if not c.init}
        for container in get(pod, "spec", "containers") or []:
            cname = str(container.get("name"))
            cs = statuses.get(cname)
            up = up_for(pod, cs) if cs is not None else None
            if up is None:
                return Verdict(
                    False,
                    False,
                    f"{subject}: rolled out, settling ({settle_s:g}s): pod {name(pod)}: "
                    f"{_not_running(pod, cname, cs)}",
                )
            settled = settled and up >= settle_s
    if settled:
        return None
    return Verdict(
        False,
        False,
        f"{subject}: rolled out, settling: green once its new containers have been up "
        f"{settle_s:g}s",
    )


def _not_running(pod: Obj, name: str, cs: Obj | None) -> str:
    ended = mapping(cs or {}, "state", "terminated")
    count = int((cs or {}).get("restartCount") or 0)
    restarts = f", restarted {count} times" if count else ""
    if ended is not None:
        return (
            f"container `{name}` exited {ended.get('exitCode')} "
            f"({ended.get('reason') or 'no reason'}){restarts}"
        )
    why = pod_waiting_summary(pod) or f"container `{name}` is not running"
    return why + restarts


class ContainerClock:
    """How long each app container has been running since its latest start, as a lower bound
    the watcher can trust whatever the clocks say. Fed times, never reads one (tests pass a
    fake clock).

    Three measures, the largest wins:
    * local: since the watcher first saw this run (pod uid, container, restartCount, startedAt)
      running. Always true, and the only measure for a run already going when we first looked.
    * node, compared with care: the kubelet's `startedAt` is on the node's clock, which may be
      anything against the runner's. A run the watcher saw start gives a bound on the node's
      offset (the run started before we saw it, so offset >= startedAt - seen_at; `startedAt`
      is truncated to the second, hence the 1 s). With the best bound of that node, any run's
      age is at least now + offset_bound - startedAt - 1. Skew never lengthens it: a wrong
      clock only costs waiting, it cannot call an unsettled container settled. So pods up
      since before the deploy pay nothing once a new container on their node was seen starting.
    * status written: the pod's status as read was last changed at the latest `time` of its
      managedFields entries for the status subresource (the API server's clock, truncated to
      the second). The running state we read was written no later than that, and the container
      started before it was reported, so it has been up at least server_now - (time + 1), with
      server_now bounded below by the API server's `Date` (`server_ahead`, None when there is
      none). Both times are the API server's: the node's clock plays no part. So a rollout
      whose pods were up long before (`deployer wait` on a finished Deployment, a deploy that
      changes no pod) pays nothing at all.
    """

    def __init__(
        self, epoch: float = 0.0, server_ahead: Callable[[], float | None] = lambda: None
    ) -> None:
        self._epoch = epoch  # added to the `now` passed in, to get the runner's wall clock
        self._server_ahead = server_ahead
        self._seen: dict[tuple[str, str, int, str], float] = {}
        self._offset: dict[str, float] = {}  # node -> lower bound of (node clock - wall clock)

    def up_for(self, pod: Obj, cs: Obj, now: float) -> float | None:
        started_at = get(cs, "state", "running", "startedAt")
        if get(cs, "state", "running") is None:
            return None
        wall = now + self._epoch
        uid = str(get(pod, "metadata", "uid") or name(pod))
        key = (uid, str(cs.get("name")), int(cs.get("restartCount") or 0), str(started_at))
        node = str(get(pod, "spec", "nodeName") or "")
        started = timestamps.parse(started_at)
        if key not in self._seen:
            self._seen[key] = wall
            if started is not None:
                bound = started.timestamp() - wall
                self._offset[node] = max(self._offset.get(node, bound), bound)
        measures = [wall - self._seen[key]]
        if started is not None and node in self._offset:
            measures.append(wall + self._offset[node] - started.timestamp() - 1.0)
        written, ahead = _status_written(pod), self._server_ahead()
        if written is not None and ahead is not None:
            measures.append(wall + ahead - written - 1.0)
        return max(measures)


def _status_written(pod: Obj) -> float | None:
    """When the pod's status was last changed, on the API server's clock (None if unknown)."""
    times = [
        timestamps.parse(entry.get("time"))
        for entry in get(pod, "metadata", "managedFields") or []
        if isinstance(entry, dict) and entry.get("subresource") == "status"
    ]
    known = [t.timestamp() for t in times if t is not None]
    return max(known) if known else None


# -- helpers ---------------------------------------------------------------------------------


def _not_waited(subject: str, strategy: str) -> Verdict:
    return Verdict(
        True,
        True,
        f"{subject}: applied, not waited for: {CANNOT_WAIT} (updateStrategy {strategy}: "
        "its pods change only when they are deleted)",
        waited=False,
    )


def _counts(spec: Obj, status: Obj, *, prefix: str) -> str:
    completions = spec.get("completions")
    completions = 1 if completions is None and spec.get("parallelism") in (None, 1) else completions
    parts = []
    succeeded = int(status.get("succeeded") or 0)
    parts.append(
        f"{succeeded} of {completions} succeeded"
        if completions is not None
        else f"{succeeded} succeeded"
    )
    if status.get("active"):
        parts.append(f"{status['active']} active")
    if status.get("failed"):
        limit = spec.get("backoffLimit")
        parts.append(
            f"{status['failed']} failed" + (f", backoffLimit {limit}" if limit is not None else "")
        )
    text = ", ".join(parts)
    return f"{prefix}{text})" if prefix.endswith("(") else f"{prefix}{text}"


def _replicas(spec: Obj) -> int:
    return int(spec["replicas"]) if spec.get("replicas") is not None else 1


def wait_targets(documents: Sequence[Any], wanted: Sequence[str]) -> list[Any]:
    """The manifests' documents to wait for: `wanted` ("Kind/name", from wait-for) or, when empty,
    every document of a waited kind. Raises InputError naming what the manifests lack."""
    from deployer.errors import InputError  # here: the verdicts above need no error types

    waited = [d for d in documents if d.kind in KINDS]
    by_key = {f"{d.kind}/{d.name}": d for d in waited}
    missing = [w for w in wanted if w not in by_key]
    if missing:
        have = ", ".join(f"{k.split('/')[0].lower()}/{k.split('/', 1)[1]}" for k in by_key)
        shown = ", ".join(f"{m.split('/')[0].lower()}/{m.split('/', 1)[1]}" for m in missing)
        raise InputError(
            f"{shown} {'is' if len(missing) == 1 else 'are'} not in the manifests "
            f"(they hold: {have or 'no workload we wait for'})",
            where="wait-for",
            hint="Name workloads defined in the manifests input, as kind/name.",
        )
    return [by_key[w] for w in wanted] if wanted else waited
