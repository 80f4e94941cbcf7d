"""Green means it stays up (issue 17): the false greens a real kubelet showed, as sequences of pod
snapshots through `workload_verdict` with a fake clock, and the settle window's clock itself.

The sequences follow the statuses a kubelet v1.36 produced (times from the pod's start): a
container without a readiness probe is Ready the moment it starts, so the Deployment is done by
kubectl's definition an instant before the first crash; between restarts the container sits
`terminated`; back-offs of 10 s, 20 s, 40 s.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from deployer.status import Verdict
from deployer.watch import Target, watch_rollouts
from deployer.workloads import ContainerClock, workload_verdict
from tests.unit.fake_cluster import NS, FakeCluster, deployment, pod, replicaset

T0 = datetime(2026, 12, 5, 21, 14, 2, tzinfo=UTC).timestamp()  # the pod starts (node clock)
SETTLE = 10.0
NAME = "worker-r2-a1b2c"
SUBJECT = "deployment/worker"
SETTLING = f"{SUBJECT}: rolled out, settling: green once its new containers have been up 10s"


def stamp(seconds: float) -> str:
    """A kubelet timestamp `seconds` after T0 on the node's clock (RFC 3339, whole seconds)."""
    return datetime.fromtimestamp(int(T0 + seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def running(restarts: int, since: float, *, ready: bool = True) -> dict[str, Any]:
    return {"restartCount": restarts, "ready": ready, "running": {"startedAt": stamp(since)}}


def ended(restarts: int, at: float, code: int = 3, reason: str = "Error") -> dict[str, Any]:
    return {
        "restartCount": restarts,
        "ready": False,
        "terminated": {
            "exitCode": code,
            "reason": reason,
            "startedAt": stamp(at),
            "finishedAt": stamp(at),
        },
    }


def worker_pod(state: dict[str, Any], *, limit: str | None = None) -> dict[str, Any]:
    doc = pod("pod-kubelet-crash-loop-running-again", "worker", 2)
    cs = doc["status"]["containerStatuses"][0]
    cs["restartCount"] = state["restartCount"]
    cs["ready"] = state["ready"]
    cs["started"] = "running" in state
    cs["state"] = {k: v for k, v in state.items() if k in ("running", "terminated", "waiting")}
    if "terminated" in state:
        cs["lastState"] = {"terminated": state["terminated"]}
    for cond in doc["status"]["conditions"]:
        if cond["type"] in ("Ready", "ContainersReady"):
            cond["status"] = "True" if state["ready"] else "False"
    if limit:
        doc["spec"]["containers"][0]["resources"] = {"limits": {"memory": limit}}
    return doc


class Watcher:
    """The watcher's judging loop with a fake clock: `see(t, ...)` is one evaluation at `t`
    seconds after T0 on the runner's monotonic clock, whose wall clock is `skew` ahead of the
    node's."""

    def __init__(self, *, settle_s: float = SETTLE, skew: float = 0.0) -> None:
        self.settle_s = settle_s
        self.clock = ContainerClock(epoch=T0 + skew)

    def see(self, t: float, pods: Sequence[dict[str, Any]], *, done: bool = True) -> Verdict:
        n = len(pods)
        dep = deployment("worker", replicas=n, updated=n, available=n if done else 0)
        verdict, _problem, _pods = workload_verdict(
            dep,
            [replicaset("worker", 2)],
            list(pods),
            2,
            settle_s=self.settle_s,
            up_for=lambda p, cs: self.clock.up_for(p, cs, t),
        )
        return verdict


def crash_loop_sequence(crash_after: float) -> list[tuple[float, dict[str, Any], bool]]:
    """A container that exits 3 `crash_after` seconds after each start, as a kubelet runs it:
    the first restart at once, then back-offs of 10 s and 20 s. (time, state, kubectl done)."""
    start = 0.5
    first_end = start + crash_after
    second_start = first_end + 0.2
    second_end = second_start + crash_after
    third_start = second_end + 10.0
    third_end = third_start + crash_after
    return [
        (start + 0.1, running(0, start), True),
        (first_end, ended(0, first_end), True),
        (second_start + 0.05, running(1, second_start), True),
        (second_end, ended(1, second_end), False),
        (third_start + 0.05, running(2, third_start), True),
        (third_end, ended(2, third_end), False),
    ]


def first_red(watcher: Watcher, sequence: list[tuple[float, dict[str, Any], bool]]) -> Any:
    """The first verdict that is done, and when; every one before it must be open."""
    for t, state, done in sequence:
        verdict = watcher.see(t, [worker_pod(state)], done=done)
        if verdict.done:
            return t, verdict
    raise AssertionError("no verdict")


# --- the false greens of issue 17, each red now ------------------------------------------------


def test_a_container_without_a_probe_that_exits_at_once_is_red_not_green() -> None:
    sequence = crash_loop_sequence(crash_after=0.01)
    # Before: kubectl's done at the first snapshot was the verdict, green at 0.6 s.
    t, state, _done = sequence[0]
    assert workload_verdict(
        deployment("worker", replicas=1, updated=1, available=1),
        [replicaset("worker", 2)],
        [worker_pod(state)],
        2,
    )[0] == Verdict(True, True, f"{SUBJECT}: successfully rolled out")
    # Now: settling while it runs and between restarts, red at its third run's end (~12 s).
    watcher = Watcher()
    assert watcher.see(t, [worker_pod(state)]) == Verdict(False, False, SETTLING)
    assert watcher.see(sequence[1][0], [worker_pod(sequence[1][1])]) == Verdict(
        False,
        False,
        f"{SUBJECT}: rolled out, settling (10s): pod {NAME}: container `worker` exited 3 (Error)",
    )
    when, verdict = first_red(Watcher(), sequence)
    assert when == sequence[-1][0]
    assert verdict == Verdict(
        True,
        False,
        f"{SUBJECT}: container `worker` is crash-looping: last run exited 3 (Error), "
        f"restarted 2 times [pod {NAME}]",
    )


def test_a_container_that_exits_after_three_seconds_is_red_not_green() -> None:
    sequence = crash_loop_sequence(crash_after=3.0)
    watcher = Watcher()
    # Up 2.9 s of 10 s just before the crash: still settling, never green.
    assert watcher.see(0.6, [worker_pod(running(0, 0.5))]) == Verdict(False, False, SETTLING)
    assert watcher.see(3.4, [worker_pod(running(0, 0.5))]) == Verdict(False, False, SETTLING)
    when, verdict = first_red(Watcher(), sequence)
    assert round(when, 1) == 19.7
    assert verdict.message == (
        f"{SUBJECT}: container `worker` is crash-looping: last run exited 3 (Error), "
        f"restarted 2 times [pod {NAME}]"
    )


def test_an_oom_kill_at_start_is_red_with_the_memory_limit_not_green() -> None:
    watcher = Watcher()
    seen = [
        (0.6, running(0, 0.5), True),
        (1.3, ended(0, 1.3, 137, "OOMKilled"), True),
        (1.5, running(1, 1.5), True),
        (2.2, ended(1, 2.2, 137, "OOMKilled"), False),
        (12.2, running(2, 12.2), True),
        (12.9, ended(2, 12.9, 137, "OOMKilled"), False),
    ]
    verdicts = [watcher.see(t, [worker_pod(s, limit="50Mi")], done=d) for t, s, d in seen]
    assert not any(v.done for v in verdicts[:-1])
    assert verdicts[-1] == Verdict(
        True,
        False,
        f"{SUBJECT}: container `worker` is crash-looping: last run was OOMKilled at its memory "
        f"limit of 50Mi (exit 137), restarted 2 times [pod {NAME}]",
    )


def test_a_crash_loop_whose_readiness_never_passes_is_red_at_its_third_run_not_at_48_s() -> None:
    # Never Ready, so never done: only the crash-loop rule can end it. A kubelet shows the
    # waiting reason for a fraction of a second; these snapshots never catch it.
    sequence = [(t, {**s, "ready": False}, False) for t, s, _ in crash_loop_sequence(2.0)]
    when, verdict = first_red(Watcher(), sequence)
    assert round(when, 1) == 16.7
    assert "is crash-looping: last run exited 3 (Error), restarted 2 times" in verdict.message


def test_the_example_apps_worker_with_a_broken_tasks_module_is_red_not_green() -> None:
    # Two replicas (worker and its twin), each crashing ~2.5 s after start at import.
    watcher = Watcher()
    a, b = worker_pod(running(0, 0.5)), worker_pod(running(0, 0.7))
    b["metadata"]["name"], b["metadata"]["uid"] = "worker-r2-d3e4f", "uid-worker-r2-d3e4f"
    assert watcher.see(1.0, [a, b]) == Verdict(False, False, SETTLING)
    states = [
        (3.0, ended(0, 3.0)),
        (3.2, running(1, 3.2)),
        (5.7, ended(1, 5.7)),
        (15.7, running(2, 15.7)),
    ]
    for t, state in states:
        assert not watcher.see(t, [worker_pod(state), b], done=False).done
    red = watcher.see(18.2, [worker_pod(ended(2, 18.2)), b], done=False)
    assert red.done and not red.ok


# --- the restart tolerance's purpose, and what green costs --------------------------------------


def test_a_worker_that_crashes_once_while_its_database_starts_still_goes_green() -> None:
    watcher = Watcher()
    assert watcher.see(0.6, [worker_pod(running(0, 0.5))]) == Verdict(False, False, SETTLING)
    assert not watcher.see(2.5, [worker_pod(ended(0, 2.5, 1))]).done
    assert watcher.see(2.8, [worker_pod(running(1, 2.7))]) == Verdict(False, False, SETTLING)
    # The window counts from its latest start (2.7 s): not at 12.5, green from 12.8.
    assert watcher.see(12.5, [worker_pod(running(1, 2.7))]) == Verdict(False, False, SETTLING)
    assert watcher.see(12.9, [worker_pod(running(1, 2.7))]) == Verdict(
        True, True, f"{SUBJECT}: successfully rolled out"
    )


def test_settle_zero_is_kubectls_done() -> None:
    watcher = Watcher(settle_s=0)
    assert watcher.see(0.6, [worker_pod(running(0, 0.5))]) == Verdict(
        True, True, f"{SUBJECT}: successfully rolled out"
    )


def test_pods_up_longer_than_the_window_pay_nothing_once_the_nodes_clock_is_bounded() -> None:
    # A pod up since 5 minutes before the deploy, and a new one seen starting on the same node:
    # the new one bounds the node clock's offset, so the old one's age counts in full.
    watcher = Watcher()
    old = worker_pod(running(0, -300.0))
    old["metadata"]["name"], old["metadata"]["uid"] = "worker-r2-old00", "uid-worker-r2-old00"
    fresh = worker_pod(running(0, 0.5))
    assert watcher.see(0.6, [old, fresh]) == Verdict(False, False, SETTLING)
    assert watcher.see(11.6, [old, fresh]) == Verdict(
        True, True, f"{SUBJECT}: successfully rolled out"
    )
    # Alone, with no fresh start to bound the node's clock, it pays the window once.
    alone = Watcher()
    assert not alone.see(0.6, [old]).done
    assert alone.see(10.7, [old]).ok


def test_a_node_clock_ahead_of_the_runner_never_shortens_the_window() -> None:
    # The node's clock an hour ahead: its startedAt looks an hour old to a naive reader.
    for skew in (-3600.0, -1.5, 0.0, 2.0, 3600.0):
        watcher = Watcher(skew=skew)
        assert watcher.see(0.6, [worker_pod(running(0, 0.5))]) == Verdict(False, False, SETTLING)
        assert not watcher.see(10.0, [worker_pod(running(0, 0.5))]).done, skew
        assert watcher.see(10.7, [worker_pod(running(0, 0.5))]).ok, skew


def test_a_done_rollout_whose_pods_the_watcher_has_not_seen_yet_is_not_green() -> None:
    verdict, _, _ = workload_verdict(
        deployment("worker", replicas=1, updated=1, available=1),
        [replicaset("worker", 2)],
        [],
        2,
        settle_s=SETTLE,
        up_for=lambda p, cs: None,
    )
    assert verdict == Verdict(
        False, False, f"{SUBJECT}: rolled out, settling: waiting to see its new pods"
    )


def test_jobs_are_not_settled() -> None:
    job = copy.deepcopy(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "shop", "uid": "uid-job"},
            "spec": {"completions": 1},
            "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]},
        }
    )
    verdict, _, _ = workload_verdict(job, [], [], settle_s=SETTLE, up_for=lambda p, c: None)
    assert verdict == Verdict(True, True, "job/migrate: complete (1 of 1 succeeded)")


def test_the_clock_counts_from_the_latest_start_and_a_restart_starts_it_again() -> None:
    clock = ContainerClock(epoch=T0)
    p = worker_pod(running(0, 0.5))
    cs = p["status"]["containerStatuses"][0]
    assert clock.up_for(p, cs, 1.0) is not None
    up = clock.up_for(p, cs, 6.0)
    assert up is not None and 4.9 <= up <= 5.5
    restarted = worker_pod(running(1, 6.5))
    cs2 = restarted["status"]["containerStatuses"][0]
    again = clock.up_for(restarted, cs2, 7.0)
    assert again is not None and again <= 0.5
    assert clock.up_for(worker_pod(ended(1, 8.0)), cs2 | {"state": {"terminated": {}}}, 8.0) is None


# --- through the watcher (real time, a short window) -------------------------------------------


def test_the_watcher_holds_a_done_rollout_to_the_window_and_a_crash_in_it_is_red() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("worker", replicas=1, updated=1, available=1))
    cluster.put(replicaset("worker", 2))
    cluster.put(worker_pod(running(0, 0.0)))
    lines: list[str] = []

    def crash() -> None:
        for state in (ended(0, 1.0), running(1, 1.0), ended(1, 1.0), running(2, 1.0)):
            cluster.put(worker_pod(state))
        cluster.put(worker_pod(ended(2, 1.0)))

    timer = threading.Timer(0.3, crash)
    timer.start()
    [result] = watch_rollouts(
        cluster, [Target("worker", NS, 2)], timeout_s=10, progress=lines.append, settle_s=5.0
    )
    timer.join()
    assert (result.result, result.reason) == (
        "failed",
        "container `worker` is crash-looping: last run exited 3 (Error), restarted 2 times "
        f"[pod {NAME}]",
    )
    assert lines[0] == SETTLING.replace("10s", "5s")


def test_the_watcher_calls_green_once_the_window_has_passed() -> None:
    cluster = FakeCluster()
    cluster.put(deployment("worker", replicas=1, updated=1, available=1))
    cluster.put(replicaset("worker", 2))
    cluster.put(worker_pod(running(0, 0.0)))
    started = time.monotonic()
    [result] = watch_rollouts(
        cluster, [Target("worker", NS, 2)], timeout_s=10, progress=lambda _: None, settle_s=0.6
    )
    assert (result.result, result.reason) == ("succeeded", "successfully rolled out")
    assert 0.6 <= time.monotonic() - started < 2.0


def status_written(doc: dict[str, Any], at: float, manager: str = "kubelet") -> dict[str, Any]:
    """The pod with its status last changed `at` seconds after T0 on the API server's clock."""
    doc["metadata"]["managedFields"] = [
        {"manager": "kube-controller-manager", "operation": "Update", "time": stamp(-900)},
        {"manager": manager, "operation": "Update", "subresource": "status", "time": stamp(at)},
    ]
    return doc


def test_a_pod_whose_status_was_written_long_ago_by_the_servers_clock_is_settled_at_once() -> None:
    # `deployer wait` on a Deployment finished 5 minutes ago: its pod's status was last written
    # then, and the API server's Date says it is now; no window to pay.
    old = status_written(worker_pod(running(0, -300.0)), -299.0)
    for server_ahead in (0.0, -3600.0, 3600.0):  # the API server's clock against ours
        clock = ContainerClock(epoch=T0, server_ahead=lambda a=server_ahead: a)
        cs = old["status"]["containerStatuses"][0]
        shifted = status_written(
            copy.deepcopy(old), -299.0 + server_ahead
        )  # its stamps are on its clock
        up = clock.up_for(shifted, cs, 0.5)
        assert up is not None and 298.0 <= up <= 300.5, (server_ahead, up)
    watcher = Watcher()
    watcher.clock = ContainerClock(epoch=T0, server_ahead=lambda: 0.0)
    assert watcher.see(0.5, [old]) == Verdict(True, True, f"{SUBJECT}: successfully rolled out")


def test_a_status_written_just_now_or_no_server_date_credits_nothing_more() -> None:
    # A container started 1 s ago and reported at once: the status bound says ~0 s, not more.
    fresh = status_written(worker_pod(running(0, 0.5)), 0.6)
    clock = ContainerClock(epoch=T0, server_ahead=lambda: 0.0)
    cs = fresh["status"]["containerStatuses"][0]
    up = clock.up_for(fresh, cs, 1.0)
    assert up is not None and up <= 0.5
    # No Date from the server (plain HTTP, insecure TLS, a fake): only what we saw counts.
    old = status_written(worker_pod(running(0, -300.0)), -299.0)
    blind = Watcher()
    assert not blind.see(0.5, [old]).done
    # An entry for the main resource (metadata, spec) says nothing about the status.
    spec_only = worker_pod(running(0, -300.0))
    spec_only["metadata"]["managedFields"] = [
        {"manager": "kubectl", "operation": "Apply", "time": stamp(-299.0)}
    ]
    dated = Watcher()
    dated.clock = ContainerClock(epoch=T0, server_ahead=lambda: 0.0)
    assert not dated.see(0.5, [spec_only]).done


def test_a_crash_after_a_status_written_long_ago_is_still_caught() -> None:
    # The old run ended and the kubelet wrote that: the newer status write restarts the bound.
    clock = ContainerClock(epoch=T0, server_ahead=lambda: 0.0)
    restarted = status_written(worker_pod(running(1, 4.0)), 4.0)
    cs = restarted["status"]["containerStatuses"][0]
    up = clock.up_for(restarted, cs, 5.0)
    assert up is not None and up <= 1.0
