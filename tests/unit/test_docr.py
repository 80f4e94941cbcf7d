"""Pull access to DigitalOcean Container Registry: the preflight warning and link-registry.

The judgement (deployer.docr) from manifests alone; the pipeline step against the in-process
DigitalOcean stand-in, with a cluster whose ServiceAccounts are a dict and whose DOSecret
operator is the stand-in's hook (as stack/digitalocean.py does it for the real stack).
"""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer import access, docr, manifests
from deployer.cli import real_services
from deployer.errors import InputError
from deployer.github import Reporter
from deployer.plan import Plan
from deployer.settings import Settings
from stack.digitalocean import FakeDigitalOcean, cluster_id_for
from tests import contract
from tests.unit.runs import make_run

TOKEN = "dop_v1_" + "d" * 64
IMAGE = "registry.digitalocean.com/djk-local/app:0123abc"


def documents(text: str, namespace: str = "shop") -> list[manifests.Document]:
    docs = manifests.parse({Path("deploy.yaml"): textwrap.dedent(text)})
    manifests.assign_namespace(docs, namespace)
    return docs


def deployment(name: str = "web", image: str = IMAGE, extra: str = "") -> str:
    return f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          selector: {{matchLabels: {{app: {name}}}}}
          template:
            metadata: {{labels: {{app: {name}}}}}
            spec:
              {extra or "terminationGracePeriodSeconds: 30"}
              containers:
                - {{name: {name}, image: "{image}"}}
        """


def test_the_registry_name_is_the_first_path_part_on_docr_only() -> None:
    assert docr.registry_name(IMAGE) == "djk-local"
    assert docr.registry_name("registry.digitalocean.com/app") is None
    assert docr.registry_name("ghcr.io/djk-local/app:1") is None


def test_a_default_service_account_without_pull_secrets_cannot_pull() -> None:
    asked: list[tuple[str, str]] = []

    def pull_secrets(account: str, namespace: str) -> list[str]:
        asked.append((account, namespace))
        return []

    missing, unknown = docr.without_pull_secret(documents(deployment()), pull_secrets)

    assert missing == [docr.Unpullable("deployment/web", "shop", "default", (IMAGE,))]
    assert unknown == []
    assert asked == [("default", "shop")]
    assert docr.warning(missing[0], "prod") == (
        f"deployment/web in namespace shop pulls {IMAGE}, but neither its pod template nor "
        "serviceaccount/default names an imagePullSecret: every new pod will fail with an "
        "unauthorized pull. To fix, integrate the registry with the cluster once: set "
        "`link-registry: true`, run `doctl kubernetes cluster registry add prod`, or tick the "
        "cluster in the registry's settings (or name an imagePullSecret in the pod template)"
    )


@pytest.mark.parametrize(
    ("text", "secrets"),
    [
        # the pods name a pull secret themselves
        (deployment(extra="imagePullSecrets: [{name: mine}]"), []),
        # their own ServiceAccount has one (asked of the cluster)
        (deployment(extra="serviceAccountName: puller"), ["registry-djk-local"]),
        # not DOCR: nothing to check
        (deployment(image="ghcr.io/team/app:1"), []),
    ],
)
def test_pods_with_a_pull_secret_or_not_on_docr_pass(text: str, secrets: list[str]) -> None:
    missing, unknown = docr.without_pull_secret(documents(text), lambda a, n: secrets)
    assert (missing, unknown) == ([], [])


def test_a_service_account_in_the_manifests_is_judged_from_the_manifests() -> None:
    account = """\
        apiVersion: v1
        kind: ServiceAccount
        metadata: {name: puller}
        imagePullSecrets: [{name: registry-djk-local}]
        ---
"""
    text = account + deployment(extra="serviceAccountName: puller")

    def never(account: str, namespace: str) -> list[str]:
        raise AssertionError("the cluster is not asked")

    assert docr.without_pull_secret(documents(text), never) == ([], [])


def test_an_unreadable_service_account_is_unknown_not_missing() -> None:
    missing, unknown = docr.without_pull_secret(documents(deployment()), lambda a, n: None)
    assert missing == []
    assert [u.workload for u in unknown] == ["deployment/web"]


# -- the pipeline step, against the stand-in -------------------------------------------------------


class FakeCluster:
    """ServiceAccounts as a dict; `pull_secrets` is what deployer.kube.Cluster answers."""

    def __init__(self) -> None:
        self.accounts: dict[tuple[str, str], list[str]] = {("shop", "default"): []}

    def pull_secrets(self, account: str, namespace: str) -> list[str] | None:
        found = self.accounts.get((namespace, account))
        return None if found is None else list(found)


class Operator:
    """The stand-in's DOSecret hook, writing into FakeCluster like DOKS's operator does."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.configs: list[dict[str, Any]] = []

    def forget(self) -> None:
        pass

    def sync(self, secret_name: str, dockerconfigjson: bytes) -> None:
        self.configs.append(json.loads(dockerconfigjson))
        for (_ns, account), secrets in self.cluster.accounts.items():
            if account == "default" and secret_name not in secrets:
                secrets.append(secret_name)


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def fake(cluster: FakeCluster) -> Iterator[FakeDigitalOcean]:
    with FakeDigitalOcean(TOKEN, operator=Operator(cluster)) as server:  # type: ignore[arg-type]
        yield server
        for entry in server.requests:
            contract.check_exchange(entry)


def run(
    fake: FakeDigitalOcean,
    cluster: FakeCluster,
    *,
    link: bool,
    text: str = "",
    dry_run: bool = False,
) -> tuple[str, list[str]]:
    config = Settings(
        image=IMAGE.rsplit(":", 1)[0],
        sha="0123abc",
        workspace=Path(),
        manifests=(),
        digitalocean_token=TOKEN,
        cluster="djk-local",
        api_url=fake.url,
        link_registry=link,
        dry_run=dry_run,
    )
    docs = documents(text or deployment())
    plan = Plan({}, docs, "shop", [], [])
    creds = access.Credentials(cluster, None, "test", cluster_id_for("djk-local"))  # type: ignore[arg-type]
    stream = io.StringIO()
    reporter = Reporter(github=True, stream=stream)
    access._registry_access(make_run(config, reporter, real_services({})), creds, plan)
    log = stream.getvalue()
    return log, [line for line in log.splitlines() if line.startswith("::warning")]


def test_without_link_registry_the_warning_comes_before_the_build_and_nothing_is_called(
    fake: FakeDigitalOcean, cluster: FakeCluster
) -> None:
    _, warnings = run(fake, cluster, link=False)

    assert len(warnings) == 1
    assert warnings[0].startswith("::warning title=No pull access to DOCR::deployment/web")
    assert "`link-registry: true`" in warnings[0]
    assert fake.requests == []


def test_link_registry_integrates_once_and_the_pods_can_pull(
    fake: FakeDigitalOcean, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(access, "LINK_POLL_S", 0.05)

    log, warnings = run(fake, cluster, link=True)

    assert warnings == []
    assert "registry djk-local is now integrated with the cluster" in log
    assert "pull access to registry.digitalocean.com: every workload using it has" in log
    assert cluster.accounts[("shop", "default")] == ["registry-djk-local"]
    assert [(e["method"], e["path"]) for e in fake.requests] == [
        ("GET", "/v2/registry"),
        ("GET", f"/v2/kubernetes/clusters/{cluster_id_for('djk-local')}"),
        ("POST", "/v2/kubernetes/registry"),
    ]

    fake.requests.clear()
    log, warnings = run(fake, cluster, link=True)  # the next deploy: a read, no write

    assert warnings == []
    assert "registry djk-local was already integrated" in log
    assert [e["method"] for e in fake.requests] == ["GET", "GET"]


def test_a_dry_run_with_link_registry_changes_nothing_at_digitalocean(
    fake: FakeDigitalOcean, cluster: FakeCluster
) -> None:
    log, warnings = run(fake, cluster, link=True, dry_run=True)

    assert "dry run: link-registry would integrate the registry with the cluster" in log
    assert len(warnings) == 1 and "No pull access to DOCR" in warnings[0]
    assert fake.requests == []
    assert cluster.accounts[("shop", "default")] == []


def test_link_registry_without_the_scope_names_it(
    fake: FakeDigitalOcean, cluster: FakeCluster
) -> None:
    fake.configure({"forbid_scopes": ["kubernetes:update"]})

    with pytest.raises(InputError) as info:
        run(fake, cluster, link=True)

    assert str(info.value).startswith(
        "digitalocean-token: the token may not add the container registry to the cluster: it "
        "needs the `kubernetes:create` and `kubernetes:update` scopes (HTTP 403 forbidden"
    )


def test_link_registry_warns_when_the_images_are_in_another_registry(
    fake: FakeDigitalOcean, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(access, "LINK_POLL_S", 0.05)
    other = "registry.digitalocean.com/someone-else/app:1"

    _, warnings = run(fake, cluster, link=True, text=deployment(image=other))

    assert warnings[0] == (
        "::warning title=Another registry::the images are in registry someone-else, but this "
        "token's registry is djk-local: link-registry gives the cluster pull access to "
        "djk-local only"
    )
