"""Why a rollout failed, in enough detail to fix it without opening a terminal to the cluster.

For one workload: the failing pod and container of the new revision, its reason and exit code,
the last 50 log lines of the current and the previous run of that container (once when both are
the same text, as for a crash-looping container's last run), the unhealthy conditions, and the
events of the workload, its new ReplicaSet (Deployments) and that pod since the deploy began,
with routine events (Scheduled, Pulled, Started...) dropped. Fetch failures are noted, never
raised: a diagnosis must not hide the verdict it explains.

Diagnosis is its own phase, after the watch (as krane does): `diagnose_all` diagnoses every red
or timed-out rollout at once, each in its own thread, and stops waiting after a small budget
(`BUDGET_S`) or at once on a cancel, so no verdict and no cancel ever waits for a log read.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from deployer import timestamps
from deployer.errors import DeployError
from deployer.objects import Container, container, containers, name, subject
from deployer.results import Diagnosis, EventLine, LogExcerpt, PodProblem, RolloutResult
from deployer.status import new_replicaset, pod_ended, pod_is_ready
from deployer.workloads import KINDS, new_revision_pods

LOG_LINES = 50
MAX_EVENTS = 30
# The whole diagnosis phase waits at most this long: every diagnosis runs at once, and one whose
# reads hang (a kubelet that does not answer) is reported as unfinished rather than waited for.
BUDGET_S = 20.0

# Events that only narrate a healthy rollout (krane drops the same ones).
ROUTINE_EVENTS = frozenset(
    {
        "Scheduled",
        "Pulling",
        "Pulled",
        "Created",
        "Started",
        "SuccessfulCreate",
        "SuccessfulDelete",
        "ScalingReplicaSet",
        "Killing",
    }
)

# What a kubelet answers, as a log body with status 200, when it has no log for the run asked
# (`--previous` of a container that is `terminated`, on containerd).
_KUBELET_LOG_ERROR = re.compile(r"unable to retrieve container logs for \S+$")

# The runner's clock and the cluster's are not the same clock: take events from a little before
# the deploy began rather than miss the one that explains it.
_CLOCK_SLACK = timedelta(seconds=5)


class DiagnoseSource(Protocol):
    """What diagnosing needs from a cluster (kube.Cluster has it; tests fake it)."""

    def list_replicasets(
        self, namespace: str, selector: Mapping[str, Any] | str | None = None
    ) -> list[dict[str, Any]]: ...

    def list_pods(
        self, namespace: str, selector: Mapping[str, Any] | str | None = None
    ) -> list[dict[str, Any]]: ...

    def pod_logs(
        self, name: str, namespace: str, container: str, *, tail: int = 50, previous: bool = False
    ) -> str: ...

    def events_for(self, kind: str, name: str, namespace: str) -> list[dict[str, Any]]: ...


def diagnose_all(
    cluster: DiagnoseSource,
    results: Sequence[RolloutResult],
    since: datetime,
    *,
    budget_s: float = BUDGET_S,
    cancel: threading.Event | None = None,
) -> list[RolloutResult]:
    """The results, each failed or timed-out one with its diagnosis (in the order given).

    All are diagnosed at once; after `budget_s`, or as soon as `cancel` is set, those not done
    carry a diagnosis that says so (their threads are daemons and are left to finish alone).
    """
    wanted = [r for r in results if r.result in ("failed", "timed-out") and r.last_seen]
    found: dict[int, Diagnosis] = {}
    lock = threading.Lock()

    def run(index: int, r: RolloutResult) -> None:
        assert r.last_seen is not None
        try:
            got = diagnose(cluster, r.last_seen, since, r.problem, summary=r.reason)
        except Exception as exc:  # a bug here must not hide the verdict it explains
            got = _unfinished(r, f"the diagnosis failed: {type(exc).__name__}: {exc}")
        with lock:
            found[index] = got

    threads = [
        threading.Thread(target=run, args=(i, r), name=f"diagnose-{r.name}", daemon=True)
        for i, r in enumerate(wanted)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + budget_s
    for thread in threads:
        while thread.is_alive() and time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                break
            thread.join(timeout=0.1)
    with lock:
        done = dict(found)
    cancelled = cancel is not None and cancel.is_set()
    why = "was cancelled" if cancelled else f"did not finish within its {budget_s:g}s budget"
    by_result = {
        id(r): done.get(i) or _unfinished(r, f"the diagnosis {why}") for i, r in enumerate(wanted)
    }
    return [
        dataclasses.replace(r, diagnosis=by_result[id(r)]) if id(r) in by_result else r
        for r in results
    ]


def _unfinished(r: RolloutResult, note: str) -> Diagnosis:
    return Diagnosis(r.name, r.namespace, r.reason, notes=(note,), kind=r.kind)


def diagnose(
    cluster: DiagnoseSource,
    workload: Mapping[str, Any],
    since: datetime,
    problem: PodProblem | None,
    *,
    summary: str = "",
) -> Diagnosis:
    """Collect the facts about a failed or timed-out rollout of `workload`.

    `problem` names the doomed pod when the watcher found one; without it (a progress deadline,
    a timeout) the most telling pod of the new revision is chosen.
    """
    kind = str(workload.get("kind") or "Deployment")
    workload_name = name(workload)
    namespace = str((workload.get("metadata") or {}).get("namespace") or "default")
    notes: list[str] = []
    rs, pods = _new_pods(cluster, workload, namespace, notes)
    pod = _pick_pod(pods, problem)
    pod_name = name(pod) if pod is not None else None
    failing = _failing_container(pod, problem)
    logs: tuple[LogExcerpt, ...] = ()
    if pod_name is not None and failing is not None:
        logs = _read_logs(cluster, pod_name, namespace, failing)
    objects = [(kind, workload_name)]
    if rs is not None:
        objects.append(("ReplicaSet", name(rs)))
    if pod_name is not None:
        objects.append(("Pod", pod_name))
    return Diagnosis(
        name=workload_name,
        namespace=namespace,
        summary=summary or (problem.detail if problem else "rollout did not complete"),
        pod=pod_name,
        container=failing.name if failing else None,
        init_container=failing.init if failing else False,
        reason=problem.reason if problem else (failing.reason() if failing else None),
        exit_code=_exit_code(problem, failing),
        conditions=_conditions(workload),
        logs=logs,
        events=_events(cluster, objects, namespace, since, notes),
        notes=tuple(notes),
        since=since,
        kind=kind,
    )


def _new_pods(
    cluster: DiagnoseSource, workload: Mapping[str, Any], namespace: str, notes: list[str]
) -> tuple[Mapping[str, Any] | None, list[Mapping[str, Any]]]:
    """The pods of the new revision, by the watcher's own rule (`workloads.new_revision_pods`),
    and a Deployment's new ReplicaSet (for its events). A pod of an older revision is never
    shown: its state and logs would explain a rollout that is not this one."""
    kind = KINDS.get(str(workload.get("kind") or ""))
    if kind is None:
        return None, []
    selector = (workload.get("spec") or {}).get("selector") or None
    replicasets: list[dict[str, Any]] = []
    if kind.via_replicasets:
        replicasets = _try(
            notes, "ReplicaSets", lambda: cluster.list_replicasets(namespace, selector), []
        )
        if new_replicaset(workload, replicasets) is None:
            return None, []  # no ReplicaSet of this revision yet: no pod of it either
    listed = _try(notes, "pods", lambda: cluster.list_pods(namespace, selector), [])
    return new_replicaset(workload, replicasets), new_revision_pods(workload, replicasets, listed)


def _failing_container(
    pod: Mapping[str, Any] | None, problem: PodProblem | None
) -> Container | None:
    """The container the problem names, else the first one that is not plainly fine."""
    if problem is not None and problem.container is not None:
        if pod is None:
            return Container(problem.pod, problem.container, problem.init_container, {})
        return container(pod, problem.container, problem.init_container)
    if pod is None:
        return None
    return next((c for c in containers(pod) if not _plainly_fine(c)), None)


def _plainly_fine(c: Container) -> bool:
    """Nothing to show about it: an init container that finished, a container still waiting
    for its init containers, or one running, ready and never restarted."""
    terminated = c.terminated() or {}
    if c.init and terminated.get("exitCode") == 0:
        return True
    if (c.waiting() or {}).get("reason") == "PodInitializing":
        return True
    return not (c.waiting() or c.terminated() or not c.ready or c.restarts)


def _exit_code(problem: PodProblem | None, failing: Container | None) -> int | None:
    if problem is not None and problem.exit_code is not None:
        return problem.exit_code
    return failing.last_exit() if failing is not None and failing.status else None


def _events(
    cluster: DiagnoseSource,
    objects: list[tuple[str, str]],
    namespace: str,
    since: datetime,
    notes: list[str],
) -> tuple[EventLine, ...]:
    """The telling events about `objects` since the deploy began, oldest first, the last few."""
    events: list[EventLine] = []
    for obj_kind, obj_name in objects:
        raw = _try(
            notes,
            f"events of {obj_kind.lower()}/{obj_name}",
            lambda k=obj_kind, n=obj_name: cluster.events_for(k, n, namespace),
            [],
        )
        events.extend(_event_lines(raw, since))
    events.sort(key=lambda e: e.when or datetime.min.replace(tzinfo=UTC))
    return tuple(events[-MAX_EVENTS:])


# --- choosing what to show ------------------------------------------------------------------


def _pick_pod(
    pods: Sequence[Mapping[str, Any]], problem: PodProblem | None
) -> Mapping[str, Any] | None:
    if problem is not None:
        for p in pods:
            if (p.get("metadata") or {}).get("name") == problem.pod:
                return p
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    # A pod still running says where the rollout stands; one that ended (a Job's failed attempt
    # before the retry that is running now) only says where it stood.
    running = [p for p in live if not pod_ended(p)]
    candidates = running or live
    for p in candidates:
        if not pod_is_ready(p):
            return p
    return candidates[0] if candidates else None


def _read_logs(
    cluster: DiagnoseSource, pod: str, namespace: str, container: Container
) -> tuple[LogExcerpt, ...]:
    """The runs worth showing of one container (read by its name, init containers too).

    A container that ended and is not running again (terminated between restarts, or waiting
    to restart) is shown once, as its "last run": a kubelet serves that run as the plain log.
    Its `--previous` is not read: while the container is `terminated`, a real kubelet answers
    it with an error text and status 200 (kubectl prints "unable to retrieve container logs
    for containerd://…" and exits 0), which must never pass for a log (issue 17).
    """
    ran = bool(container.terminated() or container.last_terminated())
    if container.running() is None and (ran or container.restarts):
        last = _logs(cluster, pod, namespace, container, previous=False)
        return (dataclasses.replace(last, run="last run"),)
    current, previous = (
        _logs(cluster, pod, namespace, container, previous=p) for p in (False, True)
    )
    return _distinct(current, previous, container)


def _logs(
    cluster: DiagnoseSource,
    pod: str,
    namespace: str,
    c: Container,
    *,
    previous: bool,
) -> LogExcerpt:
    container = c.name
    ran_before = bool(c.last_terminated()) or bool(c.restarts)
    # A container waiting in back-off has run: its "current" log is the last run's, as kubectl
    # shows it. Only a container that never ran (image pull, config error) has none.
    started = ran_before or bool(c.running() or c.terminated())
    if previous and not ran_before:
        return LogExcerpt(container, True, (), "no previous run")
    if not previous and not started:
        waiting = (c.waiting() or {}).get("reason")
        why = f" ({waiting})" if waiting else ""
        return LogExcerpt(container, False, (), f"no logs: the container never started{why}")
    try:
        text = cluster.pod_logs(pod, namespace, container, tail=LOG_LINES, previous=previous)
    except DeployError as exc:
        return LogExcerpt(container, previous, (), f"logs unavailable: {exc.message}")
    if _KUBELET_LOG_ERROR.match(text.strip()) and len(text.strip().splitlines()) == 1:
        # The kubelet's error passed through as a 200 body (see `_read_logs`): a note, not a log.
        return LogExcerpt(container, previous, (), f"logs unavailable: {text.strip()}")
    lines = tuple(text.splitlines()[-LOG_LINES:])
    return LogExcerpt(container, previous, lines, "" if lines else "no output")


def _distinct(
    current: LogExcerpt, previous: LogExcerpt, container: Container
) -> tuple[LogExcerpt, ...]:
    """Both excerpts, or one when both reads returned the same lines.

    A container that exited and waits to restart (CrashLoopBackOff) has no run of its own: a
    kubelet serves its last run as the current log and again as the previous one, and the same
    50 lines twice would only bury the events below them. A running container whose runs print
    the same lines is shown once too, and says so.
    """
    if not current.lines or current.lines != previous.lines:
        return (current, previous)
    running = container.running() is not None
    run = "current and previous run (the same lines)" if running else "last run"
    return (dataclasses.replace(current, run=run),)


def _conditions(deployment: Mapping[str, Any]) -> tuple[str, ...]:
    """Progressing other than True (the deadline) and ReplicaFailure True (quota, admission):
    the controller's own account. Available=False only restates the replica counts."""
    out = []
    for cond in (deployment.get("status") or {}).get("conditions") or []:
        kind, status = cond.get("type"), cond.get("status")
        telling = (kind == "Progressing" and status != "True") or (
            kind == "ReplicaFailure" and status == "True"
        )
        if not telling:
            continue
        reason = f" ({cond['reason']})" if cond.get("reason") else ""
        message = f": {cond['message']}" if cond.get("message") else ""
        out.append(f"{kind}={status}{reason}{message}")
    return tuple(out)


def _event_lines(raw: list[dict[str, Any]], since: datetime) -> list[EventLine]:
    lines = []
    for ev in raw:
        reason = str(ev.get("reason") or "")
        if reason in ROUTINE_EVENTS:
            continue
        when = _event_time(ev)
        if when is not None and when < since - _CLOCK_SLACK:
            continue
        involved = ev.get("involvedObject") or {}
        obj = subject(str(involved.get("kind") or ""), str(involved.get("name") or "?"))
        lines.append(
            EventLine(
                when=when,
                type=str(ev.get("type") or ""),
                reason=reason,
                object=obj,
                message=" ".join(str(ev.get("message") or "").split()),
                count=int(ev.get("count") or (ev.get("series") or {}).get("count") or 1),
            )
        )
    return lines


def _event_time(ev: Mapping[str, Any]) -> datetime | None:
    candidates = (
        ev.get("lastTimestamp"),
        (ev.get("series") or {}).get("lastObservedTime"),
        ev.get("eventTime"),
        ev.get("firstTimestamp"),
        (ev.get("metadata") or {}).get("creationTimestamp"),
    )
    for value in candidates:
        if value:
            parsed = timestamps.parse(str(value))
            if parsed is not None:
                return parsed
    return None


def _try(notes: list[str], what: str, fetch: Any, default: Any) -> Any:
    try:
        return fetch()
    except DeployError as exc:
        notes.append(f"could not read {what}: {exc.message}")
        return default
