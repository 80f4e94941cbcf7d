"""StatefulSet, DaemonSet and Job verdicts from YAML snapshots; each test compares the whole value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deployer.results import PodProblem
from deployer.status import Verdict
from deployer.workloads import (
    KINDS,
    NOT_WAITED_KINDS,
    daemonset_pods,
    daemonset_verdict,
    job_failure,
    job_pods,
    job_verdict,
    statefulset_pods,
    statefulset_verdict,
    workload_verdict,
)

SNAPSHOTS = Path(__file__).parent / "snapshots" / "workloads"
DB = "statefulset/antisocial-db"
LOGS = "daemonset/antisocial-logs"
MIGRATE = "job/antisocial-migrate-9b2d771"
IMAGE = "registry.digitalocean.com/team/antisocial:9b2d771"
ON_DELETE = (
    "applied, not waited for: rollout status is only available for RollingUpdate strategy "
    "type (updateStrategy OnDelete: its pods change only when they are deleted)"
)


def snap(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((SNAPSHOTS / f"{name}.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def snaps(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((SNAPSHOTS / f"{name}.yaml").read_text()))


# --- StatefulSets: kubectl's rules --------------------------------------------------------------


def test_a_statefulset_with_every_pod_at_the_update_revision_is_green() -> None:
    sts = snap("statefulset-rolling-update-complete")
    assert statefulset_verdict(sts, 3) == Verdict(
        True, True, f"{DB}: rolling update complete: 3 pods updated"
    )
    del sts["spec"]["updateStrategy"]["rollingUpdate"]  # no partition: kubectl compares revisions
    assert statefulset_verdict(sts, 3) == Verdict(
        True, True, f"{DB}: rolling update complete: 3 pods at revision antisocial-db-6c9f8d7b5"
    )


def test_partition_zero_is_judged_by_the_updated_count_like_kubectl() -> None:
    sts = snap("statefulset-rolling-update-in-progress")
    sts["spec"]["updateStrategy"]["rollingUpdate"] = {"partition": 0}
    assert statefulset_verdict(sts, 4) == Verdict(False, False, f"{DB}: 1 of 3 pods updated")


def test_a_statefulset_generation_we_applied_but_not_observed_keeps_us_waiting() -> None:
    assert statefulset_verdict(snap("statefulset-rolling-update-complete"), 4) == Verdict(
        False,
        False,
        f"{DB}: waiting for the statefulset controller to observe generation 4 (observed 3)",
    )


def test_ready_pods_at_two_revisions_are_a_rolling_update_still_going() -> None:
    assert statefulset_verdict(snap("statefulset-rolling-update-in-progress"), 4) == Verdict(
        False,
        False,
        f"{DB}: waiting for the rolling update to complete: 1 of 3 pods at revision "
        "antisocial-db-7d4e5f6a8",
    )


def test_pods_not_ready_come_first_as_in_kubectl() -> None:
    assert statefulset_verdict(snap("statefulset-pods-not-ready")) == Verdict(
        False, False, f"{DB}: 1 of 3 pods are ready"
    )


def test_a_partitioned_statefulset_is_done_once_the_partitions_share_is_updated() -> None:
    sts = snap("statefulset-partitioned")
    assert statefulset_verdict(sts, 5) == Verdict(
        True,
        True,
        f"{DB}: partitioned rollout complete: 1 of 3 pods updated, partition 2 keeps the rest "
        "at the old revision",
    )
    sts["status"]["updatedReplicas"] = 0
    assert statefulset_verdict(sts, 5) == Verdict(
        False,
        False,
        f"{DB}: 0 of 1 pods updated (partition 2 keeps the other 2 at the old revision)",
    )


def test_an_on_delete_statefulset_is_applied_and_honestly_not_waited_for() -> None:
    assert statefulset_verdict(snap("statefulset-on-delete"), 6) == Verdict(
        True, True, f"{DB}: {ON_DELETE}", waited=False
    )


def test_only_pods_at_the_update_revision_are_judged_and_a_crash_loop_there_is_red() -> None:
    sts = snap("statefulset-rolling-update-in-progress")
    pods = snaps("statefulset-pods")
    assert [p["metadata"]["name"] for p in statefulset_pods(sts, [], pods)] == ["antisocial-db-1"]
    verdict, problem, judged = workload_verdict(sts, [], pods, 4)
    assert verdict == Verdict(
        True,
        False,
        f"{DB}: container `db` is crash-looping: last run exited 1 (Error), restarted 3 times "
        "[pod antisocial-db-1]",
    )
    assert problem is not None
    assert (problem.pod, problem.container, problem.exit_code) == ("antisocial-db-1", "db", 1)
    assert [p["metadata"]["name"] for p in judged] == ["antisocial-db-1"]


def test_pods_are_not_judged_before_the_controller_observed_our_generation() -> None:
    sts = snap("statefulset-rolling-update-in-progress")
    verdict, problem, judged = workload_verdict(sts, [], snaps("statefulset-pods"), 5)
    assert (verdict.done, problem, judged) == (False, None, [])


# --- DaemonSets --------------------------------------------------------------------------------


def test_a_daemonset_with_every_desired_pod_updated_and_available_is_green() -> None:
    assert daemonset_verdict(snap("daemonset-complete"), 2) == Verdict(
        True, True, f"{LOGS}: successfully rolled out (3 pods)"
    )


def test_a_daemonset_counts_updated_pods_then_available_ones_like_kubectl() -> None:
    ds = snap("daemonset-updating")
    assert daemonset_verdict(ds, 3) == Verdict(
        False, False, f"{LOGS}: 1 out of 3 new pods have been updated"
    )
    ds["status"]["updatedNumberScheduled"] = 3
    assert daemonset_verdict(ds, 3) == Verdict(
        False, False, f"{LOGS}: 2 of 3 updated pods are available"
    )
    assert daemonset_verdict(ds, 4) == Verdict(
        False,
        False,
        f"{LOGS}: waiting for the daemonset controller to observe generation 4 (observed 3)",
    )


def test_an_on_delete_daemonset_is_applied_and_honestly_not_waited_for() -> None:
    assert daemonset_verdict(snap("daemonset-on-delete"), 4) == Verdict(
        True, True, f"{LOGS}: {ON_DELETE}", waited=False
    )


# --- Jobs ----------------------------------------------------------------------------------------


def test_a_complete_job_is_green_as_kubectl_wait_for_condition_complete() -> None:
    assert job_verdict(snap("job-complete")) == Verdict(
        True, True, f"{MIGRATE}: complete (1 of 1 succeeded)"
    )


def test_success_criteria_met_alone_is_not_complete_yet() -> None:
    assert job_verdict(snap("job-success-criteria-met")) == Verdict(
        False, False, f"{MIGRATE}: running (1 of 1 succeeded)"
    )


def test_a_running_job_says_how_far_it_got() -> None:
    assert job_verdict(snap("job-running")) == Verdict(
        False, False, f"{MIGRATE}: running (0 of 1 succeeded, 1 active, 1 failed, backoffLimit 2)"
    )


def test_backoff_limit_exceeded_is_red_at_the_failure_target_before_failed() -> None:
    assert job_verdict(snap("job-backoff-limit-exceeded")) == Verdict(
        True,
        False,
        f"{MIGRATE}: failed: BackoffLimitExceeded (Job has reached the specified backoff limit); "
        "0 of 1 succeeded, 1 failed, backoffLimit 0",
    )


def test_an_exceeded_deadline_is_red_and_says_so() -> None:
    assert job_verdict(snap("job-deadline-exceeded")) == Verdict(
        True,
        False,
        f"{MIGRATE}: failed: DeadlineExceeded (Job was active longer than specified deadline); "
        "0 of 1 succeeded, 1 failed, backoffLimit 3",
    )


def test_a_suspended_job_is_waited_for_and_says_why() -> None:
    assert job_verdict(snap("job-suspended")) == Verdict(
        False, False, f"{MIGRATE}: suspended; it runs only once resumed"
    )


def test_a_failed_job_names_its_last_failed_pod_and_exit_code() -> None:
    verdict, problem, _ = workload_verdict(
        snap("job-backoff-limit-exceeded"), [], snaps("job-pods")
    )
    assert verdict == Verdict(
        True,
        False,
        f"{MIGRATE}: failed: BackoffLimitExceeded (Job has reached the specified backoff limit); "
        "0 of 1 succeeded, 1 failed, backoffLimit 0; last failed pod "
        "antisocial-migrate-9b2d771-abcde: container `migrate` exited 3 (Error)",
    )
    assert problem == PodProblem(
        pod="antisocial-migrate-9b2d771-abcde",
        container="migrate",
        init_container=False,
        state="JobPodFailed",
        reason="Error",
        exit_code=3,
        detail="container `migrate` exited 3 (Error)",
    )


def test_ended_job_pods_are_left_to_the_backoff_limit_and_a_doomed_retry_is_red_at_once() -> None:
    job, pods = snap("job-running"), snaps("job-pods")
    # Both of its pods are the Job's (one template, one revision); only the running one is judged.
    assert [p["metadata"]["name"] for p in job_pods(job, [], pods)] == [
        "antisocial-migrate-9b2d771-abcde",
        "antisocial-migrate-9b2d771-fghij",
    ]
    verdict, problem, judged = workload_verdict(job, [], pods)
    assert [p["metadata"]["name"] for p in judged] == ["antisocial-migrate-9b2d771-fghij"]
    assert problem is not None and problem.state == "ImagePullFailed"
    assert verdict.message.startswith(
        f"{MIGRATE}: container `migrate` cannot pull {IMAGE}: image not found (ErrImagePull)"
    )
    assert verdict.message.endswith("[pod antisocial-migrate-9b2d771-fghij]")


def test_a_job_without_failed_pods_has_no_failure_to_name() -> None:
    assert job_failure(snap("job-complete"), snaps("statefulset-pods")) is None


# --- the table ---------------------------------------------------------------------------------


def test_every_waited_kind_has_a_row_and_cronjobs_are_applied_not_waited() -> None:
    assert sorted(KINDS) == ["DaemonSet", "Deployment", "Job", "StatefulSet"]
    assert all(k.kind == name for name, k in KINDS.items())
    assert {"CronJob"} == NOT_WAITED_KINDS


def _daemonset_pod(name: str, template_generation: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"pod-template-generation": template_generation},
            "ownerReferences": [{"controller": True, "uid": "ds-uid", "kind": "DaemonSet"}],
        }
    }


def test_daemonset_pods_follow_the_template_generation_not_metadata_generation() -> None:
    # minReadySeconds changed: generation 3, but the template (and so the pods) is still at 2.
    ds = {
        "metadata": {
            "uid": "ds-uid",
            "generation": 3,
            "annotations": {"deprecated.daemonset.template.generation": "2"},
        }
    }
    pods = [_daemonset_pod("logs-old", "1"), _daemonset_pod("logs-new", "2")]
    assert [p["metadata"]["name"] for p in daemonset_pods(ds, [], pods)] == ["logs-new"]


def test_daemonset_pods_fall_back_to_metadata_generation_without_the_annotation() -> None:
    ds = {"metadata": {"uid": "ds-uid", "generation": 2}}
    pods = [_daemonset_pod("logs-old", "1"), _daemonset_pod("logs-new", "2")]
    assert [p["metadata"]["name"] for p in daemonset_pods(ds, [], pods)] == ["logs-new"]
