"""`deploy()` whole, against fake services: the phases in order, what each one asks of docker,
DigitalOcean and the cluster, what the log, outputs and summary say, and what state is left.
Also the paths the end-to-end tests cannot reach on the local stack: DOCR short-lived registry
credentials (the image host must be registry.digitalocean.com) and a kubeconfig that would
expire before the wait ends because the build ran long."""

from __future__ import annotations

import copy
import io
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deployer import pipeline
from deployer.access import Credentials, refresh_if_short
from deployer.digitalocean import DoksCluster, Kubeconfig
from deployer.digitalocean.answers import GarbageCollection, RegistryTag
from deployer.docker import BuildRequest
from deployer.errors import InputError, RolloutFailed, ServiceError
from deployer.github import Reporter
from deployer.kube import Applied, Invalid, Rejected, Rollback
from deployer.results import RolloutResult
from deployer.run import Outcome, Run
from deployer.services import Services
from deployer.settings import Settings
from tests.unit.fake_cluster import NS, FakeCluster, deployment, pod, replicaset

TOKEN = "dop_v1_" + "a" * 64
CLUSTER_TOKEN = "cluster-bearer-token-0123456789"
DIGEST = "sha256:" + "d" * 64
MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {MODE: prod}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: <IMAGE>, envFrom: [{configMapRef: {name: app-config}}]}]
"""


class Journal(list[str]):
    """Every call any fake service received, in order."""


class FakeDocker:
    def __init__(self, journal: Journal, *, has_image: bool = False, build_fails: bool = False):
        self.journal = journal
        self.has_image = has_image
        self.build_fails = build_fails
        self.closed = False
        self.stopped = False
        self.logins: list[tuple[str, str, str]] = []

    def check_daemon(self) -> str:
        self.journal.append("docker check_daemon")
        return "27.0"

    def login(self, registry: str, username: str, password: str) -> None:
        self.journal.append(f"docker login {registry}")
        self.logins.append((registry, username, password))

    def exists(self, ref: str) -> bool:
        self.journal.append(f"docker exists {ref}")
        return self.has_image

    def build(self, request: BuildRequest, line: Callable[[str], None]) -> None:
        self.journal.append(f"docker build {request.ref}")
        line("#1 building")
        if self.build_fails:
            raise InputError("docker build failed (exit 1): oops", where="dockerfile")

    def push(self, ref: str, line: Callable[[str], None]) -> str:
        self.journal.append(f"docker push {ref}")
        return DIGEST

    def remote_digest(self, ref: str) -> str:
        self.journal.append(f"docker remote_digest {ref}")
        return DIGEST

    def buildkit(self) -> bool:
        return True

    def stores_attestations(self) -> bool:
        self.journal.append("docker stores_attestations")
        return True

    def without_buildkit(self) -> str:
        return ""

    def cache_state(self, ref: str) -> str:
        self.journal.append(f"docker cache_state {ref}")
        return ""

    def push_cache(self, ref: str, cache_ref: str) -> str:
        self.journal.append(f"docker push_cache {cache_ref}")
        return ""

    def stop(self) -> None:
        self.stopped = True  # not journaled: when it comes depends on the threads

    def close(self) -> None:
        self.closed = True


class FakeCloud:
    def __init__(self, journal: Journal, *, fail: bool = False) -> None:
        self.journal = journal
        self.fail = fail
        self.gc_running = 0  # how many more reads find a garbage collection running
        self.tags: list[RegistryTag] = []

    def find_cluster(self, name_or_id: str) -> DoksCluster:
        self.journal.append(f"digitalocean find_cluster {name_or_id}")
        if self.fail:
            raise ServiceError("DigitalOcean API", "list clusters failed with HTTP 503")
        return DoksCluster(id="c0ffee00-0000-4000-8000-000000000001", name=name_or_id)

    def kubeconfig(self, cluster_id: str, expiry_seconds: int) -> Kubeconfig:
        self.journal.append("digitalocean kubeconfig")
        config = {"clusters": [{"name": "c", "cluster": {"server": "https://k8s.example"}}]}
        return Kubeconfig(
            config, CLUSTER_TOKEN, datetime.now(UTC) + timedelta(hours=2), (CLUSTER_TOKEN,), "c"
        )

    def registry_credentials(self, registry: str, expiry_seconds: int) -> tuple[str, str]:
        self.journal.append(f"digitalocean registry_credentials {registry}")
        return "docr-user", "docr-short-lived-password"

    def active_garbage_collection(self, registry: str) -> GarbageCollection | None:
        self.journal.append(f"digitalocean active_garbage_collection {registry}")
        if self.gc_running:
            self.gc_running -= 1
            return GarbageCollection("gc-1", "scanning manifests")
        return None

    def start_garbage_collection(self, registry: str) -> GarbageCollection:
        self.journal.append(f"digitalocean start_garbage_collection {registry}")
        return GarbageCollection("gc-2", "requested")

    def list_tags(self, registry: str, repository: str) -> list[RegistryTag]:
        self.journal.append(f"digitalocean list_tags {registry}/{repository}")
        return list(self.tags)

    def delete_tag(self, registry: str, repository: str, tag: str) -> None:
        self.journal.append(f"digitalocean delete_tag {tag}")

    def close(self) -> None:
        pass


class FakeDeployCluster(FakeCluster):
    """The watch's in-memory cluster, plus what preflight, apply and rollback ask, and a
    controller that makes each applied Deployment end as `behaviour[name]` says."""

    def __init__(self, journal: Journal, behaviour: Mapping[str, str]) -> None:
        super().__init__()
        self.journal = journal
        self.behaviour = behaviour
        self.missing: list[str] = []
        self.applied: list[dict[str, Any]] = []
        self.closed = False
        self.refuse: dict[tuple[str, str], str] = {}  # (kind, name) -> the dry run's refusal
        self.absent_namespaces: set[str] = set()  # every other namespace is there

    def server_version(self) -> str:
        self.journal.append("cluster server_version")
        return "v1.31.0"

    def exists(
        self, kind: str, name: str, namespace: str | None, *, api_version: str = "v1"
    ) -> bool:
        self.journal.append(f"cluster exists {kind}/{name}")
        return (kind, namespace or "", name) in self.objects

    def namespace_exists(self, name: str) -> bool | None:
        return name not in self.absent_namespaces

    def pull_secrets(self, service_account: str, namespace: str) -> list[str] | None:
        return None  # "not there yet": the pull-access check says it could not tell

    def get_object(
        self, api_version: str, kind: str, name: str, namespace: str
    ) -> dict[str, Any] | None:
        with self.lock:
            found = self.objects.get((kind, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def list_labelled(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]:
        with self.lock:
            return [  # as the API lists them: items without their kind
                {key: copy.deepcopy(v) for key, v in o.items() if key != "kind"}
                for (k, ns, _), o in self.objects.items()
                if (k, ns) == (kind, namespace)
            ]

    def missing_permissions(
        self,
        documents: Sequence[Mapping[str, Any]],
        also: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> list[str]:
        self.journal.append(f"cluster missing_permissions ({len(documents)} objects)")
        self.asked_also = list(also)
        return self.missing

    def dry_run(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = "",
        namespace: str = "",
        skip: frozenset[int] = frozenset(),
    ) -> int:
        sent = len(docs) - len(skip)
        self.journal.append(f"cluster dry_run ({sent} of {len(docs)} objects)")
        for index, doc in enumerate(docs):
            if index in skip:
                continue
            kind, name = str(doc["kind"]), str(doc["metadata"]["name"])
            if (kind, name) in self.refuse:
                raise Rejected(
                    self.refuse[kind, name], index=index, kind=kind, name=name, namespace=NS
                )
        return len(docs)

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
        done = []
        for doc in docs:
            kind, name = str(doc["kind"]), str(doc["metadata"]["name"])
            self.journal.append(f"cluster apply {kind}/{name}")
            self.applied.append(copy.deepcopy(dict(doc)))
            if kind in ("ConfigMap", "Secret"):
                stored = copy.deepcopy(dict(doc))
                stored["metadata"]["namespace"] = NS
                self.put(stored)
            item = Applied(kind, name, NS, 2 if kind == "Deployment" else None, f"uid-{name}")
            if kind == "Deployment":
                self._roll_out(name)
            done.append(item)
            if on_applied is not None:
                on_applied(item)
        return done

    def _roll_out(self, name: str) -> None:
        self.put(replicaset(name, 2))
        if self.behaviour.get(name) == "crash":
            self.put(deployment(name, updated=1, total=1))
            crashing = pod("pod-crash-loop", name, 2, "x2x7q")
            self.put(crashing)
            # Waiting to restart: a kubelet serves its last run as the plain log.
            self.logs[crashing["metadata"]["name"], "web", False] = "KeyError: 'DATABASE_URL'"
        else:
            self.put(deployment(name, updated=2, available=2))

    def undo_rollout(
        self, deployment_name: str, namespace: str, to_revision: str | None = None
    ) -> Rollback:
        self.journal.append(f"cluster rollback {deployment_name} to {to_revision}")
        # The controller makes the old template revision 3, and it rolls out green.
        self.put(replicaset(deployment_name, 3))
        self.put(
            deployment(
                deployment_name, generation=3, observed=3, revision=3, updated=2, available=2
            )
        )
        return Rollback(
            deployment_name,
            namespace,
            True,
            "2",
            to_revision,
            f"deployment/{deployment_name}: rolled back from revision 2 to revision {to_revision}",
            3,
        )

    def delete_object(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        *,
        propagation: str = "Background",
        wait_s: float = 0.0,
    ) -> None:
        self.journal.append(f"cluster delete {kind}/{name} ({propagation})")
        if (kind, namespace, name) in self.objects:
            self.delete(kind, name)

    def close(self) -> None:
        self.closed = True


class World:
    """One deploy's fakes, its settings and everything it printed."""

    def __init__(self, tmp_path: Path, *, behaviour: Mapping[str, str] | None = None, **kw: Any):
        (tmp_path / "deploy").mkdir()
        (tmp_path / "deploy" / "deployment.yaml").write_text(MANIFEST)
        self.journal = Journal()
        self.docker = FakeDocker(self.journal)
        self.cloud = FakeCloud(self.journal)
        self.cluster = FakeDeployCluster(self.journal, behaviour or {})
        self.settings = settings(tmp_path, **kw)
        self.log = io.StringIO()
        self.outputs_file = tmp_path / "outputs"
        self.summary_file = tmp_path / "summary.md"
        self.reporter = Reporter(
            github=True,
            stream=self.log,
            output_file=self.outputs_file,
            summary_file=self.summary_file,
        )
        self.services = Services(
            docker=lambda: self.docker,
            digitalocean=lambda token, url: self.cloud,
            cluster=lambda config: self.cluster,
        )

    def deploy(self) -> Outcome:
        return pipeline.deploy(Run(self.settings, self.reporter, self.services))

    @property
    def groups(self) -> list[str]:
        return [
            line.removeprefix("::group::").split(":")[0]
            for line in self.log.getvalue().splitlines()
            if line.startswith("::group::")
        ]

    @property
    def summary(self) -> str:
        return self.summary_file.read_text() if self.summary_file.exists() else ""


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "image": "registry.digitalocean.com/team/app",
        "sha": "0" * 40,
        "workspace": tmp_path,
        "manifests": (tmp_path / "deploy" / "deployment.yaml",),
        "digitalocean_token": TOKEN,
        "cluster": "prod",
        "namespace": NS,
        "timeout_s": 20.0,
        # This world's Deployments have no pods to hold to a settle window (test_settle.py
        # and the e2e suites judge that); with one, every green here would wait for pods.
        "settle_s": 0.0,
        "registry_username": "bot",
        "registry_password": "registry-password-1234",
    }
    values.update(overrides)
    return Settings(**values)


# --- deploy() whole ---------------------------------------------------------------------------


def test_a_green_deploy_runs_every_phase_in_order_and_reports_success(tmp_path: Path) -> None:
    world = World(tmp_path)
    outcome = world.deploy()

    # The cluster checks run while the image builds; the log shows them first, then the build.
    assert world.groups == [
        "Preflight",
        "Credentials",
        "Dry run",
        "Build",
        "Push",
        "Render",
        "Apply",
        "Watch",
    ]
    ref = "registry.digitalocean.com/team/app:" + "0" * 40
    # Before the push to DOCR, the registry's garbage collection is asked about (in the build's
    # thread, so its place among the cluster checks' calls varies).
    gc_check = "digitalocean active_garbage_collection team"
    assert world.journal.index(gc_check) < world.journal.index(f"docker push {ref}")
    assert [c for c in world.journal if not c.startswith("docker") and c != gc_check] == [
        "digitalocean find_cluster prod",
        "digitalocean kubeconfig",
        "cluster server_version",
        "cluster missing_permissions (2 objects)",
        # Once, alongside the build: apply sends the very bodies the API server accepted then.
        "cluster dry_run (2 of 2 objects)",
        "cluster apply ConfigMap/app-config",
        "cluster apply Deployment/web",
    ]
    docker_calls = [c for c in world.journal if c.startswith("docker")]
    # The daemon is asked about alongside the login; both before anything needs them.
    assert sorted(docker_calls[:2]) == [
        "docker check_daemon",
        "docker login registry.digitalocean.com",
    ]
    assert docker_calls[2:] == [
        f"docker exists {ref}",
        f"docker build {ref}",
        f"docker push {ref}",
    ]
    assert world.docker.closed and world.cluster.closed
    assert (outcome.result, outcome.image_ref, outcome.digest) == ("succeeded", ref, DIGEST)
    image = world.cluster.applied[1]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == ref
    outputs = world.outputs_file.read_text()
    assert "\nsucceeded\n" in outputs and f"\n{DIGEST}\n" in outputs
    assert f"| deployment/web | {NS} | `{ref}` | ✅ succeeded |" in world.summary
    log = world.log.getvalue()
    assert "State: applied 2 object(s): configmap/app-config, deployment/web." in log
    assert log.count("successfully rolled out") == 1  # the verdict, printed once
    assert "deployment/web: succeeded after " in log
    assert f"::add-mask::{CLUSTER_TOKEN}" in log
    assert log.count(CLUSTER_TOKEN) == 1 and log.count("registry-password-1234") == 0


def test_a_document_the_dry_run_refuses_is_named_at_its_line_and_nothing_is_applied(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.cluster.refuse["Deployment", "web"] = (
        "the API server rejected apply Deployment/web: .spec.replicas: expected numeric"
    )
    error = world.deploy().error
    assert isinstance(error, InputError)
    assert error.exit_code == 2
    assert (error.file, error.line) == ("deploy/deployment.yaml", error.line)
    assert error.line is not None and error.line > 1
    assert not [c for c in world.journal if c.startswith("cluster apply")]
    assert "State: nothing was applied to the cluster" in world.log.getvalue()


def test_a_tag_already_in_the_registry_is_neither_built_nor_pushed(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.docker.has_image = True
    world.deploy()
    assert not any(c.startswith(("docker build", "docker push")) for c in world.journal)
    assert "Push" not in world.groups
    assert any(c.startswith("docker remote_digest") for c in world.journal)


def _previous_release(world: World) -> None:
    """What ran before: the ConfigMap with other data, web at revision 1, green."""
    world.cluster.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config", "namespace": NS, "labels": {"team": "a"}},
            "data": {"MODE": "before"},
        }
    )
    world.cluster.put(replicaset("web", 1))
    world.cluster.put(
        deployment("web", generation=1, observed=1, revision=1, updated=2, available=2)
    )


def test_a_crash_looping_rollout_is_red_diagnosed_and_the_whole_release_rolled_back(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, behaviour={"web": "crash"}, rollback_on_failure=True)
    _previous_release(world)
    outcome = world.deploy()
    error = outcome.error
    assert isinstance(error, RolloutFailed)

    assert error.exit_code == 1
    assert str(error).startswith("deployment/web failed: container `web` is crash-looping")
    # The restore, then the restored release watched in a group of its own.
    assert world.groups[-4:] == ["Watch", "Diagnosis", "Rollback", "Rollback"]
    assert "cluster rollback web to 1" in world.journal
    # The config is back as it was (labels too), by our field manager.
    restored = world.cluster.objects["ConfigMap", NS, "app-config"]
    assert (restored["data"], restored["metadata"]["labels"]) == ({"MODE": "before"}, {"team": "a"})
    assert world.journal.index("cluster apply ConfigMap/app-config", 6) < world.journal.index(
        "cluster rollback web to 1"
    ), "config first: the pods the rollback starts read it"
    assert world.cluster.closed
    log = world.log.getvalue()
    assert "::error title=Rollout failed::deployment/web: container `web` is crash-looping" in log
    assert "KeyError: 'DATABASE_URL'" in log  # the last run's log, in the diagnosis
    assert log.count("deployment/web: failed after ") == 1
    assert "deployment/web: succeeded after " in log  # the restored release's own verdict
    assert (
        "Rolled back: configmap/app-config (restored), deployment/web (to revision 1). "
        "The restored release is healthy: deployment/web succeeded." in log
    )
    # The deploy's verdict stays the failure; the rollback's is apart.
    assert [(r.name, r.result) for r in outcome.results] == [("web", "failed")]
    assert [(r.name, r.result) for r in outcome.rollback_results] == [("web", "succeeded")]
    [result] = json.loads(_output(world, "deployments"))
    assert (result["name"], result["result"]) == ("web", "failed")
    assert _output(world, "result") == "failed"
    assert "### deployment/web" in world.summary
    assert "### Rollback" in world.summary
    assert "The restored release: succeeded" in world.summary


def test_a_first_deploy_that_fails_is_rolled_back_to_nothing(tmp_path: Path) -> None:
    world = World(tmp_path, behaviour={"web": "crash"}, rollback_on_failure=True)
    outcome = world.deploy()
    assert isinstance(outcome.error, RolloutFailed)
    assert "cluster delete ConfigMap/app-config (Background)" in world.journal
    assert "cluster delete Deployment/web (Background)" in world.journal
    assert ("Deployment", NS, "web") not in world.cluster.objects
    assert outcome.rollback_results == []  # nothing to wait for
    log = world.log.getvalue()
    assert "Rolled back: configmap/app-config (deleted), deployment/web (deleted)." in log
    assert world.groups[-1] == "Rollback"


def test_without_rollback_on_failure_nothing_is_read_before_or_restored_after(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, behaviour={"web": "crash"})
    _previous_release(world)
    outcome = world.deploy()
    assert isinstance(outcome.error, RolloutFailed)
    assert not any("rollback" in c or "delete" in c for c in world.journal)
    assert world.cluster.objects["ConfigMap", NS, "app-config"]["data"] == {"MODE": "prod"}
    assert "Rolled back" not in world.log.getvalue()


def test_a_missing_right_stops_the_build_and_changes_nothing(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.cluster.missing = [f"patch configmaps in namespace {NS}"]
    error = world.deploy().error
    assert isinstance(error, InputError)

    assert error.exit_code == 2
    assert "may not: patch configmaps in namespace shop" in str(error)
    # The build ran alongside and was stopped: its log is not shown, nothing was applied.
    assert world.groups == ["Preflight", "Credentials"]
    assert "the image build started alongside was stopped" in world.log.getvalue()
    assert world.docker.stopped
    assert not any(c.startswith("cluster apply") for c in world.journal)
    assert "State: nothing was applied to the cluster (stopped before any change)." in (
        world.log.getvalue()
    )
    assert _output(world, "result") == "failed"


def test_a_reference_missing_from_manifests_and_cluster_names_the_file_and_line(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    (tmp_path / "deploy" / "deployment.yaml").write_text(MANIFEST.split("---\n")[1])
    error = world.deploy().error
    assert isinstance(error, InputError)
    assert (error.file, error.line) == ("deploy/deployment.yaml", 1)  # the document
    assert "needs ConfigMap shop/app-config" in str(error)
    assert "cluster exists ConfigMap/app-config" in world.journal
    assert world.docker.stopped  # the build that ran alongside
    assert not any(c.startswith("cluster apply") for c in world.journal)


def test_an_outside_service_failing_is_exit_3_and_nothing_was_applied(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.cloud.fail = True
    error = world.deploy().error
    assert isinstance(error, ServiceError)
    assert error.exit_code == 3
    # (the build's thread may have reached its garbage-collection read before it was stopped)
    assert [
        c
        for c in world.journal
        if not c.startswith(("docker", "digitalocean active_garbage_collection"))
    ] == ["digitalocean find_cluster prod"]
    assert world.docker.stopped  # the build that ran alongside
    assert "State: nothing was applied to the cluster" in world.log.getvalue()


def test_a_failed_build_leaves_the_cluster_untouched_and_closes_every_service(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.docker.build_fails = True
    assert isinstance(world.deploy().error, InputError)
    assert world.groups == ["Preflight", "Credentials", "Dry run", "Build"]
    assert not any(c.startswith("cluster apply") for c in world.journal)
    assert world.docker.closed and world.cluster.closed
    assert "State: nothing was applied to the cluster (stopped during the build)." in (
        world.log.getvalue()
    )


def _output(world: World, name: str) -> str:
    """One output's value from the GITHUB_OUTPUT file (name<<delimiter / value / delimiter)."""
    lines = world.outputs_file.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{name}<<"):
            return lines[i + 1]
    raise AssertionError(f"no output {name}")


# --- paths the stack cannot reach ---------------------------------------------------------------


def test_docr_without_registry_credentials_logs_in_with_short_lived_ones_from_the_api(
    tmp_path: Path,
) -> None:
    world = World(tmp_path, registry_username="", registry_password="")
    world.deploy()
    assert world.docker.logins == [
        ("registry.digitalocean.com", "docr-user", "docr-short-lived-password")
    ]
    log = world.log.getvalue()
    assert "::add-mask::docr-short-lived-password\n" in log
    assert log.index("::add-mask::docr-short") < log.index("logged in to registry.digitalocean.com")
    assert log.count("docr-short-lived-password") == 1


def test_an_unreachable_daemon_is_the_error_even_when_the_login_asked_alongside_fails(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    started = threading.Event()

    def unreachable() -> str:
        started.wait(5)  # answers only after the login has failed
        raise ServiceError("docker", "cannot reach the Docker daemon: no socket")

    def refused(registry: str, username: str, password: str) -> None:
        started.set()
        raise InputError("the registry refused the credentials", where="registry-password")

    world.docker.check_daemon = unreachable  # type: ignore[method-assign]
    world.docker.login = refused  # type: ignore[method-assign]
    error = world.deploy().error
    assert isinstance(error, ServiceError)
    assert "cannot reach the Docker daemon" in str(error)
    assert not any(c.startswith("docker build") for c in world.journal)


def test_given_registry_credentials_win_over_the_api(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.deploy()
    assert world.docker.logins == [("registry.digitalocean.com", "bot", "registry-password-1234")]
    assert not any("registry_credentials" in c for c in world.journal)


@pytest.mark.parametrize(("left_s", "refetched"), [(3600.0, False), (300.0, True)])
def test_a_kubeconfig_that_would_expire_during_the_wait_is_fetched_again(
    tmp_path: Path, left_s: float, refetched: bool
) -> None:
    world = World(tmp_path)
    old = Credentials(
        FakeDeployCluster(Journal(), {}), datetime.now(UTC) + timedelta(seconds=left_s), "old"
    )
    got = refresh_if_short(Run(settings(tmp_path), world.reporter, world.services), old)
    assert (got is not old) == refetched
    assert old.cluster.closed == refetched  # type: ignore[attr-defined]
    assert world.journal.count("digitalocean kubeconfig") == (1 if refetched else 0)


def test_a_deploy_with_nothing_to_wait_on_is_a_success() -> None:
    assert Outcome().result == "succeeded"


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        (["succeeded", "succeeded"], "succeeded"),
        (["succeeded", "failed"], "failed"),
        (["succeeded", "timed-out"], "timed-out"),
        (["failed", "timed-out"], "failed"),
        (["cancelled"], "failed"),
    ],
)
def test_the_deploys_result_is_the_worst_rollouts(results: list[str], expected: str) -> None:
    outcome = Outcome(
        results=[
            RolloutResult(f"w{i}", "ns", r, "", 0.0)  # type: ignore[arg-type]
            for i, r in enumerate(results)
        ]
    )
    assert outcome.result == expected


KEY_REFS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {MODE: prod, DATABASE_HOST: db}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: <IMAGE>
          env:
            - name: DB_HOST
              valueFrom:
                configMapKeyRef: {name: app-config, key: %s}
            - name: SECRET_KEY
              valueFrom:
                secretKeyRef: {name: app-env, key: %s%s}
"""


@pytest.mark.parametrize(
    ("cm_key", "secret_key", "optional", "expected"),
    [
        (
            "DATABSE_HOST",
            "SECRET_KEY",
            "",
            "deploy/deployment.yaml:20: deployment/web container `web` env 'DB_HOST': key "
            "'DATABSE_HOST' "
            "is not in ConfigMap shop/app-config (it has: DATABASE_HOST, MODE). Did you mean "
            "DATABASE_HOST? Fix the key, add it to the ConfigMap, or mark the reference "
            "`optional: true`.",
        ),
        (
            "DATABASE_HOST",
            "SECRET_KEYS",
            "",
            "deploy/deployment.yaml:23: deployment/web container `web` env 'SECRET_KEY': key "
            "'SECRET_KEYS' is not in Secret shop/app-env (it has 1 key(s)). Fix the key, add it to "
            "the Secret, or mark the reference `optional: true`.",
        ),
        ("DATABASE_HOST", "SECRET_KEYS", ", optional: true", None),
    ],
)
def test_a_key_missing_from_a_configmap_or_the_env_file_secret_stops_the_deploy_before_the_build(
    tmp_path: Path, cm_key: str, secret_key: str, optional: str, expected: str | None
) -> None:
    """A real kubelet would hold the pod in CreateContainerConfigError: found at preflight."""
    world = World(tmp_path, secrets=(("SECRET_KEY", "s3cr3t-value-1234"),), secret_name="app-env")
    (tmp_path / "deploy" / "deployment.yaml").write_text(KEY_REFS % (cm_key, secret_key, optional))
    error = world.deploy().error
    if expected is None:
        assert error is None, error
        return
    assert isinstance(error, InputError)
    assert str(error) == expected
    assert world.journal == []  # before anything slow: no docker, DigitalOcean or cluster call
    assert "s3cr3t-value-1234" not in world.log.getvalue()


def test_a_namespace_missing_from_the_cluster_is_found_with_the_cluster_checks_and_says_how_to_fix(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    world.cluster.absent_namespaces = {NS}
    error = world.deploy().error
    assert isinstance(error, InputError)
    assert str(error) == (
        "namespace: namespace shop does not exist in the cluster. Create it (kubectl create "
        "namespace shop), or add a Namespace object to the manifests (apiVersion: v1, kind: "
        "Namespace, metadata: {name: shop})."
    )
    assert world.docker.stopped  # the build that ran alongside
    assert not any(c.startswith("cluster apply") for c in world.journal)
    assert not any(c.startswith("cluster dry_run") for c in world.journal)


def test_a_namespace_written_in_a_manifest_is_named_at_the_document(tmp_path: Path) -> None:
    world = World(tmp_path, namespace="")
    world.cluster.absent_namespaces = {"newuser-app"}
    text = MANIFEST.replace(
        "metadata: {name: app-config}", "metadata: {name: app-config, namespace: newuser-app}"
    )
    (tmp_path / "deploy" / "deployment.yaml").write_text(text)
    error = world.deploy().error
    assert isinstance(error, InputError)
    assert (error.file, error.line) == ("deploy/deployment.yaml", 1)
    assert (
        "namespace newuser-app does not exist in the cluster (configmap/app-config goes there)"
        in str(error)
    )
    assert "kubectl create namespace newuser-app" in str(error)


def test_a_namespace_the_manifests_create_needs_not_exist_yet(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.cluster.absent_namespaces = {NS}
    text = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n---\n" + MANIFEST
    (tmp_path / "deploy" / "deployment.yaml").write_text(text)
    error = world.deploy().error
    assert error is None, error


class RefusingCluster(FakeDeployCluster):
    """Applies the ConfigMap, then the API server refuses the Deployment (an admission webhook
    that changed its mind since the dry run)."""

    def server_side_apply(self, docs: Sequence[Mapping[str, Any]], **kw: Any) -> list[Applied]:
        if (
            any(d["kind"] == "Deployment" for d in docs)
            and kw.get("field_manager") == "django-k8s-deploy"
        ):
            done = super().server_side_apply([d for d in docs if d["kind"] != "Deployment"], **kw)
            if done:
                raise Invalid("the API server rejected apply Deployment/web: denied by policy")
            return done
        return super().server_side_apply(docs, **kw)


def test_an_apply_refused_part_way_is_rolled_back_too(tmp_path: Path) -> None:
    world = World(tmp_path, rollback_on_failure=True)
    world.cluster = RefusingCluster(world.journal, {})
    _previous_release(world)
    outcome = world.deploy()
    assert isinstance(outcome.error, Invalid)
    assert world.cluster.objects["ConfigMap", NS, "app-config"]["data"] == {"MODE": "before"}
    log = world.log.getvalue()
    assert "configmap/app-config: restored to what it was before this deploy" in log
    assert "Rolled back: configmap/app-config (restored)." in log
    assert "cluster rollback web to 1" not in world.journal  # the Deployment was not changed
