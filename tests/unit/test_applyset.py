"""prune: true, the ApplySet standard as kubectl implements it: the parent's id, labels and
annotations, membership, the refusals, and deploy() whole against fakes (prune only after a
green deploy, the dry run lists, nothing without the set's label is touched)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from deployer import applyset
from deployer.errors import InputError, RolloutFailed
from deployer.manifests import Document
from tests.unit.fake_cluster import NS
from tests.unit.test_pipeline import MANIFEST, Journal, World
from tests.unit.test_run_first_pipeline import JobCluster

# Computed by kubectl 1.32.4 (`KUBECTL_APPLYSET=true kubectl apply --server-side --prune
# --applyset=secret/shop-applyset -n djk-applyset-probe`) against the local stack.
KUBECTL_ID = "applyset-kr747jpxbQ_xwcg-0AmI_324C7Z4spJ0TrEWTAQTUe8-v1"


def test_the_set_id_is_the_one_kubectl_computes() -> None:
    assert applyset.applyset_id("shop-applyset", "djk-applyset-probe") == KUBECTL_ID


def test_names_and_group_kinds_are_written_as_kubectl_writes_them() -> None:
    assert applyset.parent_name("registry.digitalocean.com/team/anti_social") == (
        "anti-social-applyset"
    )
    assert applyset.group_kind("apps/v1", "Deployment") == "Deployment.apps"
    assert applyset.group_kind("v1", "ConfigMap") == "ConfigMap"
    assert applyset.split_group_kind("Ingress.networking.k8s.io") == (
        "networking.k8s.io",
        "Ingress",
    )
    assert applyset.tooling_base("kubectl/v1.32.4") == "kubectl"
    assert applyset.tooling_base("example.com/tool/v1") == "example.com/tool"


def test_the_parent_records_sorted_kinds_and_the_other_namespaces() -> None:
    state = applyset.SetState(frozenset({"Service", "Deployment.apps"}), frozenset({NS, "b", "a"}))
    body = applyset.parent_body("app-applyset", NS, state)
    assert body["metadata"]["labels"] == {
        applyset.ID_LABEL: applyset.applyset_id("app-applyset", NS)
    }
    assert body["metadata"]["annotations"] == {
        applyset.TOOLING_ANNOTATION: applyset.TOOLING,
        applyset.KINDS_ANNOTATION: "Deployment.apps,Service",
        applyset.NAMESPACES_ANNOTATION: "a,b",
    }
    assert applyset.TOOLING.startswith("django-k8s-deploy/v")
    # and read back as the same set
    assert applyset.read_parent(body, "app-applyset", NS) == state


def parent(**annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": {applyset.ID_LABEL: applyset.applyset_id("app-applyset", NS)},
            "annotations": annotations,
        }
    }


@pytest.mark.parametrize(
    ("live", "message"),
    [
        (
            parent(**{applyset.TOOLING_ANNOTATION: "kubectl/v1.32.4"}),
            "secret/app-applyset in namespace shop is the ApplySet parent of another tool "
            "(kubectl/v1.32.4), not of django-k8s-deploy",
        ),
        (
            {"metadata": {"name": "app-applyset"}},
            "secret/app-applyset in namespace shop exists and is not an ApplySet parent",
        ),
        (
            {
                "metadata": {
                    "labels": {applyset.ID_LABEL: "applyset-other-v1"},
                    "annotations": {applyset.TOOLING_ANNOTATION: applyset.TOOLING},
                }
            },
            "has label applyset.kubernetes.io/id='applyset-other-v1', not this set's id",
        ),
    ],
)
def test_a_parent_that_is_not_ours_is_refused_in_one_line(
    live: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError) as refused:
        applyset.read_parent(live, "app-applyset", NS)
    assert message in str(refused.value)
    assert refused.value.where == "prune"
    assert "\n" not in str(refused.value)


def test_members_are_the_namespaced_objects_only() -> None:
    bodies = [
        {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": NS}},
        {"kind": "Namespace", "metadata": {"name": NS}},
        {"kind": "ClusterRole", "metadata": {"name": "r"}},
    ]
    assert applyset.label_members(bodies, "applyset-x-v1") == 1
    assert bodies[0]["metadata"]["labels"] == {applyset.PART_OF_LABEL: "applyset-x-v1"}
    assert "labels" not in bodies[1]["metadata"] and "labels" not in bodies[2]["metadata"]


def test_no_object_at_all_or_a_set_label_in_the_manifests_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="the manifests hold no object"):
        applyset.check_manifests([], tmp_path)
    labelled = Document(
        path=tmp_path / "deploy" / "x.yaml",
        line=3,
        body={
            "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {applyset.PART_OF_LABEL: "applyset-x-v1"}},
        },
    )
    with pytest.raises(InputError) as refused:
        applyset.check_manifests([labelled], tmp_path)
    assert (refused.value.file, refused.value.line) == ("deploy/x.yaml", 3)


# --- deploy() whole -----------------------------------------------------------------------------

OLD = """\
---
apiVersion: v1
kind: ConfigMap
metadata: {name: old-config}
data: {A: "1"}
"""


class SetCluster(JobCluster):
    """Stores what is applied (labels and all), lists by label selector, serves API groups."""

    def __init__(self, journal: Journal, behaviour: dict[str, str]) -> None:
        super().__init__(journal, {})
        self.behaviour = behaviour

    def server_side_apply(self, docs: Any, **kw: Any) -> Any:
        done = super().server_side_apply(docs, **kw)
        for doc in docs:
            stored = copy.deepcopy(dict(doc))
            stored["metadata"].setdefault("namespace", NS)
            if doc["kind"] == "Deployment":
                current = self.objects[("Deployment", NS, doc["metadata"]["name"])]
                current["metadata"]["labels"] = stored["metadata"].get("labels", {})
                continue
            self.put(stored)
        return done

    def preferred_version(self, group: str) -> str | None:
        return {"": "v1", "apps": "apps/v1"}.get(group)

    def list_labelled(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        self.journal.append(f"cluster list {kind} in {namespace} -l {selector}")

        def matches(labels: dict[str, str]) -> bool:
            for term in selector.split(","):
                if "!=" in term:
                    key, _, value = term.partition("!=")
                    if labels.get(key) == value:
                        return False
                elif "=" in term:
                    key, _, value = term.partition("=")
                    if labels.get(key) != value:
                        return False
                elif term not in labels:
                    return False
            return True

        return [
            copy.deepcopy(o)
            for (k, ns, _), o in self.objects.items()
            if (k, ns) == (kind, namespace) and matches(o["metadata"].get("labels") or {})
        ]


def set_world(tmp_path: Path, manifest: str, **kw: Any) -> World:
    w = World(tmp_path, prune=True, **kw)
    (tmp_path / "deploy" / "deployment.yaml").write_text(manifest)
    w.cluster = SetCluster(w.journal, dict(kw.get("behaviour") or {}))
    return w


def again(
    w: World, manifest: str, tmp_path: Path, behaviour: dict[str, str] | None = None, **changes: Any
) -> World:
    (tmp_path / "deploy" / "deployment.yaml").write_text(manifest)
    w.journal.clear()
    w.log.truncate(0)
    w.log.seek(0)
    w.settings = dataclasses.replace(w.settings, **changes)
    assert isinstance(w.cluster, SetCluster)
    w.cluster.behaviour = behaviour or {}
    return w


def test_an_object_that_left_the_manifests_is_pruned_after_a_green_deploy_only(
    tmp_path: Path,
) -> None:
    w = set_world(tmp_path, MANIFEST + OLD)
    assert w.deploy().error is None, w.log.getvalue()
    set_id = applyset.applyset_id("app-applyset", NS)
    stored = w.cluster.objects["ConfigMap", NS, "old-config"]
    assert stored["metadata"]["labels"] == {applyset.PART_OF_LABEL: set_id}
    parent = w.cluster.objects["Secret", NS, "app-applyset"]
    assert parent["metadata"]["annotations"][applyset.KINDS_ANNOTATION] == (
        "ConfigMap,Deployment.apps"
    )
    # Something applied by hand beside the set, and one of another set, with the same kind.
    w.cluster.put({"kind": "ConfigMap", "metadata": {"name": "by-hand", "namespace": NS}})
    w.cluster.put(
        {
            "kind": "ConfigMap",
            "metadata": {
                "name": "theirs",
                "namespace": NS,
                "labels": {applyset.PART_OF_LABEL: "applyset-other-v1"},
            },
        }
    )

    # The dry run lists what would go, and deletes nothing.
    again(w, MANIFEST, tmp_path, dry_run=True)
    assert w.deploy().error is None, w.log.getvalue()
    log = w.log.getvalue()
    assert "would prune configmap/old-config in shop" in log
    assert "Prune would delete: configmap/old-config." in log
    assert not any("delete" in c for c in w.journal)

    # A failed deploy deletes nothing.
    again(w, MANIFEST, tmp_path, dry_run=False, behaviour={"web": "crash"})
    assert isinstance(w.deploy().error, RolloutFailed)
    assert not any("delete" in c for c in w.journal)
    assert ("ConfigMap", NS, "old-config") in w.cluster.objects

    # A green one does, after the rollouts, and says so.
    again(w, MANIFEST, tmp_path)
    assert w.deploy().error is None, w.log.getvalue()
    deletes = [c for c in w.journal if "delete" in c]
    assert deletes == ["cluster delete ConfigMap/old-config (Background)"]
    assert w.journal.index(deletes[0]) > w.journal.index("cluster apply Deployment/web")
    assert {("ConfigMap", NS, "by-hand"), ("ConfigMap", NS, "theirs")} <= set(w.cluster.objects)
    log = w.log.getvalue()
    assert "pruned configmap/old-config in shop" in log
    assert "Pruned (no longer in the manifests): configmap/old-config." in log
    assert "### Pruned" in w.summary
    assert w.groups[-1] == "Prune"


def test_a_parent_of_another_tool_stops_the_deploy_before_anything_is_applied(
    tmp_path: Path,
) -> None:
    w = set_world(tmp_path, MANIFEST)
    w.cluster.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "app-applyset",
                "namespace": NS,
                "labels": {applyset.ID_LABEL: applyset.applyset_id("app-applyset", NS)},
                "annotations": {applyset.TOOLING_ANNOTATION: "kubectl/v1.32.4"},
            },
        }
    )
    error = w.deploy().error
    assert isinstance(error, InputError)
    assert "is the ApplySet parent of another tool (kubectl/v1.32.4)" in str(error)
    assert not any(c.startswith("cluster apply") for c in w.journal)
    # Found by the cluster checks alongside the build, which they stop: no build log shown.
    assert w.groups == ["Preflight", "Credentials", "Dry run"]


def test_the_rights_prune_needs_are_asked_before_the_build(tmp_path: Path) -> None:
    w = set_world(tmp_path, MANIFEST)
    assert w.deploy().error is None, w.log.getvalue()
    assert isinstance(w.cluster, SetCluster)
    asked = {
        (verb, obj["kind"], obj["metadata"]["namespace"]) for verb, obj in w.cluster.asked_also
    }
    assert asked == {
        ("get", "Secret", NS),
        ("patch", "Secret", NS),
        ("list", "ConfigMap", NS),
        ("delete", "ConfigMap", NS),
        ("list", "Deployment", NS),
        ("delete", "Deployment", NS),
    }


def test_an_object_of_another_set_is_refused_before_anything_is_applied(tmp_path: Path) -> None:
    w = set_world(tmp_path, MANIFEST)
    w.cluster.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "app-config",
                "namespace": NS,
                "labels": {applyset.PART_OF_LABEL: "applyset-other-v1"},
            },
        }
    )
    error = w.deploy().error
    assert isinstance(error, InputError)
    assert str(error).startswith(
        "prune: configmap/app-config in namespace shop belongs to another ApplySet "
        "(applyset.kubernetes.io/part-of=applyset-other-v1)"
    )
    assert error.where == "prune"
    assert not any(c.startswith("cluster apply") for c in w.journal)
