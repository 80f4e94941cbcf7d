"""Watch every target's rollout at once and judge it on every change.

How: per namespace, one list+watch each of the targets' kinds, Pods, and ReplicaSets where a
Deployment is waited for (a thread each, no label selector; pods are tied to their workload
through the owner chain). Every event
wakes the judging loop, which asks `workloads.workload_verdict`: the kind's verdict (kubectl's
rules for the generation we applied), then each pod that belongs to the new revision against
the fail-fast table. The watcher knows no kind: `workloads.KINDS` says how each is judged and
where the API serves it, so a new kind is one verdict function and one row there.

When it ends (documented policy, "fast red"):
* every target has a verdict, or
* a target failed and the others had `failure_grace_s` (default 5 s) more to reach their own
  verdict; those still open are reported `cancelled` ("stopped waiting after ... failed") with
  where they stood. krane waits for all; we would rather be red in seconds than complete.
* the overall `timeout_s` ran out: open targets are `timed-out`, with the last progress message
  and what their pods are waiting for;
* `cancel` was set (SIGINT/SIGTERM): open targets are `cancelled` within about 0.25 s.

The watcher only judges; a failed or timed-out result carries the last object seen and the
doomed pod, and `diagnose.diagnose_all` gathers the facts afterwards (a verdict never waits for
a log read).

Streams end and reconnect from the last resourceVersion; a 410 (history compacted) re-lists.
An API that stays unreachable for a minute, or refuses us (403), ends the wait with that error.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from deployer.errors import DeployError
from deployer.kube import ApiUnavailable, Expired, WatchEvent
from deployer.objects import name
from deployer.results import PodProblem, ResultKind, RolloutResult, Target
from deployer.status import (
    PODS,
    PULL_REFUSAL_GRACE_S,
    REPLICASETS,
    Collection,
    is_unschedulable,
    pod_waiting_summary,
    pulls_failing,
)
from deployer.workloads import KINDS, ContainerClock, workload_verdict

DEFAULT_FAILURE_GRACE_S = 5.0
REMINDER_S = 30.0
_TICK_S = 0.25  # how often time-based rules (timeout, cancel, the graces, settling) are checked
_WATCH_WINDOW_S = 240  # server-side watch timeout; the stream is then resumed
_GIVE_UP_AFTER_S = 60.0  # an API unreachable this long ends the wait (exit 3)


class Stream(Protocol):
    def __iter__(self) -> Iterator[WatchEvent]: ...

    def close(self) -> None: ...


class WatchSource(Protocol):
    """What watching needs from a cluster (kube.Cluster has it; tests fake it)."""

    def list_objects(
        self, collection: Collection, namespace: str
    ) -> tuple[list[dict[str, Any]], str]: ...

    def watch_objects(
        self, collection: Collection, namespace: str, resource_version: str, *, timeout_s: int
    ) -> Stream: ...

    def server_clock_ahead(self) -> float | None: ...


def watch_rollouts(
    cluster: WatchSource,
    targets: list[Target],
    *,
    timeout_s: float,
    progress: Callable[[str], None],
    on_verdict: Callable[[RolloutResult], None] | None = None,
    cancel: threading.Event | None = None,
    restart_tolerance: int = 2,
    unschedulable_grace_s: float = 10.0,
    pull_refusal_grace_s: float = PULL_REFUSAL_GRACE_S,
    failure_grace_s: float = DEFAULT_FAILURE_GRACE_S,
    reminder_s: float = REMINDER_S,
    settle_s: float = 0.0,
) -> list[RolloutResult]:
    """Wait for every target's rollout; one result per target, in the order given.

    `progress` hears where open rollouts stand (on change, and a reminder every `reminder_s`);
    `on_verdict` hears each result once, when it is reached.
    `settle_s` (issue 17): a rollout kubectl calls done is green only once its new containers
    have been up that long (`workloads.settle_verdict`); 0 turns it off.
    Raises the API's error (Forbidden, ApiUnavailable...) if watching itself fails.
    """
    if not targets:
        return []
    run = _Run(
        cluster,
        targets,
        progress=progress,
        on_verdict=on_verdict,
        restart_tolerance=restart_tolerance,
        unschedulable_grace_s=unschedulable_grace_s,
        pull_refusal_grace_s=pull_refusal_grace_s,
        settle_s=settle_s,
    )
    started = time.monotonic()
    deadline = started + timeout_s
    stop = threading.Event()
    wake: queue.Queue[None] = queue.Queue()
    reflectors = {
        (collection.kind, ns): _Reflector(cluster, collection, ns, wake, stop)
        for ns in sorted({t.namespace for t in targets})
        for collection in _watched_in(ns, targets)
    }
    run.reflectors = reflectors
    for reflector in reflectors.values():
        reflector.start()
    try:
        while True:
            for reflector in reflectors.values():
                if reflector.error is not None:
                    raise reflector.error
            now = time.monotonic()
            if cancel is not None and cancel.is_set():
                run.finish_open("cancelled", "cancelled while waiting", now, started)
                break
            if all(r.synced for r in reflectors.values()):
                run.evaluate(now, started)
            if not run.open():
                break
            if run.first_failure is not None and now - run.first_failure[1] >= failure_grace_s:
                subject = run.first_failure[0]
                run.finish_open(
                    "cancelled",
                    f"stopped waiting {failure_grace_s:g}s after {subject} failed",
                    now,
                    started,
                )
                break
            if now >= deadline:
                run.time_out(now, started, timeout_s)
                break
            run.remind(now, reminder_s)
            _sleep_until_event(wake, min(_TICK_S, max(0.01, deadline - now)))
    finally:
        stop.set()
        for reflector in reflectors.values():
            reflector.close()
    return [state.result_value() for state in run.states]


# --- judging --------------------------------------------------------------------------------


@dataclass
class _State:
    target: Target
    seen: bool = False
    last_seen: Mapping[str, Any] | None = None
    message: str = ""
    printed_at: float = 0.0
    outcome: ResultKind | None = None
    reason: str = ""
    duration_s: float = 0.0
    problem: PodProblem | None = None
    pods: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return self.target.subject

    def detail(self) -> str:
        return self.message.removeprefix(f"{self.subject}: ") or "not seen yet"

    def result_value(self) -> RolloutResult:
        assert self.outcome is not None
        return RolloutResult(
            self.target.name,
            self.target.namespace,
            self.outcome,
            self.reason,
            round(self.duration_s, 3),
            kind=self.target.kind,
            problem=self.problem,
            last_seen=self.last_seen,
        )


def _watched_in(namespace: str, targets: Sequence[Target]) -> list[Collection]:
    """What to list and watch in one namespace: its targets' kinds, Pods, and ReplicaSets only
    when a kind there rolls out through them (Deployments)."""
    kinds = [KINDS[t.kind] for t in targets if t.namespace == namespace]
    through_replicasets = [REPLICASETS] if any(k.via_replicasets for k in kinds) else []
    return [*dict.fromkeys(k.collection for k in kinds), *through_replicasets, PODS]


class _Run:
    def __init__(
        self,
        cluster: WatchSource,
        targets: list[Target],
        *,
        progress: Callable[[str], None],
        on_verdict: Callable[[RolloutResult], None] | None,
        restart_tolerance: int,
        unschedulable_grace_s: float,
        pull_refusal_grace_s: float,
        settle_s: float,
    ) -> None:
        self.cluster = cluster
        self.states = [_State(t) for t in targets]
        self.progress = progress
        self.on_verdict = on_verdict
        self.restart_tolerance = restart_tolerance
        self.unschedulable_grace_s = unschedulable_grace_s
        self.pull_refusal_grace_s = pull_refusal_grace_s
        self.reflectors: dict[tuple[str, str], _Reflector] = {}
        self.first_failure: tuple[str, float] | None = None
        self.unschedulable_since: dict[str, float] = {}
        self.pull_failing_since: dict[str, dict[str, float]] = {}  # pod -> container -> since
        # Issue 17, the settle window: how long each new container has been up, measured from
        # what this watcher saw (monotonic `now` plus the wall clock's offset, for comparing
        # with the kubelet's startedAt with care: see ContainerClock).
        self.settle_s = settle_s
        self.containers = ContainerClock(
            epoch=time.time() - time.monotonic(), server_ahead=cluster.server_clock_ahead
        )

    def _snapshot(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        """What the reflector of a collection holds; [] for one not watched in that namespace."""
        reflector = self.reflectors.get((kind, namespace))
        return reflector.snapshot() if reflector is not None else []

    def open(self) -> list[_State]:
        return [s for s in self.states if s.outcome is None]

    def evaluate(self, now: float, started: float) -> None:
        for state in self.open():
            self._evaluate_one(state, now, started)

    def _evaluate_one(self, state: _State, now: float, started: float) -> None:
        target = state.target
        ns = target.namespace
        obj = self.reflectors[target.kind, ns].get(target.name)
        if obj is None:
            why = (
                "was deleted while we waited"
                if state.seen
                else f'does not exist in namespace "{ns}"'
            )
            self._fail(state, why, None, now, started)
            return
        state.seen = True
        state.last_seen = obj
        verdict, problem, state.pods = workload_verdict(
            obj,
            self._snapshot("ReplicaSet", ns),
            self.reflectors["Pod", ns].snapshot(),
            target.generation,
            restart_tolerance=self.restart_tolerance,
            unschedulable_for=lambda pod: self._unschedulable_for(pod, now),
            unschedulable_grace_s=self.unschedulable_grace_s,
            pull_failing_for=lambda pod: self._pull_failing_for(pod, now),
            pull_refusal_grace_s=self.pull_refusal_grace_s,
            settle_s=self.settle_s,
            up_for=lambda pod, cs: self.containers.up_for(pod, cs, now),
        )
        if verdict.done:
            if verdict.ok:
                reason = verdict.message.removeprefix(f"{state.subject}: ")
                self._finish(state, "succeeded", reason, now, started)
            else:
                self._fail(state, verdict.message, problem, now, started)
            return
        if verdict.message != state.message:
            state.message = verdict.message
            state.printed_at = now
            self.progress(verdict.message)

    def _unschedulable_for(self, pod: Mapping[str, Any], now: float) -> float:
        uid = _pod_key(pod)
        if not is_unschedulable(pod):
            self.unschedulable_since.pop(uid, None)
            return 0.0
        return now - self.unschedulable_since.setdefault(uid, now)

    def _pull_failing_for(self, pod: Mapping[str, Any], now: float) -> dict[str, float]:
        """How long each container of `pod` has been failing to pull, as this watcher saw it."""
        uid = _pod_key(pod)
        before = self.pull_failing_since.get(uid, {})
        since = {c: before.get(c, now) for c in pulls_failing(pod)}
        self.pull_failing_since[uid] = since
        return {c: now - t for c, t in since.items()}

    def _fail(
        self,
        state: _State,
        message: str,
        problem: PodProblem | None,
        now: float,
        started: float,
    ) -> None:
        state.problem = problem
        self._finish(state, "failed", message.removeprefix(f"{state.subject}: "), now, started)
        if self.first_failure is None:
            self.first_failure = (state.subject, now)

    def _finish(
        self, state: _State, outcome: ResultKind, reason: str, now: float, started: float
    ) -> None:
        state.outcome = outcome
        state.reason = reason
        state.duration_s = now - started
        if self.on_verdict is not None:
            self.on_verdict(state.result_value())

    def finish_open(self, outcome: ResultKind, why: str, now: float, started: float) -> None:
        for state in self.open():
            self._finish(state, outcome, f"{why}: {state.detail()}", now, started)

    def time_out(self, now: float, started: float, timeout_s: float) -> None:
        for state in self.open():
            reason = f"timed out after {_duration(timeout_s)}: {state.detail()}"
            hint = self._pod_hint(state)
            if hint:
                reason += f"; {hint}"
            self._finish(state, "timed-out", reason, now, started)

    def remind(self, now: float, reminder_s: float) -> None:
        for state in self.open():
            if state.message and now - state.printed_at >= reminder_s:
                state.printed_at = now
                hint = self._pod_hint(state)
                self.progress(f"still waiting for {state.message}" + (f" ({hint})" if hint else ""))

    @staticmethod
    def _pod_hint(state: _State) -> str:
        for pod in state.pods:
            summary = pod_waiting_summary(pod)
            if summary:
                return f"pod {name(pod)}: {summary}"
        return ""


# --- list+watch -----------------------------------------------------------------------------


class _Reflector:
    """Keeps an up-to-date copy of one kind in one namespace and wakes the judge on changes."""

    def __init__(
        self,
        source: WatchSource,
        collection: Collection,
        namespace: str,
        wake: queue.Queue[None],
        stop: threading.Event,
    ) -> None:
        self._source = source
        self._collection = collection
        self._namespace = namespace
        self._wake = wake
        self._stop = stop
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, Any]] = {}
        self._stream: Stream | None = None
        self.synced = False
        self.error: DeployError | None = None
        # Daemon: a stream blocked in a read must never keep the process alive after a cancel.
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{collection.kind}-{namespace}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(name)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())

    def _run(self) -> None:
        resource_version: str | None = None
        failing_since: float | None = None
        backoff = 0.2
        while not self._stop.is_set():
            opened = time.monotonic()
            try:
                if resource_version is None:
                    items, resource_version = self._source.list_objects(
                        self._collection, self._namespace
                    )
                    with self._lock:
                        # A list's items carry no kind (watch events do): the judge needs it.
                        kind = self._collection.kind
                        self._items = {name(obj, ""): {"kind": kind, **obj} for obj in items}
                        self.synced = True
                    self._wake.put(None)
                resource_version = self._follow(resource_version)
                failing_since = None
                if time.monotonic() - opened < 1.0:
                    # a stream that ends at once must not become a busy loop
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                else:
                    backoff = 0.2
            except Expired:
                resource_version = None
            except ApiUnavailable as exc:
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since >= _GIVE_UP_AFTER_S:
                    self._give_up(exc)
                    return
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except DeployError as exc:
                self._give_up(exc)
                return
            except Exception as exc:  # a bug here must end the wait loudly, not hang it
                self._give_up(ApiUnavailable(f"watching {self._collection.plural} failed: {exc!r}"))
                return

    def _follow(self, resource_version: str) -> str:
        stream = self._source.watch_objects(
            self._collection, self._namespace, resource_version, timeout_s=_WATCH_WINDOW_S
        )
        with self._lock:
            self._stream = stream
        try:
            if self._stop.is_set():
                return resource_version
            for event in stream:
                if self._stop.is_set():
                    break
                resource_version = event.resource_version or resource_version
                if event.type == "BOOKMARK":
                    continue
                with self._lock:
                    if event.type == "DELETED":
                        self._items.pop(name(event.object, ""), None)
                    else:
                        self._items[name(event.object, "")] = event.object
                self._wake.put(None)
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        return resource_version

    def _give_up(self, exc: DeployError) -> None:
        self.error = exc
        self._wake.put(None)


def _pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or meta.get("name"))


def _sleep_until_event(wake: queue.Queue[None], timeout: float) -> None:
    try:
        wake.get(timeout=timeout)
    except queue.Empty:
        return
    while True:  # one evaluation covers every change that arrived meanwhile
        try:
            wake.get_nowait()
        except queue.Empty:
            return


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    minutes, secs = divmod(seconds, 60)
    if minutes and secs:
        return f"{minutes}m{secs}s"
    return f"{minutes}m" if minutes else f"{secs}s"
