"""Registry retention and the garbage-collection wait, through the action, against the stack.

The stack's registry plays DOCR (`DIGITALOCEAN_REGISTRY_HOST` names it, as
`DIGITALOCEAN_API_URL` names the API stand-in). The DigitalOcean stand-in runs here, in the test
process, with `registry_storage` pointing at the stack registry's storage: the same stand-in
code the stack runs (`--registry-storage`), started here so this test does not depend on the
stack having been started by this branch's code. Its tag calls read and untag the stack
registry's real storage (a deleted tag really cannot be pulled afterwards; the manifest stays
until a garbage collection, as on DOCR); its garbage collection is recorded, not performed.

One module-scoped setup: one build (deploy 1), then a preview and a second deploy that reuses
the image; about a minute in all.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client, config

from stack.cli import default_state_dir
from stack.digitalocean import (
    AdminClient,
    AdminKubeconfig,
    FakeDigitalOcean,
    TokenRequestMinter,
)
from tests import contract
from tests.harness.runner import ActionRun, run_action

pytestmark = [pytest.mark.stack, pytest.mark.docker]

REGISTRY_NAME = "djk-local"  # the stand-in's registry: the image's first path segment


@pytest.fixture(scope="module")
def do_stand_in(stack: dict[str, str]) -> Iterator[FakeDigitalOcean]:
    admin = AdminClient(AdminKubeconfig.load(Path(stack["KUBECONFIG"])))
    storage = default_state_dir() / "docker" / "registry"
    assert (storage / "docker" / "registry" / "v2").is_dir(), f"no registry storage in {storage}"
    fake = FakeDigitalOcean(
        stack["DIGITALOCEAN_ACCESS_TOKEN"],
        cluster_name=stack["DJK_CLUSTER_NAME"],
        server=admin.admin.server,
        ca_data=admin.admin.ca_data,
        token_minter=TokenRequestMinter(admin, "kube-system/do-deployer"),
        registry=stack["DJK_REGISTRY"],
        registry_name=REGISTRY_NAME,
        registry_login=(stack["DJK_REGISTRY_USER"], stack["DJK_REGISTRY_PASSWORD"]),
        registry_storage=storage,
    )
    with fake:
        yield fake
    admin.close()


def manifests() -> str:
    return """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: <IMAGE>}]
"""


class Registry:
    """The stack registry's HTTP API, as the test's own eyes."""

    def __init__(self, stack: dict[str, str], repository: str) -> None:
        self.base = f"http://{stack['DJK_REGISTRY']}/v2/{repository}"
        self.auth = (stack["DJK_REGISTRY_USER"], stack["DJK_REGISTRY_PASSWORD"])

    def tags(self) -> set[str]:
        answer = requests.get(f"{self.base}/tags/list", auth=self.auth, timeout=10)
        answer.raise_for_status()
        return set(answer.json().get("tags") or ())

    def manifest(self, ref: str) -> requests.Response:
        accept = ", ".join(
            [
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
            ]
        )
        return requests.get(
            f"{self.base}/manifests/{ref}", auth=self.auth, headers={"Accept": accept}, timeout=10
        )

    def put_variant(self, source: str, tag: str, spaces: int) -> str:
        """`source`'s manifest under `tag`, written with other whitespace: another digest, the
        same image (as another commit's push of the same files would be)."""
        got = self.manifest(source)
        got.raise_for_status()
        body = json.dumps(json.loads(got.content), indent=spaces).encode()
        put = requests.put(
            f"{self.base}/manifests/{tag}",
            data=body,
            auth=self.auth,
            headers={"Content-Type": got.headers["Content-Type"]},
            timeout=10,
        )
        put.raise_for_status()
        return put.headers["Docker-Content-Digest"]


class Scenario:
    def __init__(self) -> None:
        self.first: ActionRun | None = None
        self.preview: ActionRun | None = None
        self.second: ActionRun | None = None
        self.tags_before: set[str] = set()
        self.tags_after: set[str] = set()
        self.old: list[str] = []
        self.current = ""
        self.switches: dict[str, Any] = {}
        self.requests: list[dict[str, Any]] = []
        self.registry: Registry | None = None


@pytest.fixture(scope="module")
def scenario(
    stack: dict[str, str], do_stand_in: FakeDigitalOcean, tmp_path_factory: pytest.TempPathFactory
) -> Scenario:
    seen = Scenario()
    repository = f"{REGISTRY_NAME}/retain-{secrets.token_hex(3)}"
    image = f"{stack['DJK_REGISTRY']}/{repository}"
    registry = seen.registry = Registry(stack, repository)
    workspace = tmp_path_factory.mktemp("retention") / "workspace"
    (workspace / "deploy").mkdir(parents=True)
    (workspace / "Dockerfile").write_text(
        f"FROM {stack['DJK_BASE_IMAGE']}\nCOPY app.txt /app.txt\n"
    )
    (workspace / "app.txt").write_text(secrets.token_hex(8))
    (workspace / "deploy" / "deployment.yaml").write_text(manifests())
    namespace = f"t-retention-{secrets.token_hex(3)}"
    api = config.new_client_from_config(config_file=stack["KUBECONFIG"])
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    deadline = time.monotonic() + 30
    while not core.list_namespaced_service_account(
        namespace, field_selector="metadata.name=default"
    ).items:
        assert time.monotonic() < deadline, "no default ServiceAccount"
        time.sleep(0.05)
    seen.current = secrets.token_hex(20)

    def deploy(**inputs: str) -> ActionRun:
        given = {
            "image": image,
            "sha": seen.current,
            "digitalocean-token": stack["DIGITALOCEAN_ACCESS_TOKEN"],
            "cluster": stack["DJK_CLUSTER_NAME"],
            "namespace": namespace,
            "timeout": "2m",
            # kwok's pods are Ready the instant they start: a short settle window keeps the suite
            # fast (the quick start's e2e runs the default 10s).
            "settle": "2s",
            "build-network": "host",
            **inputs,
        }
        return run_action(
            given,
            workspace,
            extra_env={
                "DIGITALOCEAN_API_URL": do_stand_in.url,
                "DIGITALOCEAN_REGISTRY_HOST": stack["DJK_REGISTRY"],
                "GITHUB_SHA": seen.current,
            },
        )

    try:
        # 1. The first deploy builds and pushes (through DOCR's login: credentials from the API).
        seen.first = deploy()
        assert seen.first.exit_code == 0, seen.first.log[-3000:]
        # Three older commits (other digests) and a release tag, pushed "earlier" (backdated).
        seen.old = [secrets.token_hex(20) for _ in range(3)]
        for spaces, tag in enumerate([*seen.old, "v1.0"], start=1):
            registry.put_variant(seen.current, tag, spaces)
        tags_dir = (
            (default_state_dir() / "docker/registry/docker/registry/v2/repositories")
            / repository
            / "_manifests"
            / "tags"
        )
        now = time.time()
        for age, tag in enumerate(reversed(seen.old), start=1):  # old[0] is the oldest
            os.utime(tags_dir / tag / "current" / "link", (now - 3600 * age, now - 3600 * age))
        # A workload outside the manifests runs the oldest commit: it must stay.
        apps.create_namespaced_deployment(
            namespace,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "worker"},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "worker"}},
                    "template": {
                        "metadata": {"labels": {"app": "worker"}},
                        "spec": {"containers": [{"name": "w", "image": f"{image}:{seen.old[0]}"}]},
                    },
                },
            },
        )
        seen.tags_before = registry.tags()
        do_stand_in.configure({"reset": True})
        # 2. A preview lists what would go and deletes nothing.
        seen.preview = deploy(
            **{"dry-run": "true", "registry-retention": "1", "registry-gc": "true"}
        )
        # 3. A deploy that pushes again (build: always) while a garbage collection runs (for one read:
        #    the deploy waits one poll, 3 s),
        #    then keeps 1 newest commit tag, what runs and the cache, deletes the rest, starts a GC.
        do_stand_in.configure({"garbage_collection": {"reads": 1}})
        seen.second = deploy(build="always", **{"registry-retention": "1", "registry-gc": "true"})
        seen.tags_after = registry.tags()
        seen.switches = do_stand_in.switches()
        seen.requests = list(do_stand_in.requests)
    finally:
        core.delete_namespace(namespace)
        api.close()
    return seen


def test_a_preview_lists_what_retention_would_delete_and_deletes_nothing(
    scenario: Scenario,
) -> None:
    preview = scenario.preview
    assert preview is not None and preview.exit_code == 0, preview.log[-3000:] if preview else ""
    would = f"would delete (dry-run) 2: {scenario.old[2]}, {scenario.old[1]}"
    assert would in preview.log
    assert "would start a garbage collection (registry-gc)" in preview.log
    assert "Registry retention" in preview.summary
    # (and `buildcache`, when the engine builds with BuildKit)
    assert scenario.tags_before - {"buildcache"} == {scenario.current, *scenario.old, "v1.0"}


def test_after_a_green_deploy_old_commit_tags_are_gone_from_the_registry_and_the_rest_stays(
    scenario: Scenario,
) -> None:
    second = scenario.second
    assert second is not None and second.exit_code == 0, second.log[-3000:] if second else ""
    old = scenario.old
    assert f"deleted 2: {old[2]}, {old[1]}" in second.log
    assert "(running)" in second.log
    assert scenario.tags_after == scenario.tags_before - {old[1], old[2]}
    assert scenario.registry is not None
    assert scenario.registry.manifest(old[1]).status_code == 404  # really gone: no pull by tag
    assert scenario.registry.manifest(old[0]).status_code == 200  # the worker's image stays
    assert [t.split(":")[1] for t in scenario.switches["deleted_tags"]] == [old[2], old[1]]
    assert len(scenario.switches["garbage_collections"]) == 1
    assert "garbage collection" in second.log and "started (requested)" in second.log
    assert "### Registry retention" in second.summary


def test_a_running_garbage_collection_is_named_and_waited_for_before_the_push(
    scenario: Scenario,
) -> None:
    second = scenario.second
    assert second is not None
    log = second.log
    wait = "is running (scanning manifests); the registry is read-only until it ends: waiting"
    assert wait in log
    assert "the garbage collection ended after" in log
    assert log.index(wait) < log.index("the garbage collection ended after")


def test_every_call_to_the_stand_in_was_in_contract(scenario: Scenario) -> None:
    paths = {(e["method"], e["path"].rsplit("/", 1)[-1]) for e in scenario.requests}
    assert ("DELETE", scenario.old[1]) in paths
    for entry in scenario.requests:
        contract.check_exchange(entry)
