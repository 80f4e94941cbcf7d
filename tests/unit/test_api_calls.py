"""How many API calls a deploy makes, counted at the connection: `deploy()` whole against fake
services whose cluster runs the real `kube.apply` (dry run, preview, server-side apply) over a
connection that records every request. Each object is dry-run once per deploy (again only if its
body changed since, as with pin-digest), and a preview's one dry run is also its check."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deployer.kube import Applied, Conflict, NotFound, Planned, Rejected, from_status
from deployer.kube import apply as applying
from tests.unit.fake_cluster import NS
from tests.unit.test_pipeline import FakeDeployCluster, Journal, World

DIGEST = "sha256:" + "d" * 64


@dataclass
class Resource:
    namespaced: bool
    name: str = "things"
    group: str = ""

    def path(self, name: str, namespace: str | None) -> str:
        return f"/ns/{namespace}/{name}" if namespace else f"/cluster/{name}"


@dataclass
class Response:
    data: bytes
    headers: None = None


class CountingConnection:
    """`resource`, `call` and `get_json` as kube.apply uses them. Every request is recorded as
    (method, dry run or not, object name); `live` objects exist, `refuse` and `conflict` name the
    objects whose dry run is refused for content or meets another field manager."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bool, str]] = []
        self.live: set[str] = set()
        self.refuse: set[str] = set()
        self.conflict: set[str] = set()
        self.missing_namespaces: set[str] = set()
        self.check_api = object()

    def resource(self, api_version: str, kind: str) -> Resource:
        return Resource(namespaced=kind not in ("Namespace", "CustomResourceDefinition"))

    def call(self, method: str, path: str, query: list[tuple[str, str]], **kw: Any) -> Response:
        name = path.rsplit("/", 1)[-1]
        dry = ("dryRun", "All") in query
        self.requests.append((method, dry, name))
        namespace = path.split("/")[2] if path.startswith("/ns/") else None
        if namespace in self.missing_namespaces:
            raise NotFound(f'namespaces "{namespace}" not found')
        if method == "GET":
            if name not in self.live:
                raise NotFound(f"{name} not found")
            return Response(json.dumps({"metadata": {"name": name}}).encode())
        if name in self.refuse:
            raise from_status(422, {"message": f"{name} is invalid"}, f"apply {name}")
        if name in self.conflict and ("force", "true") not in query:
            raise Conflict(f"{name}: conflict", fields=".spec.replicas (owned by kubectl)")
        return Response(json.dumps(kw["body"]).encode())

    def get_json(self, path: str, *, what: str, verb: str = "get") -> dict[str, Any]:
        return applying.json_of(self.call("GET", path, [], what=what, verb=verb))

    def count(self, method: str, *, dry: bool) -> int:
        return sum(1 for m, d, _ in self.requests if (m, d) == (method, dry))


class CountingCluster(FakeDeployCluster):
    """The pipeline tests' cluster, with dry run, preview and apply sent through kube.apply."""

    def __init__(self, journal: Journal) -> None:
        super().__init__(journal, {})
        self.connection = CountingConnection()

    def dry_run(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = "",
        namespace: str = "",
        skip: frozenset[int] = frozenset(),
    ) -> int:
        return applying.dry_run(self.connection, docs, namespace=NS, skip=skip)  # type: ignore[arg-type]

    def preview(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = "",
        force_conflicts: bool,
        namespace: str = "",
        tolerate: Callable[[Rejected], bool] | None = None,
    ) -> list[Planned]:
        return applying.preview(
            self.connection,  # type: ignore[arg-type]
            docs,
            force_conflicts=force_conflicts,
            namespace=NS,
            tolerate=tolerate,
        )

    def server_side_apply(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = "",
        force_conflicts: bool,
        namespace: str = "default",
        on_applied: Callable[[Applied], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> list[Applied]:
        applying.server_side_apply(
            self.connection,  # type: ignore[arg-type]
            docs,
            force_conflicts=force_conflicts,
            namespace=NS,
        )
        return super().server_side_apply(
            docs, force_conflicts=force_conflicts, on_applied=on_applied, warn=warn
        )


def counting_world(tmp_path: Path, **settings: Any) -> tuple[World, CountingConnection]:
    world = World(tmp_path, **settings)
    world.cluster = CountingCluster(world.journal)
    return world, world.cluster.connection


# --- a deploy ---------------------------------------------------------------------------------


def test_a_deploy_dry_runs_each_object_once_and_applies_the_bodies_it_checked(
    tmp_path: Path,
) -> None:
    world, connection = counting_world(tmp_path)
    outcome = world.deploy()
    assert outcome.error is None, world.log.getvalue()
    # Two objects (ConfigMap, Deployment): two dry-run applies while the image builds (there
    # were four: apply dry-ran the same bodies again), then the two applies.
    assert connection.requests == [
        ("PATCH", True, "app-config"),
        ("PATCH", True, "web"),
        ("PATCH", False, "app-config"),
        ("PATCH", False, "web"),
    ]
    assert "dry run: the API server accepted these 2 object(s) alongside the build" in (
        world.log.getvalue()
    )


def test_with_pin_digest_only_the_bodies_that_changed_are_dry_run_again(tmp_path: Path) -> None:
    world, connection = counting_world(tmp_path, pin_digest=True)
    outcome = world.deploy()
    assert outcome.error is None, world.log.getvalue()
    # The Deployment's image became image@digest after the push: that body was never checked.
    assert connection.requests == [
        ("PATCH", True, "app-config"),
        ("PATCH", True, "web"),
        ("PATCH", True, "web"),
        ("PATCH", False, "app-config"),
        ("PATCH", False, "web"),
    ]
    applied = world.cluster.applied[1]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert applied == f"registry.digitalocean.com/team/app@{DIGEST}"
    assert (
        "dry run: 1 changed since the dry run alongside the build: the API server accepts 1 of 1 "
        "object(s)" in world.log.getvalue()
    )


def test_a_deploy_renders_the_manifests_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deployer.plan
    from deployer.manifests import rendering

    parsed: list[int] = []
    rendered: list[str] = []
    real_parse, real_render = rendering.parse, deployer.plan.render_documents

    def parse(*args: Any, **kwargs: Any) -> Any:
        parsed.append(1)
        return real_parse(*args, **kwargs)

    def render_documents(settings: Any, plan: Any, image_ref: str) -> Any:
        rendered.append(image_ref)
        return real_render(settings, plan, image_ref)

    monkeypatch.setattr(rendering, "parse", parse)
    monkeypatch.setattr(deployer.plan, "render_documents", render_documents)
    world, _ = counting_world(tmp_path)
    assert world.deploy().error is None, world.log.getvalue()
    # Preflight parses them; the dry run's documents are copies of those, and are the ones
    # applied (they were parsed three times and rendered twice).
    assert (len(parsed), rendered) == (1, ["registry.digitalocean.com/team/app:" + "0" * 40])
    log = world.log.getvalue()
    assert log.index("::group::Render") < log.index("change cause (kubectl rollout history)")


# --- a preview (dry-run: true) ----------------------------------------------------------------


def test_a_preview_dry_runs_each_object_once_which_is_also_its_check(tmp_path: Path) -> None:
    world, connection = counting_world(tmp_path, dry_run=True)
    connection.live.add("app-config")
    outcome = world.deploy()
    assert outcome.error is None, world.log.getvalue()
    # A read and a dry-run apply per object (there was a second dry-run apply per object).
    assert connection.requests == [
        ("GET", False, "app-config"),
        ("PATCH", True, "app-config"),
        ("GET", False, "web"),
        ("PATCH", True, "web"),
    ]
    log = world.log.getvalue()
    assert "dry run: the API server accepts 2 of 2 object(s)" in log
    assert "deployment/web in shop: would be created" in log
    assert "dry run: 2 of 2 object(s) would change; nothing was applied" in log


def docs(*names: str, namespace: str = NS) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "namespace": namespace}}
        for n in names
    ]


def test_a_content_refusal_comes_first_then_a_conflict_the_real_apply_would_stop_at() -> None:
    connection = CountingConnection()
    connection.conflict.add("a")
    connection.refuse.add("c")
    with pytest.raises(Rejected) as refused:
        applying.preview(connection, docs("a", "b", "c"), force_conflicts=False)  # type: ignore[arg-type]
    assert (refused.value.index, refused.value.name) == (2, "c")
    connection.refuse.clear()
    connection.requests.clear()
    with pytest.raises(Conflict):
        applying.preview(connection, docs("a", "b", "c"), force_conflicts=False)  # type: ignore[arg-type]
    # The conflicting object is dry-run forced too, so its content is checked like the others.
    assert [(m, n) for m, _, n in connection.requests if m == "PATCH"] == [
        ("PATCH", "a"),
        ("PATCH", "a"),
        ("PATCH", "b"),
        ("PATCH", "c"),
    ]


def test_with_force_conflicts_the_preview_shows_the_take_over() -> None:
    connection = CountingConnection()
    connection.conflict.add("a")
    planned = applying.preview(connection, docs("a", "b"), force_conflicts=True)  # type: ignore[arg-type]
    assert [p.planned["metadata"]["name"] for p in planned] == ["a", "b"]
    assert connection.count("PATCH", dry=True) == 3


def test_an_object_in_a_namespace_this_deploy_creates_is_checked_after_the_rest() -> None:
    connection = CountingConnection()
    connection.missing_namespaces.add("fresh")
    connection.refuse.add("late")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh"}}
    objects = [namespace, *docs("early", namespace="fresh"), *docs("late")]
    with pytest.raises(Rejected) as refused:
        applying.preview(connection, objects, force_conflicts=False)  # type: ignore[arg-type]
    assert refused.value.name == "late"
    connection.refuse.clear()
    with pytest.raises(NotFound, match="goes to namespace fresh, which this deploy creates"):
        applying.preview(connection, objects, force_conflicts=False)  # type: ignore[arg-type]


def test_a_copied_document_still_names_the_line_of_each_part(tmp_path: Path) -> None:
    from deployer import manifests
    from deployer.plan import _copy_document

    path = tmp_path / "deploy.yaml"
    text = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template: {a: 1}\n"
    )
    [doc] = manifests.parse({path: text})
    copied = _copy_document(doc)
    assert copied.body == doc.body and copied.body is not doc.body
    template = copied.body["spec"]["template"]
    assert template is not doc.body["spec"]["template"]
    assert copied.line_of(template) == doc.line_of(doc.body["spec"]["template"]) == 5
