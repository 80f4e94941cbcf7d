"""Registry retention (DOCR): which tags stay and go (pure), the phase in a whole deploy against
fakes, the garbage-collection wait before a push, the inputs' one-line refusals, and the client's
new calls against the DigitalOcean stand-in, each exchange checked against the spec subset."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deployer import pruning, retention, settings
from deployer.digitalocean import DigitalOcean, RetryPolicy
from deployer.digitalocean.answers import RegistryTag
from deployer.errors import DeployError, InputError, ServiceError
from stack.digitalocean import FakeDigitalOcean
from tests import contract
from tests.unit.fake_cluster import replicaset
from tests.unit.test_pipeline import TOKEN, World

REPO = "registry.digitalocean.com/team/app"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def sha(n: int) -> str:
    return f"{n:040x}"


def tag(n: int, *, digest: str = "", name: str = "") -> RegistryTag:
    """Tag `n` (a commit SHA unless `name`), pushed n hours after T0."""
    return RegistryTag(name or sha(n), digest or f"sha256:{n:064x}", T0 + timedelta(hours=n))


# -- pure ---------------------------------------------------------------------------------------


def test_the_newest_commit_tags_what_runs_and_the_cache_stay_and_only_commit_tags_go() -> None:
    tags = [tag(n) for n in range(1, 8)] + [
        tag(50, name="latest"),
        tag(51, name="buildcache"),
    ]
    running = retention.InUse(tags=frozenset({sha(2)}), digests=frozenset({f"sha256:{3:064x}"}))

    decision = retention.decide(tags, 2, running, "buildcache")

    assert decision.keep == (  # newest first
        ("buildcache", "build cache"),
        (sha(7), "newest 1"),
        (sha(6), "newest 2"),
        (sha(3), "its digest is running"),
        (sha(2), "running"),
    )
    assert decision.delete == (sha(5), sha(4), sha(1))  # newest first
    assert decision.untouched == ("latest",)


def test_a_tag_without_a_date_is_never_deleted() -> None:
    undated = RegistryTag(sha(9), "sha256:" + "9" * 64, None)
    decision = retention.decide([tag(1), tag(2), undated], 1, retention.InUse())
    assert [t for t, _ in decision.keep] == [sha(9)]
    assert decision.delete == (sha(2), sha(1))


def test_what_runs_is_read_from_every_pod_template_and_pod_status_of_the_repository() -> None:
    digest = "sha256:" + "e" * 64
    objects: list[dict[str, Any]] = [
        {
            "kind": "ReplicaSet",  # an old revision: what a rollback returns to
            "spec": {"template": {"spec": {"containers": [{"image": f"{REPO}:{sha(1)}"}]}}},
        },
        {
            "kind": "CronJob",
            "spec": {
                "jobTemplate": {
                    "spec": {
                        "template": {"spec": {"initContainers": [{"image": f"{REPO}@{digest}"}]}}
                    }
                }
            },
        },
        {
            "kind": "ControllerRevision",
            "data": {
                "spec": {"template": {"spec": {"containers": [{"image": f"{REPO}:{sha(2)}"}]}}}
            },
        },
        {
            "kind": "Pod",
            "spec": {"containers": [{"image": "registry.digitalocean.com/team/other:" + sha(3)}]},
            "status": {
                "containerStatuses": [
                    {"image": f"{REPO}:{sha(4)}", "imageID": f"docker-pullable://{REPO}@{digest}"}
                ]
            },
        },
        {
            "kind": "Deployment",
            "spec": {"template": {"spec": {"containers": [{"image": "nginx"}]}}},
        },
        {"kind": "Pod", "spec": "not a spec"},
    ]

    running = retention.in_use(objects, REPO)

    assert running.tags == {sha(1), sha(2), sha(4)}  # other/3 is another repository
    assert running.digests == {digest}


def test_the_registry_and_repository_come_from_the_image() -> None:
    assert retention.docr_repository(REPO) == ("team", "app")
    assert retention.docr_repository("registry.digitalocean.com/team/a/b") == ("team", "a/b")


# -- inputs -------------------------------------------------------------------------------------


def parse(tmp_path: Path, env: dict[str, str] | None = None, **inputs: str) -> settings.Settings:
    (tmp_path / "deploy").mkdir(exist_ok=True)
    (tmp_path / "deploy" / "deployment.yaml").write_text("kind: ConfigMap\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    raw = {
        "image": REPO,
        "sha": sha(1),
        "digitalocean-token": TOKEN,
        "cluster": "prod",
        **inputs,
    }
    return settings.parse(
        raw, {"GITHUB_WORKSPACE": str(tmp_path), **(env or {})}, mask=print, github=True
    )


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"registry-retention": "-1"}, "registry-retention: must be a whole number"),
        ({"registry-retention": "ten"}, "registry-retention: must be a whole number"),
        ({"registry-retention": "0"}, "registry-retention: must be a whole number"),
        ({"registry-gc": "true"}, "registry-gc: needs registry-retention"),
        (
            {"registry-retention": "5", "image": "ghcr.io/org/app"},
            "registry-retention: works only on DigitalOcean Container Registry "
            "(registry.digitalocean.com), and the image is ghcr.io",
        ),
    ],
)
def test_bad_retention_inputs_are_one_line_each(
    tmp_path: Path, inputs: dict[str, str], message: str
) -> None:
    with pytest.raises(InputError) as caught:
        parse(tmp_path, **inputs)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_retention_and_gc_parse_and_a_stand_in_may_play_docr(tmp_path: Path) -> None:
    got = parse(tmp_path, **{"registry-retention": "10", "registry-gc": "true"})
    assert (got.registry_retention, got.registry_gc) == (10, True)
    assert parse(tmp_path).registry_retention == 0
    local = parse(
        tmp_path,
        {"DIGITALOCEAN_REGISTRY_HOST": "127.0.0.1:5000"},
        image="127.0.0.1:5000/team/app",
        **{"registry-retention": "3"},
    )
    assert (local.docr_host, local.registry_retention) == ("127.0.0.1:5000", 3)


# -- the phase in a whole deploy ------------------------------------------------------------------


def world_with_history(tmp_path: Path, **kw: Any) -> World:
    world = World(tmp_path, registry_retention=2, **kw)
    world.cloud.tags = [tag(n) for n in range(1, 7)] + [tag(60, name="buildcache")]
    old = replicaset("web", 1)  # revision 1 runs tag 1: a rollback's image
    old["spec"]["template"] = {
        "spec": {"containers": [{"name": "web", "image": f"{REPO}:{sha(1)}"}]}
    }
    world.cluster.put(old)
    return world


def test_after_a_green_deploy_the_old_commit_tags_are_deleted_and_listed(tmp_path: Path) -> None:
    world = world_with_history(tmp_path, sha=sha(6), build_cache=f"{REPO}:buildcache")

    outcome = world.deploy()

    assert outcome.error is None, world.log.getvalue()
    deleted = [
        c.removeprefix("digitalocean delete_tag ") for c in world.journal if "delete_tag" in c
    ]
    assert deleted == [sha(4), sha(3), sha(2)]  # 6 and 5 newest, 1 is a rollback's, cache kept
    log = world.log.getvalue()
    assert "::group::Registry retention: team/app" in log
    assert f"deleted 3: {sha(4)}, {sha(3)}, {sha(2)}" in log
    assert "(running)" in log and "build cache" in log
    assert "### Registry retention" in world.summary
    assert not any("start_garbage_collection" in c for c in world.journal)


def test_registry_gc_starts_a_garbage_collection_after_deleting(tmp_path: Path) -> None:
    world = world_with_history(tmp_path, sha=sha(6), registry_gc=True)
    assert world.deploy().error is None
    assert "digitalocean start_garbage_collection team" in world.journal
    assert "garbage collection gc-2 started (requested)" in world.log.getvalue()


def test_a_red_deploy_deletes_nothing(tmp_path: Path) -> None:
    world = world_with_history(tmp_path, behaviour={"web": "crash"}, sha=sha(6))
    outcome = world.deploy()
    assert outcome.error is not None
    assert not any(c.startswith("digitalocean list_tags") for c in world.journal)
    assert not any("delete_tag" in c for c in world.journal)


def test_a_dry_run_only_lists_what_it_would_delete(tmp_path: Path) -> None:
    world = world_with_history(tmp_path, sha=sha(6), dry_run=True, registry_gc=True)
    world.cluster.preview = lambda docs, **kw: []  # type: ignore[attr-defined]  # no changes
    assert world.deploy().error is None
    assert not any("delete_tag" in c or "start_garbage" in c for c in world.journal)
    log = world.log.getvalue()
    assert f"would delete (dry-run) 3: {sha(4)}, {sha(3)}, {sha(2)}" in log
    assert "would start a garbage collection (registry-gc)" in log


def test_a_retention_failure_is_a_warning_and_the_deploy_stays_green(tmp_path: Path) -> None:
    world = world_with_history(tmp_path, sha=sha(6))

    def refused(registry: str, repository: str, tag: str) -> None:
        raise InputError(
            "the token may not delete the tag: it needs the `registry:delete` scope",
            where="digitalocean-token",
        )

    world.cloud.delete_tag = refused  # type: ignore[method-assign]
    outcome = world.deploy()
    assert outcome.error is None
    assert "::warning title=Registry retention failed::registry retention stopped: " in (
        world.log.getvalue()
    )
    assert "`registry:delete`" in world.log.getvalue()


def test_a_running_garbage_collection_is_named_and_waited_for_before_the_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pruning, "GC_POLL_S", 0.01)
    world = World(tmp_path)
    world.cloud.gc_running = 2

    assert world.deploy().error is None

    log = world.log.getvalue()
    assert "registry team: garbage collection gc-1 is running (scanning manifests); the " in log
    assert "the garbage collection ended after" in log
    ref = f"{REPO}:{'0' * 40}"
    reads = [i for i, c in enumerate(world.journal) if "active_garbage_collection" in c]
    assert len(reads) == 3 and reads[-1] < world.journal.index(f"docker push {ref}")


def test_a_garbage_collection_outlasting_the_timeout_stops_before_the_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pruning, "GC_POLL_S", 0.05)
    world = World(tmp_path, timeout_s=0.2)
    world.cloud.gc_running = 10_000

    error = world.deploy().error

    assert isinstance(error, ServiceError) and error.exit_code == 3
    assert "registry team is read-only: garbage collection gc-1 is still running" in str(error)
    assert not any(c.startswith("docker push") for c in world.journal)


def test_a_token_that_may_not_read_the_garbage_collection_does_not_stop_the_push(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)

    def refused(registry: str) -> None:
        raise InputError(
            "the token may not read the registry's garbage collection: it needs the "
            "`registry:read` scope",
            where="digitalocean-token",
        )

    world.cloud.active_garbage_collection = refused  # type: ignore[method-assign,assignment]
    assert world.deploy().error is None
    assert "could not ask whether registry team is being garbage-collected" in (
        world.log.getvalue()
    )
    assert any(c.startswith("docker push") for c in world.journal)


def test_no_garbage_collection_is_asked_about_outside_docr(tmp_path: Path) -> None:
    world = World(tmp_path, image="ghcr.io/org/app")
    assert world.deploy().error is None
    assert not any("garbage" in c for c in world.journal)


# -- the client against the stand-in ------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeDigitalOcean]:
    with FakeDigitalOcean(TOKEN) as server:
        yield server
        for entry in server.requests:
            contract.check_exchange(entry)


@pytest.fixture
def client(fake: FakeDigitalOcean) -> Iterator[DigitalOcean]:
    with DigitalOcean(TOKEN, fake.url, retry=RetryPolicy(total=0)) as do:
        yield do


def seed(fake: FakeDigitalOcean, repo: str, count: int) -> None:
    fake.configure(
        {
            "registry_tags": {
                repo: [
                    {
                        "tag": sha(n),
                        "digest": f"sha256:{n:064x}",
                        "updated_at": (T0 + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                    for n in range(count)
                ]
            }
        }
    )


def test_tags_are_listed_over_every_page_and_deleted(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    seed(fake, "my/app", 205)  # two pages of 200; a `/` in the name is URL-encoded

    tags = client.list_tags("djk-local", "my/app")
    client.delete_tag("djk-local", "my/app", sha(3))
    client.delete_tag("djk-local", "my/app", sha(3))  # gone already: not an error

    assert len(tags) == 205 and tags[3] == RegistryTag(
        sha(3), f"sha256:{3:064x}", T0 + timedelta(minutes=3)
    )
    assert len(client.list_tags("djk-local", "my/app")) == 204
    assert fake.switches()["deleted_tags"] == [f"my/app:{sha(3)}"]
    paths = [e["path"] for e in fake.requests]
    assert paths[0] == "/v2/registry/djk-local/repositories/my%2Fapp/tags"


def test_a_missing_repository_and_a_missing_scope_are_one_line_each(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    seed(fake, "app", 1)
    with pytest.raises(DeployError) as missing:
        client.list_tags("djk-local", "nope")
    assert "the registry has no repository djk-local/nope" in str(missing.value)

    fake.configure({"forbid_scopes": ["registry:delete"]})
    with pytest.raises(InputError) as forbidden:
        client.delete_tag("djk-local", "app", sha(0))
    text = str(forbidden.value)
    assert text.startswith(
        f"digitalocean-token: the token may not delete the tag {sha(0)}: it needs the "
        "`registry:delete` scope (HTTP 403 forbidden"
    )
    assert "\n" not in text and TOKEN not in text


def test_a_garbage_collection_is_started_read_while_it_runs_and_gone_after(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    fake.configure({"gc_seconds": 0.3})
    assert client.active_garbage_collection("djk-local") is None

    started = client.start_garbage_collection("djk-local")
    active = client.active_garbage_collection("djk-local")
    with pytest.raises(ServiceError, match="HTTP 409 conflict"):
        client.start_garbage_collection("djk-local")

    assert active is not None and active.uuid == started.uuid and started.status == "requested"
    import time

    time.sleep(0.35)
    assert client.active_garbage_collection("djk-local") is None
    assert fake.switches()["garbage_collections"] == [started.uuid]


def test_a_garbage_collection_switched_on_runs_for_its_seconds(
    fake: FakeDigitalOcean, client: DigitalOcean
) -> None:
    fake.configure({"garbage_collection": {"running_for": 60}})
    active = client.active_garbage_collection("djk-local")
    assert active is not None and active.status == "scanning manifests"
    fake.configure({"reset": True})
    assert client.active_garbage_collection("djk-local") is None
    fake.configure({"garbage_collection": {"reads": 2}})
    assert client.active_garbage_collection("djk-local") is not None
    assert client.active_garbage_collection("djk-local") is not None
    assert client.active_garbage_collection("djk-local") is None
