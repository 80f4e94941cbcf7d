"""Pure revision helpers and the rollback plan (kubectl rollout undo), from the status snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deployer.revisions import RollbackPlan, owned_revisions, plan_rollback
from deployer.status import controller_uid, pods_of, revision

SNAPSHOTS = Path(__file__).parent / "snapshots" / "status"
WEB_UID = "6f1d9c1e-3b0a-4a53-9d59-0c3f4f1f6a10"
OLD_IMAGE = "registry.digitalocean.com/team/antisocial:4e1f0c2"


def snap(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((SNAPSHOTS / f"{name}.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def replicasets() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((SNAPSHOTS / "replicasets-of-web.yaml").read_text()))


def rolling_web() -> dict[str, Any]:
    return snap("deployment-new-replicas-being-updated")  # revision 5, image 9b2d771


def test_revision_reads_the_controllers_annotation_and_ignores_anything_else() -> None:
    assert revision(rolling_web()) == "5"
    assert (
        revision({"metadata": {"annotations": {"deployment.kubernetes.io/revision": "x"}}}) is None
    )
    assert revision({"metadata": {}}) is None


def test_the_controller_uid_is_the_owner_marked_controller() -> None:
    [old, worker, new] = replicasets()
    assert controller_uid(old) == controller_uid(new) == WEB_UID
    assert controller_uid(worker) != WEB_UID
    assert (
        controller_uid({"metadata": {"ownerReferences": [{"uid": "u", "controller": False}]}})
        is None
    )


def test_pods_of_a_replicaset_are_the_ones_it_controls() -> None:
    [old, _, new] = replicasets()
    crashing = snap("pod-crash-loop")  # a pod of antisocial-web-5c8f7d6b9
    crashing["metadata"]["ownerReferences"][0]["uid"] = new["metadata"]["uid"]
    stranger = snap("pod-ready")
    stranger["metadata"]["ownerReferences"] = [{"uid": "someone-else", "controller": True}]
    assert pods_of(new, [crashing, stranger]) == [crashing]
    assert pods_of(old, [crashing, stranger]) == []
    assert pods_of(None, [crashing]) == []


def test_the_history_is_the_deployments_own_replicasets_newest_first() -> None:
    names = [rs["metadata"]["name"] for rs in owned_revisions(rolling_web(), replicasets())]
    assert names == ["antisocial-web-5c8f7d6b9", "antisocial-web-7d9c6b5f4"]  # not the worker's


def test_a_rollback_copies_the_previous_template_without_its_hash_and_keeps_our_annotations() -> (
    None
):
    deployment = rolling_web()
    deployment["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    deployment["metadata"]["annotations"]["team/note"] = "dropped: not on the old ReplicaSet"
    plan = plan_rollback(deployment, replicasets(), "antisocial-web")
    assert plan == RollbackPlan(
        "5",
        "4",
        [
            {
                "op": "replace",
                "path": "/spec/template",
                "value": {
                    "metadata": {"labels": {"app": "antisocial", "component": "web"}},
                    "spec": {"containers": [{"name": "web", "image": OLD_IMAGE}]},
                },
            },
            {
                "op": "replace",
                "path": "/metadata/annotations",
                "value": {
                    "deployment.kubernetes.io/revision": "5",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                },
            },
        ],
        "deployment/antisocial-web: rolled back from revision 5 to revision 4",
    )


def test_a_rollback_to_the_template_already_running_changes_nothing() -> None:
    deployment = rolling_web()
    deployment["spec"]["template"] = {
        "metadata": {"labels": {"app": "antisocial", "component": "web"}},
        "spec": {"containers": [{"name": "web", "image": OLD_IMAGE}]},
    }
    plan = plan_rollback(deployment, replicasets(), "antisocial-web")
    assert (plan.patch, plan.message) == (
        None,
        "deployment/antisocial-web: already runs the template of revision 4",
    )


def test_no_rollback_without_a_previous_revision_a_deployment_or_while_paused() -> None:
    only_new = [rs for rs in replicasets() if revision(rs) == "5"]
    assert plan_rollback(rolling_web(), only_new, "antisocial-web") == RollbackPlan(
        "5", None, None, "deployment/antisocial-web: no previous revision to roll back to"
    )
    assert plan_rollback(None, replicasets(), "web") == RollbackPlan(
        None, None, None, "deployment/web not found"
    )
    paused = rolling_web()
    paused["spec"]["paused"] = True
    assert plan_rollback(paused, replicasets(), "antisocial-web").message == (
        "deployment/antisocial-web is paused; resume it before rolling back"
    )
