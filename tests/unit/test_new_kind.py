"""A new workload kind is one verdict function and one `KINDS` row: with only that, the watcher
lists and watches it, judges it and its pods, and the diagnosis shows its pods. Nothing else
(watch.py, diagnose.py, rollouts.py, the report) is edited, so nothing else may know a kind."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from deployer import workloads
from deployer.diagnose import diagnose_all
from deployer.objects import controller_uid, get, name
from deployer.results import Target
from deployer.status import Verdict
from deployer.watch import watch_rollouts
from tests.unit.fake_cluster import NS, FakeCluster, pod

Obj = Mapping[str, Any]


def rollout_verdict(obj: Obj, applied_generation: int | None = None) -> Verdict:
    """A made-up kind: done when `status.phase` is Healthy, red when Degraded."""
    del applied_generation
    phase = get(obj, "status", "phase")
    subject = f"rollout/{name(obj)}"
    if phase == "Healthy":
        return Verdict(True, True, f"{subject}: healthy")
    if phase == "Degraded":
        return Verdict(True, False, f"{subject}: degraded")
    return Verdict(False, False, f"{subject}: progressing")


def rollout_pods(obj: Obj, replicasets: Sequence[Obj], pods: Sequence[Obj]) -> list[Obj]:
    del replicasets
    uid = get(obj, "metadata", "uid")
    return [p for p in pods if controller_uid(p) == uid]


@pytest.fixture
def rollout_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    row = workloads.Kind("Rollout", rollout_verdict, rollout_pods, "example.io/v1", "rollouts")
    monkeypatch.setitem(workloads.KINDS, "Rollout", row)


def rollout(phase: str) -> dict[str, Any]:
    return {
        "apiVersion": "example.io/v1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": NS, "uid": "uid-rollout-web", "generation": 1},
        "status": {"phase": phase, "observedGeneration": 1},
    }


def owned_pod(snapshot: str) -> dict[str, Any]:
    doc = copy.deepcopy(pod(snapshot, "web", 1))
    doc["metadata"]["ownerReferences"] = [
        {"kind": "Rollout", "name": "web", "uid": "uid-rollout-web", "controller": True}
    ]
    return doc


@pytest.mark.usefixtures("rollout_kind")
def test_a_new_kind_goes_green_through_the_watcher_with_only_its_row() -> None:
    cluster = FakeCluster()
    cluster.put(rollout("Progressing"))
    timer = threading.Timer(0.3, lambda: cluster.put(rollout("Healthy")))
    timer.start()
    [result] = watch_rollouts(
        cluster, [Target("web", NS, 1, kind="Rollout")], timeout_s=10, progress=lambda _: None
    )
    timer.join()
    assert (result.subject, result.result, result.reason) == ("rollout/web", "succeeded", "healthy")


@pytest.mark.usefixtures("rollout_kind")
def test_a_new_kinds_doomed_pod_is_red_and_diagnosed_from_that_pod() -> None:
    cluster = FakeCluster()
    cluster.put(rollout("Progressing"))
    cluster.put(owned_pod("pod-image-not-found"))
    started = time.monotonic()
    [result] = watch_rollouts(
        cluster, [Target("web", NS, 1, kind="Rollout")], timeout_s=10, progress=lambda _: None
    )
    assert time.monotonic() - started < 5
    assert result.result == "failed"
    assert result.problem is not None and result.problem.state == "ImagePullFailed"
    [diagnosed] = diagnose_all(cluster, [result], datetime(2026, 1, 1, tzinfo=UTC))
    assert diagnosed.diagnosis is not None
    assert diagnosed.diagnosis.subject == "rollout/web"
    assert diagnosed.diagnosis.pod == "web-r1-a1b2c"
