"""Pure rollout verdicts over plain Kubernetes objects (dicts as the API server returns them).

Nothing here talks to a cluster: the watcher fetches, these functions judge. Every verdict carries
a message a tired person can act on, so the unit tests compare whole verdicts from YAML snapshots.

Two questions are answered:

* `deployment_verdict`: is the rollout of the generation we applied complete, failed, or still
  going? Exactly kubectl's `rollout status` rules (kubectl/pkg/polymorphichelpers/rollout_status.go)
  plus our applied generation, so an older generation's "complete" never counts.
* `pod_verdict`: is a pod of the new ReplicaSet doomed? A named table of fatal states
  (`FATAL_STATES`), each with why it cannot recover by waiting. kubectl waits for the progress
  deadline (10 minutes by default) in all of these cases; we stop at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from deployer import docr
from deployer.objects import (
    Container,
    annotations_of,
    condition,
    containers,
    controller_uid,
    exit_code,
    get,
    name,
    one_line,
    true_condition,
)
from deployer.results import PodProblem

Obj = Mapping[str, Any]
_O = TypeVar("_O", bound=Obj)

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"

# Reasons a managed pod may be Failed with, after which its ReplicaSet simply makes a new pod:
# an eviction or a node shutdown is about the node, not about the release (krane learned this).
_REPLACED_POD_FAILURES = frozenset({"Evicted", "Preempting", "Shutdown", "Terminated", "NodeLost"})

# An image pull error is only final when the registry answered "no": a timeout or a 5xx is the
# registry's bad minute and the kubelet's back-off will retry it (krane PR #477 learned this).
_FINAL_PULL_ERROR = re.compile(
    r"not found|manifest unknown|unauthorized|denied|forbidden|does not exist"
    r"|authentication required|no basic auth credentials",
    re.IGNORECASE,
)

# The registry refused who we are (not: the image is missing). containerd's answer to a pull
# without credentials says "pull access denied, repository does not exist or may require
# authorization: authorization failed: no basic auth credentials" (no "unauthorized").
_AUTH_PULL_ERROR = re.compile(
    r"unauthorized|authentication required|no basic auth credentials|denied|forbidden|\b401\b",
    re.IGNORECASE,
)

_AUTH_WORD = re.compile(r"unauthorized|authentication required|denied|forbidden", re.IGNORECASE)

# How long a refused pull must last before it is final when the pod names imagePullSecrets. A
# real kubelet pulls without them when it cannot read them yet ("Unable to retrieve pull secret,
# the image pull may not succeed": its secret cache waits for the Node authorizer to learn of the
# pod, seconds behind on a busy API server), is refused, and pulls again with them a moment or
# one back-off later: its pod worker retries 10-15 s after the error. Seen on the stack's real
# node: pulled 0.2 s after the refusal; with the secret made after it, pulled 13 s after.
PULL_REFUSAL_GRACE_S = 25.0

_PULLING = frozenset({"ErrImagePull", "ImagePullBackOff"})

# The registry has no such image or tag: containerd says "failed to resolve image: <ref>: not
# found" inside "rpc error: code = NotFound"; Docker-shaped registries say "manifest unknown".
_MISSING_PULL_ERROR = re.compile(r"code = NotFound|manifest unknown|not found", re.IGNORECASE)

# A container the runtime could not start because its entrypoint cannot be executed (a missing
# command, a run.sh without its execute bit, a binary for another architecture): the kubelet
# says RunContainerError, then StartError with exit 128 in lastState. The image is the same at
# every restart, so no restart can fix it. Other RunContainerErrors (a runtime timeout) are left
# to the crash-loop rule.
_UNSTARTABLE = re.compile(
    r"exec: .*(no such file or directory|permission denied)|executable file not found"
    r"|exec format error|no such file or directory: unknown",
    re.IGNORECASE,
)

# The kubelet reports a missing informer cache as CreateContainerConfigError for a few seconds
# after it starts watching a new ConfigMap/Secret; it resolves itself.
_TRANSIENT_CONFIG_ERROR = re.compile(r"failed to sync .*cache", re.IGNORECASE)


@dataclass(frozen=True)
class Collection:
    """Where the API serves one namespaced kind (the watcher lists and watches it there)."""

    kind: str
    api_version: str  # "apps/v1", or "v1" for the core group
    plural: str


REPLICASETS = Collection("ReplicaSet", "apps/v1", "replicasets")
PODS = Collection("Pod", "v1", "pods")


@dataclass(frozen=True)
class Verdict:
    """A rollout's state: `done` False means keep waiting; when done, `ok` says green or red.

    `waited` False: done without waiting, because kubectl cannot wait for this object either
    (an OnDelete StatefulSet/DaemonSet); reported as applied, not as rolled out."""

    done: bool
    ok: bool
    message: str
    waited: bool = True
    # The controller's reason for a red verdict, when it gave one (for callers that branch on
    # it); the message already says it, so two verdicts that read the same are equal.
    reason: str = field(default="", compare=False)


def deployment_verdict(deployment: Obj, applied_generation: int | None = None) -> Verdict:
    """kubectl's rollout status for `deployment`, for at least `applied_generation`.

    Order as kubectl: generation observed, then the progress deadline, then the replica counts.
    """
    subject = f"deployment/{name(deployment)}"
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    generation = int(get(deployment, "metadata", "generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    wanted = max(generation, applied_generation or 0)
    if observed < wanted:
        return Verdict(
            False,
            False,
            f"{subject}: waiting for the deployment controller to observe generation {wanted} "
            f"(observed {observed})",
        )

    progressing = condition(status, "Progressing")
    # kubectl trusts the reason alone and ignores the condition's status; so do we.
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        seconds = spec.get("progressDeadlineSeconds")
        deadline = f" of {seconds}s" if seconds is not None else ""
        why = one_line(progressing.get("message") or "")
        return Verdict(
            True,
            False,
            f"{subject}: exceeded its progress deadline{deadline}" + (f": {why}" if why else ""),
        )

    replicas = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < replicas:
        return Verdict(
            False, False, f"{subject}: {updated} out of {replicas} new replicas have been updated"
        )
    if total > updated:
        return Verdict(
            False, False, f"{subject}: {total - updated} old replicas are pending termination"
        )
    if available < updated:
        return Verdict(
            False, False, f"{subject}: {available} of {updated} updated replicas are available"
        )
    return Verdict(True, True, f"{subject}: successfully rolled out")


def generation_observed(deployment: Obj, applied_generation: int | None = None) -> bool:
    """Has the controller seen the spec we applied? Until then counts describe an older one."""
    generation = int(get(deployment, "metadata", "generation") or 0)
    observed = int(get(deployment, "status", "observedGeneration") or 0)
    return observed >= max(generation, applied_generation or 0)


def problem_verdict(deployment_name: str, problem: PodProblem) -> Verdict:
    """The deployment's red verdict caused by one doomed pod."""
    return Verdict(True, False, problem.message(f"deployment/{deployment_name}"))


# --- the fatal-state table ------------------------------------------------------------------


@dataclass(frozen=True)
class _Judging:
    """What a rule may read besides the container: the pod's and the watcher's facts."""

    restart_tolerance: int = 2
    pull_secrets: tuple[str, ...] = ()  # the pod's imagePullSecrets, by name
    # container name -> how long the watcher has seen it failing to pull (see `pulls_failing`)
    pull_failing_for: Mapping[str, float] = field(default_factory=dict)
    pull_refusal_grace_s: float = PULL_REFUSAL_GRACE_S

    def awaits_retry(self, c: Container, refused_us: bool) -> bool:
        """Is a refusal of who we are still in its grace? Only when the pod names pull secrets:
        the kubelet may not have been able to read them yet (PULL_REFUSAL_GRACE_S)."""
        return (
            refused_us
            and bool(self.pull_secrets)
            and self.pull_failing_for.get(c.name, 0.0) < self.pull_refusal_grace_s
        )


@dataclass(frozen=True)
class _Rule:
    state: str
    why: str
    check: Callable[[Container, _Judging], PodProblem | None]


def _crash_loop(c: Container, judging: _Judging) -> PodProblem | None:
    """An app container that keeps ending and being restarted, past the restart tolerance.

    Judged from its restarts and its last run, in either shape a kubelet shows between runs: a
    real kubelet keeps the container `terminated` (reason Error) for nearly all of each back-off
    and shows `waiting: CrashLoopBackOff` only for a fraction of a second before a restart (a
    watch saw it first at the third run, about 40 s in; a poller at 170 s), so the waiting
    reason alone is seen late or never. A container that is running again is not judged: it
    may have recovered (the tolerance's purpose: a worker that crashed while its database
    started).
    """
    if c.init:
        return None  # an init container's first failure is final: `_init_failed`
    waiting = c.waiting()
    terminated = c.terminated()
    if waiting and waiting.get("reason") == "CrashLoopBackOff":
        last = c.last_terminated() or {}
        reason = "CrashLoopBackOff"
    elif terminated is not None and c.restarts_after_exit():
        code = exit_code(terminated)
        if not code and c.restart_policy != "Always":
            return None  # OnFailure: exit 0 is done, not a crash
        last, reason = terminated, str(terminated.get("reason") or "Error")
    else:
        return None
    if c.restarts < judging.restart_tolerance:
        return None
    code = exit_code(last)
    return _problem(
        c,
        "CrashLoopBackOff",
        reason,
        code,
        f"{c.label} is crash-looping: last run {_ended(c, last)}, restarted {c.restarts} times",
    )


def _ended(c: Container, terminated: Obj) -> str:
    """How one run ended: "exited 1 (Error)", or an OOM kill with the limit it hit."""
    code = exit_code(terminated)
    reason = terminated.get("reason") or "no reason"
    if reason == "OOMKilled":
        limit = c.memory_limit()
        at = f"at its memory limit of {limit}" if limit else "with no memory limit (node memory)"
        return f"was OOMKilled {at} (exit {code if code is not None else 137})"
    return f"exited {code} ({reason})" if code is not None else "failed"


def _init_failed(c: Container, _judging: _Judging) -> PodProblem | None:
    if not c.init:
        return None
    terminated = c.terminated()
    if terminated is None:
        waiting = c.waiting()
        if waiting and waiting.get("reason") == "CrashLoopBackOff":
            terminated = c.last_terminated()
    code = exit_code(terminated or {})
    if terminated is None or not code:
        return None
    reason = terminated.get("reason") or "no reason"
    extra = one_line(terminated.get("message") or "")
    return _problem(
        c,
        "InitContainerFailed",
        str(reason),
        code,
        f"{c.label} {_ended(c, terminated)}" + (f": {extra}" if extra else ""),
    )


def _start_error(c: Container, _judging: _Judging) -> PodProblem | None:
    """The runtime cannot exec the entrypoint: final at the first attempt (see `_UNSTARTABLE`)."""
    waiting = c.waiting() or {}
    ended = c.terminated() or c.last_terminated() or {}
    message, reason = "", "RunContainerError"
    if waiting.get("reason") == "RunContainerError":
        message = str(waiting.get("message") or "")
    if not _UNSTARTABLE.search(message) and ended.get("reason") == "StartError":
        # Between attempts (terminated, or waiting in CrashLoopBackOff) the last one says it.
        message, reason = str(ended.get("message") or ""), "StartError"
    found = _UNSTARTABLE.search(message)
    if not found:
        return None
    # The runtime's chain of "failed to create …" prefixes says nothing a user can act on: keep
    # what exec said.
    at = message.find("exec: ")
    why = message[at:] if at >= 0 else message
    code = exit_code(ended)
    return _problem(
        c,
        "StartError",
        reason,
        code,
        one_line(f"{c.label} cannot start: the runtime cannot run its command ({reason}): {why}"),
    )


def _image_pull(c: Container, judging: _Judging) -> PodProblem | None:
    waiting = c.waiting()
    if waiting and waiting.get("reason") == "ErrImageNeverPull":
        # imagePullPolicy Never and the image is not on the node: the kubelet will never pull it.
        return _problem(
            c,
            "ImagePullFailed",
            "ErrImageNeverPull",
            None,
            one_line(
                f"{c.label} cannot start: its image is not on the node and imagePullPolicy is "
                f"Never (ErrImageNeverPull): {waiting.get('message') or ''}"
            ),
        )
    refused = _refused_pull(c)
    if waiting is None or refused is None:
        return None
    verdict, auth, message = refused
    image = c.status.get("image") or "its image"
    # DOCR answers 401 to a cluster it was never integrated with: say the fix before the
    # runtime's long message, which the one-line cut may shorten.
    fix = ""
    if judging.awaits_retry(c, auth):
        return None  # `pull_refusal_pending` says what the wait is for
    if auth and judging.pull_secrets:
        # Refused although the pod names pull secrets, and the refusals outlasted the retry.
        names = ", ".join(judging.pull_secrets)
        fix = (
            f"; refused for {judging.pull_refusal_grace_s:g}s despite the pod's "
            f"imagePullSecrets ({names}): check they exist and hold credentials this registry "
            "accepts"
        )
    elif auth and docr.registry_name(str(image)):
        fix = f"; the cluster has no pull secret for {docr.HOST}: {docr.short_fix()}"
    elif auth:
        fix = (
            "; the pod has no pull secret this registry accepts: add one to the pod's "
            "imagePullSecrets (or its service account's)"
        )
    # The registry's verdict first: a long runtime message is cut, the reason must survive.
    return _problem(
        c,
        "ImagePullFailed",
        str(waiting["reason"]),
        None,
        one_line(f"{c.label} cannot pull {image}: {verdict} ({waiting['reason']}){fix}: {message}"),
    )


def _refused_pull(c: Container) -> tuple[str, bool, str] | None:
    """A pull the registry answered "no" to (not found, or not allowed): the verdict in a few
    words, whether it refused who we are, and the runtime's message. None for any other state,
    a registry's bad minute included (timeouts, 5xx)."""
    waiting = c.waiting()
    if not waiting or waiting.get("reason") not in _PULLING:
        return None
    message = str(waiting.get("message") or "")
    final = _FINAL_PULL_ERROR.search(message)
    if not final:
        return None
    auth = bool(_AUTH_PULL_ERROR.search(message))
    # Credentials first: containerd's "pull access denied, repository does not exist or may
    # require authorization: … no basic auth credentials" also says "does not exist".
    if auth and "no basic auth credentials" in message.lower():
        verdict = "pull access denied, no credentials"
    elif auth:
        word = _AUTH_WORD.search(message)
        verdict = word.group(0).lower() if word else "unauthorized"
    elif _MISSING_PULL_ERROR.search(message):
        verdict = "image not found"
    else:
        verdict = final.group(0).lower()
    return verdict, auth, message


def pull_refusal_pending(
    pod: Obj,
    pull_failing_for: Mapping[str, float],
    pull_refusal_grace_s: float = PULL_REFUSAL_GRACE_S,
) -> str | None:
    """While a pull refused although the pod names imagePullSecrets waits out its grace (see
    PULL_REFUSAL_GRACE_S), what the wait is for, for the progress line; else None."""
    judging = _Judging(
        pull_secrets=pull_secrets(pod),
        pull_failing_for=pull_failing_for,
        pull_refusal_grace_s=pull_refusal_grace_s,
    )
    for c in containers(pod):
        refused = _refused_pull(c)
        if refused is not None and judging.awaits_retry(c, refused[1]):
            return (
                f"{c.label}'s pull was refused despite the pod's imagePullSecrets "
                f"({', '.join(judging.pull_secrets)}): waiting for the kubelet to retry with "
                f"them (red after {pull_refusal_grace_s:g}s)"
            )
    return None


def _invalid_image(c: Container, _judging: _Judging) -> PodProblem | None:
    waiting = c.waiting()
    if not waiting or waiting.get("reason") != "InvalidImageName":
        return None
    message = one_line(waiting.get("message") or "")
    return _problem(
        c,
        "InvalidImageName",
        "InvalidImageName",
        None,
        f"{c.label} has an invalid image name" + (f": {message}" if message else ""),
    )


def _config_error(c: Container, _judging: _Judging) -> PodProblem | None:
    waiting = c.waiting()
    if not waiting or waiting.get("reason") != "CreateContainerConfigError":
        return None
    message = waiting.get("message") or ""
    if _TRANSIENT_CONFIG_ERROR.search(message):
        return None
    return _problem(
        c,
        "CreateContainerConfigError",
        "CreateContainerConfigError",
        None,
        f"{c.label} cannot be created: {one_line(message) or 'CreateContainerConfigError'}",
    )


FATAL_STATES: tuple[_Rule, ...] = (
    _Rule(
        "InitContainerFailed",
        "an init container (migrate, collectstatic) that exits non-zero blocks the pod for good; "
        "the first failure is the answer, retrying only repeats it",
        _init_failed,
    ),
    _Rule(
        "StartError",
        "the runtime cannot execute the container's command (missing entrypoint, run.sh "
        "without its execute bit): the image is the same at every restart, so the first "
        "attempt is the answer",
        _start_error,
    ),
    _Rule(
        "CrashLoopBackOff",
        "the container keeps exiting and the kubelet restarts it (it sits terminated between "
        "restarts, waiting in CrashLoopBackOff only briefly); after a few restarts (the "
        "tolerance absorbs a slow dependency) it is the release, not bad luck",
        _crash_loop,
    ),
    _Rule(
        "ImagePullFailed",
        "the registry said the image or tag does not exist or we may not pull it; "
        "transient pull errors (timeouts, 5xx) are left to the kubelet's retries, and a refusal "
        "despite the pod's imagePullSecrets must outlast the kubelet's retry with them",
        _image_pull,
    ),
    _Rule(
        "InvalidImageName",
        "the image reference cannot be parsed; no retry can fix the manifest",
        _invalid_image,
    ),
    _Rule(
        "CreateContainerConfigError",
        "a referenced ConfigMap/Secret or key is missing; the kubelet will not start the "
        "container until someone creates it (except the kubelet's own cache warming up)",
        _config_error,
    ),
)
"""Container states that doom a pod, checked in this order for each init then app container."""

UNSCHEDULABLE_WHY = (
    "the scheduler found no node for the pod (too much CPU/memory asked, a selector or taint "
    "nothing matches); after a grace period for the autoscaler or a draining node, it is fatal"
)
POD_FAILED_WHY = (
    "the pod itself is Failed (restartPolicy gave up, deadline exceeded); evictions and node "
    "shutdowns are excepted because the ReplicaSet replaces those pods"
)


def pod_verdict(
    pod: Obj,
    *,
    restart_tolerance: int = 2,
    unschedulable_for_s: float = 0.0,
    unschedulable_grace_s: float = 10.0,
    pull_failing_for: Mapping[str, float] | None = None,
    pull_refusal_grace_s: float = PULL_REFUSAL_GRACE_S,
) -> PodProblem | None:
    """The first fatal state of `pod`, or None while it may still become ready.

    `unschedulable_for_s` is how long the caller has seen the pod Unschedulable, and
    `pull_failing_for` how long it has seen each container failing to pull (`pulls_failing`):
    the watcher tracks both, so this stays pure and immune to clock skew between us and the
    cluster.
    """
    if get(pod, "metadata", "deletionTimestamp"):
        return None  # on its way out; its replacement is what matters
    pod_name = name(pod)
    status = pod.get("status") or {}
    if status.get("phase") == "Failed" and status.get("reason") not in _REPLACED_POD_FAILURES:
        why = one_line(" ".join(filter(None, [status.get("reason"), status.get("message")])))
        return PodProblem(
            pod_name,
            None,
            False,
            "PodFailed",
            str(status.get("reason") or "Failed"),
            None,
            "pod failed" + (f": {why}" if why else ""),
        )
    if is_unschedulable(pod) and unschedulable_for_s >= unschedulable_grace_s:
        cond = condition(status, "PodScheduled") or {}
        return PodProblem(
            pod_name,
            None,
            False,
            "Unschedulable",
            "Unschedulable",
            None,
            f"cannot be scheduled for {unschedulable_grace_s:g}s: "
            f"{one_line(cond.get('message') or 'no node fits the pod')}",
        )
    judging = _Judging(
        restart_tolerance,
        pull_secrets(pod),
        pull_failing_for or {},
        pull_refusal_grace_s,
    )
    for container in containers(pod):
        for rule in FATAL_STATES:
            problem = rule.check(container, judging)
            if problem is not None:
                return problem
    return None


def pulls_failing(pod: Obj) -> list[str]:
    """The containers of `pod` waiting because their image pull failed (either reason the
    kubelet alternates between: the refusal, then the back-off before the next try)."""
    return [c.name for c in containers(pod) if (c.waiting() or {}).get("reason") in _PULLING]


def pull_secrets(pod: Obj) -> tuple[str, ...]:
    """The names of the pod's imagePullSecrets (its ServiceAccount's were copied in at admission)."""
    refs = get(pod, "spec", "imagePullSecrets") or []
    return tuple(str(r["name"]) for r in refs if isinstance(r, Mapping) and r.get("name"))


def is_unschedulable(pod: Obj) -> bool:
    cond = condition(pod.get("status") or {}, "PodScheduled")
    return bool(cond and cond.get("status") == "False" and cond.get("reason") == "Unschedulable")


def pod_waiting_summary(pod: Obj) -> str | None:
    """What keeps a (not doomed) pod from being ready, for progress and timeout messages."""
    status = pod.get("status") or {}
    if is_unschedulable(pod):
        cond = condition(status, "PodScheduled") or {}
        return f"unschedulable: {one_line(cond.get('message') or '')}".rstrip(": ")
    for container in containers(pod):
        waiting = container.waiting()
        if waiting and waiting.get("reason") not in (None, "PodInitializing", "ContainerCreating"):
            message = one_line(waiting.get("message") or "")
            return f"{container.label} waiting: {waiting['reason']}" + (
                f" ({message})" if message else ""
            )
        if container.init:
            if container.terminated() is None and container.status.get("state", {}).get("running"):
                return f"{container.label} is still running"
            continue
        if get(container.status, "state", "running") and not container.status.get("ready"):
            return f"{container.label} is running but not ready (readiness probe)"
    if status.get("phase") == "Pending":
        return "pending"
    return None


def new_replicaset(deployment: Obj, replicasets: Sequence[Obj]) -> Obj | None:
    """The ReplicaSet of the Deployment's current revision (owned by it, same revision number)."""
    uid = get(deployment, "metadata", "uid")
    revision = annotations_of(deployment).get(REVISION_ANNOTATION)
    if revision is None:
        return None
    for rs in replicasets:
        if controller_uid(rs) != uid:
            continue
        if annotations_of(rs).get(REVISION_ANNOTATION) == revision:
            return rs
    return None


def pods_of(replicaset: Obj | None, pods: Sequence[_O]) -> list[_O]:
    """The pods `replicaset` controls (pods name only their ReplicaSet, through the owner)."""
    if replicaset is None:
        return []
    uid = get(replicaset, "metadata", "uid")
    return [p for p in pods if controller_uid(p) == uid]


def revision(obj: Obj) -> str | None:
    """The Deployment or ReplicaSet revision number, as the deployment controller wrote it."""
    value = annotations_of(obj).get(REVISION_ANNOTATION)
    return str(value) if value is not None and str(value).isdigit() else None


def pod_is_ready(pod: Obj) -> bool:
    return true_condition(pod.get("status"), "Ready") is not None


def pod_ended(pod: Obj) -> bool:
    """Failed or Succeeded: its containers will not run again (a Job's earlier attempt)."""
    return get(pod, "status", "phase") in ("Failed", "Succeeded")


# --- helpers ---------------------------------------------------------------------------------


def _problem(c: Container, state: str, reason: str, code: int | None, detail: str) -> PodProblem:
    return PodProblem(c.pod, c.name, c.init, state, reason, code, detail)
