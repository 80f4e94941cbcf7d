"""The diagnosis against the fake cluster, from YAML snapshots: it shows a pod of the revision being
rolled out (the watcher's own rule), never an older one, and each distinct log excerpt once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from deployer.diagnose import _distinct, _logs, diagnose
from deployer.objects import Container
from deployer.report import diagnosis_markdown, diagnosis_text
from deployer.results import Diagnosis, LogExcerpt
from deployer.status import pod_verdict
from deployer.workloads import workload_verdict
from tests.unit.fake_cluster import FakeCluster, deployment, pod, replicaset

SNAPSHOTS = Path(__file__).parent / "snapshots" / "workloads"
SINCE = datetime(2026, 11, 26, 10, 10, 0, tzinfo=UTC)


def snap(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((SNAPSHOTS / f"{name}.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def cluster_with(workload: dict[str, Any], pods: str) -> FakeCluster:
    cluster = FakeCluster()
    cluster.put(workload)
    for doc in yaml.safe_load_all((SNAPSHOTS / f"{pods}.yaml").read_text()):
        cluster.put(doc)  # in file order: the older revision's pods come first
    return cluster


def test_a_statefulset_timed_out_mid_update_is_diagnosed_from_its_update_revision_pod() -> None:
    # db-0, listed first, is an old-revision pod crash-looping on the old image: reporting it
    # would blame this deploy for the crash it is meant to fix.
    sts = snap("statefulset-rolling-update-in-progress")
    sts["status"]["readyReplicas"] = 1
    cluster = cluster_with(sts, "statefulset-pods-old-revision-crashing")
    cluster.logs["antisocial-db-0", "db", False] = "old crash"
    cluster.logs["antisocial-db-0", "db", True] = "old crash"
    result = diagnose(cluster, sts, SINCE, None, summary="timed out")
    assert result == Diagnosis(
        name="antisocial-db",
        namespace="antisocial",
        summary="timed out",
        pod="antisocial-db-2",
        container="db",
        reason="ContainerCreating",
        logs=(
            LogExcerpt("db", False, (), "no logs: the container never started (ContainerCreating)"),
            LogExcerpt("db", True, (), "no previous run"),
        ),
        since=SINCE,
        kind="StatefulSet",
    )


def test_a_daemonset_timed_out_mid_update_is_diagnosed_from_its_new_template_pod() -> None:
    ds = snap("daemonset-updating")
    cluster = cluster_with(ds, "daemonset-pods-mid-update")
    cluster.logs["antisocial-logs-a7k2p", "logs", False] = "old template"
    cluster.logs["antisocial-logs-c9m4q", "logs", False] = "readiness: shipper not connected"
    result = diagnose(cluster, ds, SINCE, None, summary="timed out")
    assert (result.pod, result.container, result.reason, result.exit_code) == (
        "antisocial-logs-c9m4q",
        "logs",
        "NotReady",
        None,
    )
    assert result.logs == (
        LogExcerpt("logs", False, ("readiness: shipper not connected",)),
        LogExcerpt("logs", True, (), "no previous run"),
    )


def test_a_statefulset_whose_controller_has_not_seen_our_generation_shows_no_older_pod() -> None:
    # Generation 5 applied, the controller still at 4: its updateRevision, and so every pod it
    # labels with it, still belong to the older spec.
    sts = snap("statefulset-rolling-update-in-progress")
    sts["metadata"]["generation"] = 5
    cluster = cluster_with(sts, "statefulset-pods-old-revision-crashing")
    result = diagnose(cluster, sts, SINCE, None, summary="timed out")
    assert (result.pod, result.container, result.logs, result.notes) == (None, None, (), ())


def test_a_failed_job_is_diagnosed_from_the_failed_pod_the_watcher_named() -> None:
    # Ended pods are not judged by the fail-fast table, but they are the Job's and its diagnosis.
    job = snap("job-backoff-limit-exceeded")
    cluster = cluster_with(job, "job-pods")
    cluster.logs["antisocial-migrate-9b2d771-abcde", "migrate", False] = "IntegrityError"
    verdict, problem, _ = workload_verdict(job, [], cluster.list_pods("antisocial"))
    assert problem is not None
    result = diagnose(cluster, job, SINCE, problem, summary=verdict.message)
    assert (result.pod, result.container, result.reason, result.exit_code) == (
        "antisocial-migrate-9b2d771-abcde",
        "migrate",
        "Error",
        3,
    )
    assert result.logs == (LogExcerpt("migrate", False, ("IntegrityError",), run="last run"),)


# --- logs: each distinct excerpt once ----------------------------------------------------------


def crash_looping_web(log: str, previous_log: str) -> tuple[FakeCluster, Diagnosis]:
    cluster = FakeCluster()
    dep = deployment("web", updated=1, total=1)
    cluster.put(dep)
    cluster.put(replicaset("web", 2))
    crashing = pod("pod-crash-loop", "web", 2, "x2x7q")
    cluster.put(crashing)
    cluster.logs["web-r2-x2x7q", "web", False] = log
    cluster.logs["web-r2-x2x7q", "web", True] = previous_log
    return cluster, diagnose(cluster, dep, SINCE, pod_verdict(crashing))


def test_a_crash_looping_containers_last_run_served_as_both_logs_is_shown_once() -> None:
    # Between restarts a kubelet answers both reads with the exited run's log.
    last_run = "booting\nImproperlyConfigured: SECRET_KEY must not be empty"
    _, result = crash_looping_web(last_run, last_run)
    assert result.logs == (
        LogExcerpt(
            "web",
            False,
            ("booting", "ImproperlyConfigured: SECRET_KEY must not be empty"),
            run="last run",
        ),
    )
    text = diagnosis_text(result)
    assert text.count("  logs of `web`, last run (last 2 lines):") == 1
    assert sum("| ImproperlyConfigured" in line for line in text) == 1
    assert not any("current run" in line or "previous run" in line for line in text)
    md = diagnosis_markdown(result)
    assert md.count("ImproperlyConfigured: SECRET_KEY must not be empty") == 1
    assert "<summary>logs of <code>web</code>, last run (last 2 lines)</summary>" in md


def test_a_running_container_after_restarts_shows_both_runs_when_they_differ() -> None:
    cluster = FakeCluster()
    dep = deployment("web", updated=1, total=1)
    cluster.put(dep)
    cluster.put(replicaset("web", 2))
    restarted = pod("pod-crash-loop", "web", 2, "x2x7q")
    status = restarted["status"]["containerStatuses"][0]
    status["state"] = {"running": {"startedAt": "2026-11-26T10:11:30Z"}}
    cluster.put(restarted)
    cluster.logs["web-r2-x2x7q", "web", False] = "booting\nexit 1"
    cluster.logs["web-r2-x2x7q", "web", True] = "booting\nexit 2"
    result = diagnose(cluster, dep, SINCE, None)
    assert [(e.title, e.lines) for e in result.logs] == [
        ("logs of `web`, current run", ("booting", "exit 1")),
        ("logs of `web`, previous run", ("booting", "exit 2")),
    ]


def test_a_crash_loop_shows_its_last_run_once_and_never_reads_the_previous_one() -> None:
    # Between restarts, a real kubelet's --previous answers an error text with status 200.
    _, result = crash_looping_web("booting\nexit 1", "unable to retrieve container logs")
    assert result.logs == (LogExcerpt("web", False, ("booting", "exit 1"), run="last run"),)


def test_the_kubelets_error_text_is_a_note_never_a_log() -> None:
    cs: dict[str, Any] = {"restartCount": 2, "state": {"running": {"startedAt": "x"}}}
    error = "unable to retrieve container logs for containerd://3f9a0c2e7d1b4a6c"
    cluster = FakeCluster()
    cluster.logs["p", "web", True] = error
    cluster.logs["p", "web", False] = "serving"
    web = Container("p", "web", False, cs)
    assert _logs(cluster, "p", "shop", web, previous=True) == LogExcerpt(
        "web", True, (), f"logs unavailable: {error}"
    )
    assert _logs(cluster, "p", "shop", web, previous=False).lines == ("serving",)


def test_a_running_container_whose_runs_print_the_same_lines_says_so_once() -> None:
    cs: dict[str, Any] = {"state": {"running": {"startedAt": "2026-11-26T10:10:30Z"}}}
    same = LogExcerpt("web", False, ("booting",))
    web = Container("p", "web", False, cs)
    assert _distinct(same, LogExcerpt("web", True, ("booting",)), web) == (
        LogExcerpt("web", False, ("booting",), run="current and previous run (the same lines)"),
    )
    # Two notes and no lines are both kept: each says why its run has none.
    empty = (
        LogExcerpt("web", False, (), "no output"),
        LogExcerpt("web", True, (), "no output"),
    )
    assert _distinct(*empty, web) == empty


def test_a_timed_out_job_is_diagnosed_from_its_running_retry_not_an_ended_attempt() -> None:
    # abcde failed first and is listed first; fghij is the retry still pending when time ran out.
    job = snap("job-running")
    cluster = cluster_with(job, "job-pods")
    result = diagnose(cluster, job, SINCE, None, summary="timed out")
    assert result.pod == "antisocial-migrate-9b2d771-fghij"
