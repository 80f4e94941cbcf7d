"""The watcher and the diagnosis against a fake cluster: an in-memory API with list, watch
(resourceVersion history, stream ends, 410 Expired), logs and events. No kubernetes server."""

from __future__ import annotations

import copy
import io
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from urllib3.util.retry import Retry

from deployer import kube
from deployer import watch as watch_module
from deployer.diagnose import diagnose, diagnose_all
from deployer.errors import DeployError, InputError
from deployer.github import Reporter
from deployer.kube import (
    ApiUnavailable,
    Forbidden,
    Invalid,
    NotFound,
    Unauthorized,
    connection,
)
from deployer.report import diagnosis_markdown, diagnosis_text, verdict_line
from deployer.results import Diagnosis, EventLine, LogExcerpt, RolloutResult, Target
from deployer.rollouts import watch_reported
from deployer.run import Interrupt
from deployer.status import pod_verdict
from deployer.watch import watch_rollouts
from tests.unit.fake_cluster import (
    NS,
    FakeCluster,
    Progress,
    deployment,
    event,
    pod,
    replicaset,
)
from tests.unit.runs import make_run

SINCE = datetime(2026, 11, 26, 10, 10, 0, tzinfo=UTC)


def run_in_background(fn: Any, *steps: tuple[float, Any]) -> threading.Thread:
    def play() -> None:
        for delay, action in steps:
            time.sleep(delay)
            action()

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    return thread


def watch(cluster: FakeCluster, targets: list[Target], **kwargs: Any) -> list[RolloutResult]:
    """The watch, then the diagnosis phase, as the pipeline runs them; progress and verdict
    lines both go to `progress`, as the pipeline prints them."""
    kwargs.setdefault("timeout_s", 10)
    kwargs.setdefault("progress", Progress())
    kwargs.setdefault("on_verdict", lambda r: kwargs["progress"](verdict_line(r)))
    return diagnose_all(cluster, watch_rollouts(cluster, targets, **kwargs), SINCE)


# --- rollouts -------------------------------------------------------------------------------


def test_a_rollout_that_completes_is_green_and_progress_prints_only_when_counts_change() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", generation=2, observed=1, updated=2, available=2))
    progress = Progress()
    green_at: list[float] = []
    completed_at: list[float] = []

    def record(line: str) -> None:
        progress(line)
        if "succeeded after" in line:
            green_at.append(time.monotonic())

    def step(**kw: Any) -> Any:
        return lambda: cluster.put(deployment("web", **kw))

    def complete() -> None:
        completed_at.append(time.monotonic())
        cluster.put(deployment("web", updated=2, available=2))

    run_in_background(
        None,
        (0.1, step(updated=1, available=0, total=3)),
        (0.1, step(updated=1, available=0, total=3)),  # same counts: no new line
        (0.1, step(updated=2, available=1, total=3)),
        (0.1, step(updated=2, available=2, total=3)),  # still one old pod: same line
        (0.1, step(updated=2, available=1)),
        (0.1, complete),
    )
    [result] = watch(cluster, [Target("web", NS, 2)], progress=record)

    assert (result.result, result.reason, result.diagnosis) == (
        "succeeded",
        "successfully rolled out",
        None,
    )
    # Green was called only after the complete status was written, never on an earlier one.
    assert len(completed_at) == 1 and len(green_at) == 1
    assert green_at[0] >= completed_at[0]
    assert progress.lines[:-1] == [
        "deployment/web: waiting for the deployment controller to observe generation 2 "
        "(observed 1)",
        "deployment/web: 1 out of 2 new replicas have been updated",
        "deployment/web: 1 old replicas are pending termination",
        "deployment/web: 1 of 2 updated replicas are available",
    ]
    assert progress.lines[-1].startswith("deployment/web: succeeded after ")
    assert progress.lines[-1].endswith("s: successfully rolled out")


def test_a_complete_status_of_an_older_generation_is_not_green() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", generation=3, observed=2, updated=2, available=2))
    [result] = watch(cluster, [Target("web", NS, 3)], timeout_s=0.4)
    assert result.result == "timed-out"
    assert result.reason == (
        "timed out after 0s: waiting for the deployment controller to observe generation 3 "
        "(observed 2)"
    )


def test_a_crash_looping_pod_of_the_new_replicaset_fails_fast_with_a_diagnosis() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", updated=1, total=1))
    cluster.put(replicaset("web", 2))
    cluster.put(pod("pod-ready", "web", 2, "ok111"))
    crashing = pod("pod-crash-loop", "web", 2, "x2x7q")
    cluster.put(crashing)
    name = crashing["metadata"]["name"]
    # Waiting to restart, its plain log is its last run (a kubelet's answer); --previous, the
    # run before, is not read.
    cluster.logs[name, "web", False] = "booting\nKeyError: 'DATABASE_URL'"
    cluster.logs[name, "web", True] = "the run before"
    cluster.events.append(
        event(
            "Pod",
            name,
            "BackOff",
            "Back-off restarting failed container web",
            "2026-11-26T10:10:41Z",
        )
    )
    cluster.events.append(
        event(
            "Pod",
            name,
            "Pulled",
            "Container image already present",
            "2026-11-26T10:10:40Z",
            kind_="Normal",
        )
    )

    progress = Progress()
    [result] = watch(cluster, [Target("web", NS, 2)], timeout_s=60, progress=progress)

    # Red on the very first judgement: no waiting line came before the failure (a timeout
    # would say "timed-out"; the Deployment's own deadline is 600 s and Progressing=True).
    assert len(progress.lines) == 1
    assert progress.lines[0].startswith("deployment/web: failed after ")
    assert result.result == "failed"
    assert result.reason == (
        "container `web` is crash-looping: last run exited 1 (Error), restarted 3 times "
        f"[pod {name}]"
    )
    assert result.diagnosis == Diagnosis(
        name="web",
        namespace=NS,
        summary=result.reason,
        pod=name,
        container="web",
        init_container=False,
        reason="CrashLoopBackOff",
        exit_code=1,
        conditions=(),
        logs=(LogExcerpt("web", False, ("booting", "KeyError: 'DATABASE_URL'"), run="last run"),),
        events=(
            EventLine(
                datetime(2026, 11, 26, 10, 10, 41, tzinfo=UTC),
                "Warning",
                "BackOff",
                f"pod/{name}",
                "Back-off restarting failed container web",
            ),
        ),
        notes=(),
        since=SINCE,
    )


def test_pods_of_the_old_replicaset_are_not_judged() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", updated=1, available=0, total=2))
    cluster.put(replicaset("web", 1))
    cluster.put(replicaset("web", 2))
    cluster.put(pod("pod-crash-loop", "web", 1, "old11"))
    cluster.put(pod("pod-running-not-ready", "web", 2, "new11"))
    run_in_background(None, (0.2, lambda: cluster.put(deployment("web", updated=2, available=2))))
    [result] = watch(cluster, [Target("web", NS, 2)])
    assert result.result == "succeeded"


def test_a_failed_migrate_init_container_is_named_in_the_reason_and_diagnosis() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("worker", replicas=1, updated=1, total=1))
    cluster.put(replicaset("worker", 2))
    failing = pod("pod-init-migrate-exited", "worker", 2, "q8m4z")
    cluster.put(failing)
    name = failing["metadata"]["name"]
    cluster.logs[name, "migrate", False] = "\n".join(f"line {i}" for i in range(80))

    [result] = watch(cluster, [Target("worker", NS, 2)])

    assert result.result == "failed"
    assert result.reason == f"init container `migrate` exited 1 (Error) [pod {name}]"
    diagnosis = result.diagnosis
    assert diagnosis is not None
    assert (diagnosis.pod, diagnosis.container, diagnosis.init_container, diagnosis.exit_code) == (
        name,
        "migrate",
        True,
        1,
    )
    # Read by the init container's name, shown once as its last run (it is `terminated`).
    [last] = diagnosis.logs
    assert last.lines == tuple(f"line {i}" for i in range(30, 80))  # the last 50
    assert (last.container, last.title) == ("migrate", "logs of `migrate`, last run")


def test_an_unschedulable_pod_fails_only_after_the_grace_the_watcher_measured() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", replicas=1, updated=1, total=1))
    cluster.put(replicaset("web", 2))
    cluster.put(pod("pod-unschedulable", "web", 2))
    [result] = watch(cluster, [Target("web", NS, 2)], unschedulable_grace_s=0.5)
    assert result.result == "failed"
    assert result.duration_s >= 0.5  # not before the grace had passed
    assert result.reason.startswith("cannot be scheduled for 0.5s: 0/3 nodes are available")
    assert result.diagnosis is not None
    assert result.diagnosis.logs == ()  # no container to read


def test_a_refused_pull_despite_pull_secrets_that_the_kubelet_retries_is_no_false_red() -> None:
    # The real kubelet's sequence (issue 17, CI of stop 24): refused without the secret it could
    # not read yet, then pulled with it and running a moment later.
    cluster = FakeCluster()
    cluster.put(deployment("web", replicas=1, updated=1, available=0, total=1))
    cluster.put(replicaset("web", 2))
    cluster.put(pod("pod-kubelet-pull-secret-not-read-yet", "web", 2, "rf111"))
    run_in_background(
        None,
        (0.3, lambda: cluster.put(pod("pod-ready", "web", 2, "rf111"))),
        (0.0, lambda: cluster.put(deployment("web", replicas=1, updated=1, available=1))),
    )
    [result] = watch(cluster, [Target("web", NS, 2)])
    assert (result.result, result.reason) == ("succeeded", "successfully rolled out")


def test_a_refused_pull_despite_pull_secrets_is_red_once_it_outlasts_the_grace() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", replicas=1, updated=1, available=0, total=1))
    cluster.put(replicaset("web", 2))
    refused = pod("pod-kubelet-pull-secret-not-read-yet", "web", 2, "rf222")
    cluster.put(refused)
    # The kubelet's back-off between tries: the grace runs on across both reasons.
    backing_off = copy.deepcopy(refused)
    waiting = backing_off["status"]["containerStatuses"][0]["state"]["waiting"]
    waiting.update(
        reason="ImagePullBackOff", message="Back-off pulling image: " + waiting["message"]
    )
    run_in_background(None, (0.3, lambda: cluster.put(backing_off)))
    progress = Progress()
    [result] = watch(cluster, [Target("web", NS, 2)], pull_refusal_grace_s=0.6, progress=progress)
    # While it waits, the progress line says what for: once, not at every tick.
    waiting = [line for line in progress.lines if "waiting for the kubelet to retry" in line]
    assert waiting == [
        "deployment/web: 0 of 1 updated replicas are available; pod web-r2-rf222: container "
        "`worker`'s pull was refused despite the pod's imagePullSecrets (registry-team): waiting "
        "for the kubelet to retry with them (red after 0.6s)"
    ]
    assert result.result == "failed"
    assert result.duration_s >= 0.6  # not before the watcher had seen it refused that long
    assert result.reason.startswith(
        "container `worker` cannot pull registry.digitalocean.com/team/antisocial:9b2d771: "
        "pull access denied, no credentials (ImagePullBackOff); refused for 0.6s despite the "
        "pod's imagePullSecrets (registry-team)"
    )


def test_a_progress_deadline_is_red_with_the_deployments_condition_in_the_diagnosis() -> None:
    cluster = FakeCluster()
    cluster.put(
        deployment(
            "web",
            updated=1,
            available=0,
            total=1,
            progressing=("False", "ProgressDeadlineExceeded", "has timed out progressing."),
        )
    )
    cluster.put(replicaset("web", 2))
    cluster.put(pod("pod-running-not-ready", "web", 2))
    [result] = watch(cluster, [Target("web", NS, 2)])
    assert result.result == "failed"
    assert result.reason == (
        'exceeded its progress deadline of 600s: ReplicaSet "web-r2" has timed out progressing.'
    )
    assert result.diagnosis is not None
    assert result.diagnosis.conditions == (
        'Progressing=False (ProgressDeadlineExceeded): ReplicaSet "web-r2" has timed out '
        "progressing.",
    )
    assert (result.diagnosis.container, result.diagnosis.reason) == ("web", "NotReady")


def test_one_failure_gives_the_others_a_short_grace_and_then_the_wait_ends() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", updated=2, available=1))
    cluster.put(deployment("worker", replicas=1, updated=1, total=1))
    cluster.put(replicaset("worker", 2))
    cluster.put(pod("pod-init-migrate-exited", "worker", 2))
    progress = Progress()
    web, worker = watch(
        cluster,
        [Target("web", NS, 2), Target("worker", NS, 2)],
        failure_grace_s=0.4,
        progress=progress,
    )
    assert worker.result == "failed"
    assert web.result == "cancelled"
    assert web.reason == (
        "stopped waiting 0.4s after deployment/worker failed: 1 of 2 updated replicas are available"
    )
    # web was stopped no sooner than the grace after worker's failure (both rounded to ms)
    assert web.duration_s - worker.duration_s >= 0.4 - 0.002
    assert web.diagnosis is None


def test_another_rollout_finishing_within_the_grace_is_still_green() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", updated=2, available=1))
    cluster.put(deployment("worker", replicas=1, updated=1, total=1))
    cluster.put(replicaset("worker", 2))
    cluster.put(pod("pod-init-migrate-exited", "worker", 2))
    progress = Progress()
    worker_failed = threading.Event()

    def record(line: str) -> None:
        progress(line)
        if line.startswith("deployment/worker: failed"):
            worker_failed.set()

    def complete_web_once_worker_failed() -> None:
        if worker_failed.wait(30):
            cluster.put(deployment("web", updated=2, available=2))

    run_in_background(None, (0, complete_web_once_worker_failed))
    web, worker = watch(
        cluster,
        [Target("web", NS, 2), Target("worker", NS, 2)],
        failure_grace_s=30,
        progress=record,
    )
    assert (web.result, worker.result) == ("succeeded", "failed")
    # web's green came after worker's red: it was judged during the grace, not before it
    [red] = [i for i, line in enumerate(progress.lines) if line.startswith("deployment/worker")]
    [green] = [i for i, line in enumerate(progress.lines) if "succeeded after" in line]
    assert red < green
    assert progress.lines[green].startswith("deployment/web: ")


def test_the_overall_timeout_names_the_last_progress_and_what_the_pod_waits_for() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", replicas=1, updated=1, available=0, total=1))
    cluster.put(replicaset("web", 2))
    cluster.put(pod("pod-image-pull-backoff-plain", "web", 2, "p0d11"))
    [result] = watch(cluster, [Target("web", NS, 2)], timeout_s=0.5)
    assert result.result == "timed-out"
    assert result.reason == (
        "timed out after 0s: 0 of 1 updated replicas are available; pod web-r2-p0d11: "
        "container `web` waiting: ImagePullBackOff (Back-off pulling image "
        '"registry.digitalocean.com/team/antisocial:9b2d771")'
    )
    assert result.diagnosis is not None
    assert result.diagnosis.logs[0] == LogExcerpt(
        "web", False, (), "no logs: the container never started (ImagePullBackOff)"
    )


def test_a_reminder_repeats_where_each_open_rollout_stands() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", replicas=1, updated=1, available=0, total=1))
    cluster.put(replicaset("web", 2))
    cluster.put(pod("pod-running-not-ready", "web", 2, "nr111"))
    progress = Progress()
    watch(cluster, [Target("web", NS, 2)], timeout_s=1.3, reminder_s=0.3, progress=progress)
    reminder = (
        "still waiting for deployment/web: 0 of 1 updated replicas are available "
        "(pod web-r2-nr111: container `web` is running but not ready (readiness probe))"
    )
    assert progress.lines[0] == "deployment/web: 0 of 1 updated replicas are available"
    assert progress.lines.count(reminder) >= 2  # it repeats (every 0.3s within the 1.3s wait)
    assert progress.lines[-1].startswith("deployment/web: timed-out after 1.")
    assert ": timed out after 1s: 0 of 1 updated replicas are available" in progress.lines[-1]


def test_cancel_ends_the_wait_and_its_watch_threads_and_says_where_it_stood() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", updated=1, available=0, total=2))
    cancel = threading.Event()
    watching: list[threading.Thread] = []

    def cancel_while_watching(line: str) -> None:  # at the first judgement: all lists synced
        if not cancel.is_set():
            watching.extend(t for t in threading.enumerate() if t.name.startswith("watch-"))
            cancel.set()

    [result] = watch(
        cluster,
        [Target("web", NS, 2)],
        timeout_s=120,
        cancel=cancel,
        progress=cancel_while_watching,
    )
    assert result.result == "cancelled"  # not "timed-out": the cancel ended it
    assert result.reason == "cancelled while waiting: 1 out of 2 new replicas have been updated"
    # its streams are closed and every watch thread ends: none is left blocked on a read
    assert {f"watch-{kind}-{NS}" for kind in ("Deployment", "ReplicaSet", "Pod")} <= {
        t.name for t in watching
    }
    assert all(stream.closed.is_set() for _, _, stream in cluster.streams)
    for thread in watching:
        thread.join(timeout=30)
        assert not thread.is_alive(), f"{thread.name} outlived the cancel"


def test_a_deployment_that_does_not_exist_fails_at_once() -> None:
    cluster = FakeCluster()
    progress = Progress()
    [result] = watch(cluster, [Target("wbe", NS, None)], timeout_s=60, progress=progress)
    assert (result.result, result.reason) == ("failed", 'does not exist in namespace "shop"')
    # judged on the first look: no waiting for it to appear (that would end "timed-out")
    [line] = progress.lines
    assert line.startswith("deployment/wbe: failed after ")


def test_a_deployment_deleted_while_we_wait_fails() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", updated=1, total=1))
    run_in_background(None, (0.2, lambda: cluster.delete("Deployment", "web")))
    [result] = watch(cluster, [Target("web", NS, 2)])
    assert (result.result, result.reason) == ("failed", "was deleted while we waited")


def test_an_expired_watch_lists_again_and_sees_what_changed_meanwhile() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", updated=1, total=1))

    def expire_then_complete() -> None:
        cluster.compact_and_expire()
        cluster.put(deployment("web", updated=2, available=2))

    run_in_background(None, (0.2, expire_then_complete))
    lists_before = cluster.lists
    [result] = watch(cluster, [Target("web", NS, 2)])
    assert result.result == "succeeded"
    assert cluster.lists >= lists_before + 4  # 3 initial lists + at least one re-list


def test_a_stream_the_server_ends_is_resumed_without_losing_events() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("web", updated=1, total=1))

    def end_then_change() -> None:
        cluster.end_streams()
        cluster.put(deployment("web", updated=2, available=2))  # between two streams

    run_in_background(None, (0.2, end_then_change))
    [result] = watch(cluster, [Target("web", NS, 2)])
    assert result.result == "succeeded"
    assert cluster.watches >= 4  # the Deployment watch was opened again
    assert cluster.lists == 3  # resumed from the resourceVersion, no re-list


def test_a_forbidden_list_ends_the_wait_with_the_clear_error() -> None:
    cluster = FakeCluster()
    cluster.list_error = Forbidden(
        'the cluster identity may not "list" pods in namespace "shop": pods is forbidden'
    )
    with pytest.raises(Forbidden, match='may not "list" pods'):
        watch(cluster, [Target("web", NS, 2)])


def test_watching_nothing_returns_at_once() -> None:
    assert watch(FakeCluster(), []) == []


# --- diagnosis details and rendering --------------------------------------------------------


def _crash_cluster() -> tuple[FakeCluster, dict[str, Any], dict[str, Any]]:
    cluster = FakeCluster()
    dep = deployment("web", updated=1, total=1)
    cluster.put(dep)
    cluster.put(replicaset("web", 2))
    crashing = pod("pod-crash-loop", "web", 2, "x2x7q")
    cluster.put(crashing)
    return cluster, dep, crashing


def test_logs_the_kubelet_cannot_serve_are_noted_not_raised() -> None:
    cluster, dep, crashing = _crash_cluster()
    name = crashing["metadata"]["name"]
    unavailable = NotFound("not found while trying to read logs of pod: the server could not find")
    cluster.logs[name, "web", False] = unavailable
    cluster.logs[name, "web", True] = unavailable
    problem = pod_verdict(crashing)
    result = diagnose(cluster, dep, SINCE, problem)
    assert [excerpt.note for excerpt in result.logs] == [
        "logs unavailable: not found while trying to read logs of pod: the server could not find"
    ]


def test_events_before_the_deploy_and_routine_ones_are_dropped() -> None:
    cluster, dep, crashing = _crash_cluster()
    name = crashing["metadata"]["name"]
    cluster.events += [
        event("Pod", name, "BackOff", "an old back-off", "2026-11-26T09:00:00Z"),
        event(
            "Pod",
            name,
            "Scheduled",
            "Successfully assigned",
            "2026-11-26T10:10:02Z",
            kind_="Normal",
        ),
        event(
            "Deployment",
            "web",
            "ScalingReplicaSet",
            "Scaled up",
            "2026-11-26T10:10:01Z",
            kind_="Normal",
        ),
        event(
            "ReplicaSet",
            "web-r2",
            "FailedCreate",
            'pods "web-r2-" is forbidden: exceeded quota',
            "2026-11-26T10:10:03Z",
        ),
        event(
            "Pod",
            name,
            "BackOff",
            "Back-off restarting failed container web",
            "2026-11-26T10:09:58Z",
        ),  # within the clock slack
    ]
    result = diagnose(cluster, dep, SINCE, pod_verdict(crashing))
    assert [e.text() for e in result.events] == [
        f"10:09:58 Warning BackOff pod/{name}: Back-off restarting failed container web",
        '10:10:03 Warning FailedCreate replicaset/web-r2: pods "web-r2-" is forbidden: '
        "exceeded quota",
    ]


def test_the_text_rendering_reads_top_down() -> None:
    result = Diagnosis(
        name="worker",
        namespace=NS,
        summary="init container `migrate` exited 1 (Error) [pod worker-r2-q8m4z]",
        pod="worker-r2-q8m4z",
        container="migrate",
        init_container=True,
        reason="Error",
        exit_code=1,
        logs=(
            LogExcerpt("migrate", False, ("Applying shop.0002...", "IntegrityError")),
            LogExcerpt("migrate", True, (), "no previous run"),
        ),
        events=(
            EventLine(
                datetime(2026, 11, 26, 10, 10, 6, tzinfo=UTC),
                "Warning",
                "BackOff",
                "pod/worker-r2-q8m4z",
                "Back-off restarting failed container migrate",
                3,
            ),
        ),
        since=SINCE,
    )
    assert "\n".join(diagnosis_text(result)) == (
        "deployment/worker (namespace shop): init container `migrate` exited 1 (Error) "
        "[pod worker-r2-q8m4z]\n"
        "  pod worker-r2-q8m4z, init container `migrate`: Error, exit code 1\n"
        "  logs of `migrate`, current run (last 2 lines):\n"
        "    | Applying shop.0002...\n"
        "    | IntegrityError\n"
        "  logs of `migrate`, previous run: no previous run\n"
        "  events since 10:10:00 UTC:\n"
        "    10:10:06 Warning BackOff pod/worker-r2-q8m4z: Back-off restarting failed "
        "container migrate (x3)"
    )


def test_the_markdown_rendering_survives_pipes_and_backticks_in_logs_and_events() -> None:
    result = Diagnosis(
        name="web",
        namespace=NS,
        summary="container `web` is crash-looping [pod web-1]",
        pod="web-1",
        container="web",
        reason="CrashLoopBackOff",
        exit_code=1,
        logs=(LogExcerpt("web", True, ("```", "a | b", "<script>")),),
        events=(EventLine(None, "Warning", "BackOff", "pod/web-1", "x | y `z` *w*"),),
        since=SINCE,
    )
    md = diagnosis_markdown(result)
    assert "### deployment/web (namespace `shop`)" in md
    assert "container `web` is crash-looping \\[pod web-1\\]" in md
    # a fence longer than any backtick run in the log, and the log verbatim inside it
    assert "````text\n```\na | b\n<script>\n````" in md
    assert "<summary>logs of <code>web</code>, previous run (last 3 lines)</summary>" in md
    assert "|  | Warning | BackOff | pod/web-1 | x \\| y \\`z\\` \\*w\\* |" in md


def test_a_deployment_without_pods_is_diagnosed_from_its_events_alone() -> None:
    cluster = FakeCluster()
    dep = deployment("web", updated=0, total=0)
    cluster.put(dep)
    cluster.events.append(
        event("Deployment", "web", "FailedCreate", "quota exceeded", "2026-11-26T10:10:03Z")
    )
    result = diagnose(cluster, dep, SINCE, None, summary="timed out")
    assert (result.pod, result.container, result.logs) == (None, None, ())
    assert diagnosis_text(result) == [
        "deployment/web (namespace shop): timed out",
        "  events since 10:10:00 UTC:",
        "    10:10:03 Warning FailedCreate deployment/web: quota exceeded",
    ]


# --- what the cluster raises, and what the user reads ---------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "exit_code", "text"),
    [
        (
            401,
            Unauthorized,
            2,
            "the cluster rejected the credentials (401 Unauthorized) trying to "
            "list pods in shop. The kubeconfig's token is invalid or has expired; fetch a fresh "
            "one.",
        ),
        (
            403,
            Forbidden,
            2,
            'the cluster identity may not "list" pods in namespace "shop": pods is '
            'forbidden: User "ci" cannot list resource "pods". Grant the identity "list" on pods in '
            'namespace "shop" (a Role and RoleBinding), or use credentials that have it.',
        ),
        (
            404,
            NotFound,
            2,
            "not found while trying to list pods in shop: the server could not "
            "find the requested resource",
        ),
        (
            422,
            Invalid,
            2,
            'the API server rejected list pods in shop: Deployment.apps "web" is '
            "invalid: spec.template.spec.containers[0].name: Invalid value",
        ),
        (
            503,
            ApiUnavailable,
            3,
            "Kubernetes API: list pods in shop failed with HTTP 503: "
            "etcdserver: leader changed. The cluster's API server is unwell; try again later.",
        ),
    ],
)
def test_api_statuses_become_our_errors_with_one_line_and_an_exit_code(
    status: int, error: type[Exception], exit_code: int, text: str
) -> None:
    messages = {
        401: "Unauthorized",
        403: 'pods is forbidden: User "ci" cannot list resource "pods"',
        404: "the server could not find the requested resource",
        422: 'Deployment.apps "web" is invalid: spec.template.spec.containers[0].name: '
        "Invalid value",
        503: "etcdserver: leader changed",
    }
    exc = kube.from_status(
        status,
        {"kind": "Status", "message": messages[status]},
        "list pods in shop",
        verb="list",
        resource="pods",
        namespace="shop",
    )
    assert type(exc) is error
    assert isinstance(exc, DeployError)
    assert exc.exit_code == exit_code
    assert str(exc) == text


def test_an_api_that_stays_unreachable_ends_the_wait_as_a_service_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connection, "RETRY", Retry(total=1, backoff_factor=0.01))
    monkeypatch.setattr(watch_module, "_GIVE_UP_AFTER_S", 0.5)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "shop"}}],
        "current-context": "x",
    }
    with kube.Cluster.from_kubeconfig_dict(config) as cluster:
        assert cluster.default_namespace == "shop"
        started = time.monotonic()
        with pytest.raises(kube.ApiUnavailable) as info:
            watch_rollouts(cluster, [Target("web", "shop", 2)], timeout_s=120, progress=print)
        # it kept retrying for the (patched) give-up window, not failing on the first refusal;
        # raising at all means it gave up before the 120 s timeout (that would return timed-out)
        assert time.monotonic() - started >= 0.5
    assert info.value.exit_code == 3
    assert str(info.value).startswith(f"Kubernetes API: cannot reach https://127.0.0.1:{port} ")
    assert "not-a-real-token" not in str(info.value)


def test_a_kubeconfig_without_the_asked_context_is_one_input_error() -> None:
    config = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    with pytest.raises(InputError) as info:
        kube.Cluster.from_kubeconfig_dict(config, context="prod")
    assert str(info.value).startswith("kubeconfig: the kubeconfig cannot be used: ")
    assert "\n" not in str(info.value)


def test_an_expired_resource_version_is_a_service_error_not_an_internal_one() -> None:
    exc = kube.from_status(410, {"message": "too old resource version: 5 (9)"}, "watch pods")
    assert isinstance(exc, kube.Expired)
    assert isinstance(exc, DeployError)
    assert exc.exit_code == 3
    assert str(exc) == "Kubernetes API: too old resource version: 5 (9)"


# --- diagnosis is its own phase -------------------------------------------------------------


class SlowLogs(FakeCluster):
    """A kubelet whose log reads hang until released (or meet at a barrier)."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        super().__init__()
        self.release = threading.Event()
        self.barrier = barrier
        self.log_reads = 0

    def pod_logs(
        self, name: str, namespace: str, container: str, *, tail: int = 50, previous: bool = False
    ) -> str:
        self.log_reads += 1
        if self.barrier is not None:
            self.barrier.wait()  # every diagnosis reads at the same time, or this breaks
            return "booting"
        self.release.wait(30)
        return "too late"


def _crashing(cluster: FakeCluster, name: str) -> None:
    cluster.put(deployment(name, updated=1, total=1))
    cluster.put(replicaset(name, 2))
    crashing = pod("pod-crash-loop", name, 2, "x2x7q")
    for status in crashing["status"]["containerStatuses"]:
        status["name"] = name
    crashing["spec"]["containers"][0]["name"] = name
    cluster.put(crashing)


def test_the_watcher_judges_without_reading_a_log_and_keeps_what_the_diagnosis_needs() -> None:
    cluster = SlowLogs()
    _crashing(cluster, "web")
    [result] = watch_rollouts(cluster, [Target("web", NS, 2)], timeout_s=60, progress=print)
    cluster.release.set()
    assert (result.result, result.diagnosis, cluster.log_reads) == ("failed", None, 0)
    assert result.problem is not None and result.problem.state == "CrashLoopBackOff"
    assert result.last_seen is not None and result.last_seen["metadata"]["name"] == "web"


def test_diagnoses_run_at_once_one_thread_per_failed_rollout() -> None:
    cluster = SlowLogs(threading.Barrier(2, timeout=20))
    _crashing(cluster, "web")
    _crashing(cluster, "worker")
    results = watch_rollouts(
        cluster,
        [Target("web", NS, 2), Target("worker", NS, 2)],
        timeout_s=60,
        progress=print,
    )
    diagnosed = diagnose_all(cluster, results, SINCE)
    for r in diagnosed:
        assert r.diagnosis is not None, r.name
        assert r.diagnosis.notes == (), r.diagnosis.notes  # no broken barrier, no budget note
        assert r.diagnosis.logs[0].lines == ("booting",)


def test_a_diagnosis_that_hangs_is_reported_unfinished_after_its_budget() -> None:
    cluster = SlowLogs()
    _crashing(cluster, "web")
    results = watch_rollouts(cluster, [Target("web", NS, 2)], timeout_s=60, progress=print)
    [result] = diagnose_all(cluster, results, SINCE, budget_s=0.2)
    cluster.release.set()
    assert result.diagnosis is not None
    assert result.diagnosis.notes == ("the diagnosis did not finish within its 0.2s budget",)
    assert result.diagnosis.summary == result.reason


def test_a_cancel_stops_waiting_for_the_diagnosis() -> None:
    cluster = SlowLogs()
    _crashing(cluster, "web")
    results = watch_rollouts(cluster, [Target("web", NS, 2)], timeout_s=60, progress=print)
    cancel = threading.Event()
    run_in_background(None, (0.1, cancel.set))
    [result] = diagnose_all(cluster, results, SINCE, budget_s=120, cancel=cancel)
    cluster.release.set()
    assert result.diagnosis is not None
    assert result.diagnosis.notes == ("the diagnosis was cancelled",)


def test_green_and_cancelled_rollouts_are_not_diagnosed() -> None:
    green = RolloutResult("web", NS, "succeeded", "successfully rolled out", 1.0)
    stopped = RolloutResult("beat", NS, "cancelled", "cancelled while waiting: x", 1.0)
    assert diagnose_all(FakeCluster(), [green, stopped], SINCE) == [green, stopped]


@pytest.mark.parametrize(
    "message",
    [
        "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'no-latest' with binding "
        "'no-latest' denied request: images must be pinned",
        'deployments.apps "web" is forbidden: exceeded quota: compute, requested: '
        "requests.cpu=2, used: requests.cpu=3, limited: requests.cpu=4",
        'pods "web-1" is forbidden: violates PodSecurity "restricted:latest": '
        "allowPrivilegeEscalation != false",
    ],
)
def test_a_403_from_admission_is_the_object_refused_not_a_missing_right(message: str) -> None:
    exc = kube.from_status(
        403, {"message": message}, "apply deployment/web", verb="patch", resource="deployments"
    )
    assert type(exc) is Invalid
    assert "may not" not in str(exc) and "Grant the identity" not in str(exc)
    assert message in str(exc)


def test_a_403_from_the_authorizer_still_names_the_missing_right() -> None:
    message = (
        'deployments.apps "web" is forbidden: User "system:serviceaccount:ci:deployer" cannot '
        'patch resource "deployments" in API group "apps" in the namespace "shop"'
    )
    exc = kube.from_status(
        403, {"message": message}, "apply", verb="patch", resource="deployments", namespace="shop"
    )
    assert type(exc) is Forbidden
    assert 'Grant the identity "patch" on deployments in namespace "shop"' in str(exc)


def test_replicasets_are_watched_only_where_a_deployment_is_waited_for() -> None:
    cluster = FakeCluster()
    job = yaml.safe_load(
        (Path(__file__).parent / "snapshots" / "workloads" / "job-complete.yaml").read_text()
    )
    job["metadata"]["namespace"] = "jobs"
    cluster.put(job)
    cluster.put(deployment("web", updated=2, total=2, available=2))
    cluster.put(replicaset("web", 2))
    results = watch_rollouts(
        cluster,
        [Target(job["metadata"]["name"], "jobs", kind="Job"), Target("web", NS, 2)],
        timeout_s=30,
        progress=print,
    )
    assert [r.result for r in results] == ["succeeded", "succeeded"]
    watched = {(kind, ns) for kind, ns, _ in cluster.streams}
    assert ("ReplicaSet", NS) in watched
    assert ("ReplicaSet", "jobs") not in watched
    assert {("Job", "jobs"), ("Pod", "jobs")} <= watched


class SignalSeeingCluster(FakeCluster):
    """Notes, at each list, whether a signal would raise right then."""

    def __init__(self, interrupt: Interrupt) -> None:
        super().__init__()
        self.interrupt = interrupt
        self.raised_on_signal: list[bool] = []

    def list_objects(self, collection: Any, namespace: str) -> Any:
        self.raised_on_signal.append(self.interrupt.raise_on_signal)
        return super().list_objects(collection, namespace)


@pytest.mark.parametrize("raised_before", [True, False], ids=["deploy", "wait"])
def test_watch_reported_holds_signals_back_only_while_it_watches(raised_before: bool) -> None:
    # The deploy raises on a signal outside the watch; `wait` never does: each gets back its own.
    interrupt = Interrupt()
    interrupt.raise_on_signal = raised_before
    cluster = SignalSeeingCluster(interrupt)
    cluster.put(deployment("web", updated=2, total=2, available=2))
    cluster.put(replicaset("web", 2))
    reporter = Reporter(github=False, stream=io.StringIO())
    run = make_run(reporter=reporter, interrupt=interrupt)
    [result] = watch_reported(run, cluster, [Target("web", NS, 2)], 30)
    assert result.result == "succeeded"
    assert cluster.raised_on_signal and not any(cluster.raised_on_signal)
    assert interrupt.raise_on_signal is raised_before
