"""The whole-release rollback's pure parts: what a ConfigMap/Secret is put back as, when its
content changed, which ControllerRevision a StatefulSet/DaemonSet ran, the patch it holds, and
a Deployment's rollback to the revision it ran (not merely the one before the newest)."""

from __future__ import annotations

from typing import Any

from deployer import report
from deployer.errors import RolloutFailed
from deployer.kube import Applied
from deployer.report import DeployFacts
from deployer.results import RolloutResult
from deployer.revisions import plan_rollback
from deployer.rollback import (
    Before,
    restored_body,
    revision_patch,
    rights_needed,
    running_revision,
    same_content,
    stuck_pods,
)
from tests.unit.fake_cluster import NS, deployment, replicaset


def secret(data: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "app-env",
            "namespace": NS,
            "uid": "u1",
            "resourceVersion": "7",
            "managedFields": [{"manager": "kubectl"}],
            **meta,
        },
        "type": "Opaque",
        "data": data,
    }


def test_a_secret_is_put_back_with_its_content_labels_and_annotations_only() -> None:
    live = secret(
        {"DATABASE_URL": "b2xk"},
        labels={"app": "web"},
        annotations={
            "note": "kept",
            "kubectl.kubernetes.io/last-applied-configuration": '{"data":"…"}',
        },
    )
    body = restored_body(Before("v1", "Secret", "app-env", NS, live))
    assert body == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "app-env",
            "namespace": NS,
            "labels": {"app": "web"},
            "annotations": {"note": "kept"},
        },
        "type": "Opaque",
        "data": {"DATABASE_URL": "b2xk"},
    }
    body["data"]["DATABASE_URL"] = "changed"
    assert live["data"]["DATABASE_URL"] == "b2xk", "the capture is not shared with the body"


def test_content_is_what_a_pod_reads_not_the_metadata() -> None:
    assert same_content(secret({"A": "1"}), secret({"A": "1"}, resourceVersion="9"))
    assert not same_content(secret({"A": "1"}), secret({"A": "2"}))
    assert not same_content(secret({"A": "1"}), secret({"A": "1", "B": "2"}))
    assert not same_content(secret({"A": "1"}), None)
    assert same_content(None, None)
    assert same_content({"data": {}}, {})  # no data and empty data read the same


def controller_revision(owner_uid: str, name: str, number: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": name,
            "namespace": NS,
            "ownerReferences": [{"uid": owner_uid, "controller": True, "kind": "DaemonSet"}],
        },
        "revision": number,
        "data": {"spec": {"template": {"$patch": "replace", "spec": {"containers": []}}}},
    }


def test_the_revision_a_statefulset_or_daemonset_ran() -> None:
    sts = {
        "metadata": {"uid": "s1", "generation": 3},
        "status": {"observedGeneration": 3, "updateRevision": "db-7c9"},
    }
    assert running_revision(sts, []) == "db-7c9"
    ds = {"metadata": {"uid": "d1", "generation": 2}, "status": {"observedGeneration": 2}}
    revisions = [
        controller_revision("d1", "logs-old", 1),
        controller_revision("d1", "logs-new", 2),
        controller_revision("other", "theirs", 9),  # another owner's, same labels
    ]
    assert running_revision(ds, revisions) == "logs-new"
    assert running_revision(ds, [controller_revision("other", "theirs", 9)]) is None
    # A StatefulSet whose status is behind its spec: its own newest revision, not the stale one.
    behind = {
        "metadata": {"uid": "s1", "generation": 4},
        "status": {"observedGeneration": 3, "updateRevision": "db-stale"},
    }
    assert running_revision(behind, [controller_revision("s1", "db-4", 4)]) == "db-4"


def test_a_controller_revision_holds_the_patch_kubectl_sends() -> None:
    patch = revision_patch(controller_revision("d1", "logs-old", 1))
    assert patch == {"spec": {"template": {"$patch": "replace", "spec": {"containers": []}}}}
    assert revision_patch({"data": None}) is None
    assert revision_patch({}) is None


def test_a_deployment_goes_back_to_the_revision_it_ran_before_the_deploy() -> None:
    live = deployment("web", revision=3)
    history = [replicaset("web", n) for n in (1, 2, 3)]
    # Revision 2 is the one before the newest; the deploy had started from revision 1.
    plan = plan_rollback(live, history, "web", to_revision="1")
    assert (plan.from_revision, plan.to_revision) == ("3", "1")
    assert plan.patch is not None
    gone = plan_rollback(live, history, "web", to_revision="0")
    assert (gone.patch, gone.message) == (None, "deployment/web: revision 0 is no longer kept")


def sts_pod(
    name: str, revision: str, ready: str, owner: str = "s1", restarts: int = 0
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"controller-revision-hash": revision},
            "ownerReferences": [{"uid": owner, "controller": True}],
        },
        "status": {
            "conditions": [{"type": "Ready", "status": ready}],
            "containerStatuses": [{"name": "db", "restartCount": restarts}],
        },
    }


def test_a_statefulset_rollback_deletes_the_failed_revisions_pods_that_never_became_ready() -> None:
    sts = {"metadata": {"uid": "s1"}}
    pods = [
        sts_pod("db-0", "db-good", "True"),
        sts_pod("db-1", "db-bad", "False"),  # stuck: the controller would wait for it forever
        sts_pod("db-2", "db-bad", "True"),  # ready: the controller replaces it itself
        sts_pod("other-0", "x", "False", owner="s2"),
    ]
    assert stuck_pods(sts, pods, "db-good") == ["db-1"]


def test_a_crash_looping_pod_read_in_its_ready_moment_is_deleted_too() -> None:
    # Without a readiness probe a crash-looping container is Ready for a moment at each start
    # (a real kubelet's sequence, and kwok's): its restarts say what it is.
    sts = {"metadata": {"uid": "s1"}}
    pods = [
        sts_pod("db-0", "db-good", "True", restarts=1),  # the restored revision: left alone
        sts_pod("db-1", "db-bad", "True", restarts=2),
    ]
    assert stuck_pods(sts, pods, "db-good") == ["db-1"]


def test_the_rights_a_rollback_needs_are_asked_before_the_build() -> None:
    bodies = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": NS}},
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": NS},
        },
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS}},
    ]
    asked = {(verb, obj["kind"]) for verb, obj in rights_needed(bodies, workloads=True)}
    assert asked == {
        ("get", "ConfigMap"),
        ("delete", "ConfigMap"),
        ("get", "StatefulSet"),
        ("delete", "StatefulSet"),
        ("get", "ControllerRevision"),
        ("list", "ControllerRevision"),
        ("delete", "Pod"),
    }
    # A failed migration restores config only.
    config_only = {(v, o["kind"]) for v, o in rights_needed(bodies, workloads=False)}
    assert config_only == {("get", "ConfigMap"), ("delete", "ConfigMap")}


def test_the_report_keeps_the_failure_and_the_rollbacks_own_verdict_apart() -> None:
    failed = RolloutResult(
        "db", NS, "failed", "container `db` is crash-looping", 3.0, kind="StatefulSet"
    )
    still_red = RolloutResult("db", NS, "timed-out", "1 of 2 updated", 60.0, kind="StatefulSet")
    facts = DeployFacts(
        image_ref="r/app:1",
        digest="",
        phase="rollback",
        applied=(Applied("StatefulSet", "db", NS, 3, "u"),),
        results=(failed,),
        rolled_back=("configmap/app-config (restored)", "statefulset/db (to db-6d9f)"),
        rollback_results=(still_red,),
        rollback_problems=("secret/app-env: not restored: forbidden",),
        error=RolloutFailed("statefulset/db failed"),
    )
    built = report.of_deploy(facts)
    [state] = built.lines
    assert state == (
        "State: applied 1 object(s): statefulset/db. Rollouts: statefulset/db failed. "
        "Rolled back: configmap/app-config (restored), statefulset/db (to db-6d9f). "
        "The rollback timed-out: statefulset/db timed-out. Not restored: 1 object(s) (see the log)."
    )
    assert dict(built.outputs)["result"] == "failed"
    assert ("Rollback timed-out") in [a.title for a in built.annotations]
    assert "### Rollback" in built.summary
    assert "- ⚠️ secret/app-env: not restored: forbidden" in built.summary
