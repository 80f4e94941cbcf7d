"""apply: false — the action judges workloads another tool applied: the same verdicts, diagnosis
and report, with nothing built, pushed or applied. Settings refuse what would be ignored."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from deployer import settings as settings_module
from deployer.errors import InputError, RolloutFailed
from deployer.status import Collection
from tests.unit.fake_cluster import NS, deployment, pod, replicaset
from tests.unit.test_pipeline import FakeDeployCluster, Journal, World


class AppliedByHelm(FakeDeployCluster):
    """A cluster where another tool already applied web (and labelled it)."""

    def __init__(self, journal: Journal, *, crashing: bool = False) -> None:
        super().__init__(journal, {})
        web = deployment("web", updated=2, total=2, available=0 if crashing else 2)
        web["metadata"]["labels"] = {"app.kubernetes.io/instance": "shop"}
        self.put(web)
        self.put(replicaset("web", 2))
        if crashing:
            self.put(pod("pod-crash-loop", "web", 2))

    def get_object(
        self, api_version: str, kind: str, name: str, namespace: str
    ) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((kind, namespace, name)))

    def list_collection(
        self, collection: Collection, namespace: str, selector: Mapping[str, Any] | str | None
    ) -> tuple[list[dict[str, Any]], str]:
        key, _, value = str(selector).partition("=")
        items = [
            copy.deepcopy(o)
            for (k, ns, _), o in self.objects.items()
            if (k, ns) == (collection.kind, namespace)
            and (o["metadata"].get("labels") or {}).get(key) == value
        ]
        return items, str(self.rv)


def watching(tmp_path: Path, *, crashing: bool = False, **kw: Any) -> World:
    w = World(tmp_path, apply=False, image="", manifests=(), **kw)
    w.cluster = AppliedByHelm(w.journal, crashing=crashing)
    return w


def test_watch_only_judges_what_another_tool_applied_and_builds_pushes_applies_nothing(
    tmp_path: Path,
) -> None:
    w = watching(tmp_path, wait_for=("Deployment/web",))
    outcome = w.deploy()
    assert outcome.error is None, w.log.getvalue()
    assert [r.subject for r in outcome.results] == ["deployment/web"]
    assert not [c for c in w.journal if c.startswith(("docker", "cluster apply", "cluster dry"))]
    log = w.log.getvalue()
    assert "State: watch only (apply: false): this action built, pushed and applied nothing." in log
    assert w.groups == ["Credentials", "Watch only", "Watch"]


def test_watch_only_by_selector_is_red_with_the_same_diagnosis_as_a_deploy(tmp_path: Path) -> None:
    w = watching(tmp_path, crashing=True, selector="app.kubernetes.io/instance=shop")
    error = w.deploy().error
    assert isinstance(error, RolloutFailed)
    assert "crash-looping" in str(error)
    assert w.groups[-2:] == ["Watch", "Diagnosis"]


def test_watch_only_names_a_workload_that_is_not_there(tmp_path: Path) -> None:
    w = watching(tmp_path, wait_for=("StatefulSet/db",))
    error = w.deploy().error
    assert isinstance(error, InputError)
    assert error.message == f"statefulset/db does not exist in namespace {NS}"
    assert error.where == "wait-for"


def parse(**raw: str) -> settings_module.Settings:
    given = {"cluster": "prod", "apply": "false", **raw}
    env = {"GITHUB_SHA": "0" * 40, "DIGITALOCEAN_ACCESS_TOKEN": ""}
    return settings_module.parse(
        {**given, "digitalocean-token": "dop_v1_" + "a" * 64}, env, mask=lambda _: None, github=True
    )


def test_watch_only_settings_need_no_image_or_manifests() -> None:
    got = parse(**{"wait-for": "deployment/web"})
    assert (got.apply, got.image, got.wait_for) == (False, "", ("Deployment/web",))


@pytest.mark.parametrize(
    ("raw", "where", "says"),
    [
        ({}, "wait-for", "nothing to wait for unless it is named"),
        (
            {"wait-for": "web", "image": "ghcr.io/o/a", "build-args": "A=1"},
            "image",
            "image, build-args have no effect with apply: false",
        ),
        (
            {"wait-for": "web", "apply": "true", "image": "ghcr.io/o/a", "selector": "a=b"},
            "selector",
            "only read with apply: false",
        ),
        ({"selector": "a=b;rm"}, "selector", "is not a label selector"),
    ],
)
def test_watch_only_settings_refuse_in_one_line(raw: dict[str, str], where: str, says: str) -> None:
    with pytest.raises(InputError) as caught:
        parse(**raw)
    problems = getattr(caught.value, "problems", None) or [caught.value]
    assert any(p.where == where and says in str(p) for p in problems), problems
