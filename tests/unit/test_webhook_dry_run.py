"""An admission webhook that looks at the registry (verifyImages, a tag resolved to a digest, an
image that must exist) refuses the dry run alongside the build: the tag is not pushed yet. That
is no verdict: the deploy warns, dry-runs those objects again after the push, before anything is
applied, and fails only if the webhook refuses them then. A refusal by the API server itself
(schema, ValidatingAdmissionPolicy) still fails at once and stops the build.

`deploy()` whole against the pipeline tests' fakes, the cluster's dry run and apply sent through
the real `kube.apply` and `kube.errors` (the API server's Status answers as they come)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deployer import building, pipeline
from deployer.applying import _left_to_after_the_push
from deployer.docker import BuildRequest
from deployer.errors import InputError
from deployer.github import Reporter
from deployer.kube import Forbidden, Invalid, Rejected, from_status
from deployer.kube.errors import denying_webhook
from deployer.run import Run
from tests.unit.test_api_calls import CountingCluster, CountingConnection
from tests.unit.test_pipeline import MANIFEST, FakeDocker, Journal, World, settings

WEBHOOK = "images.policy.example.com"
NOT_PUSHED = f'admission webhook "{WEBHOOK}" denied the request: image {{image}} not found'


def another_deployment(name: str, image: str) -> str:
    """A second document: a Deployment `name` whose one container runs `image`."""
    return f"""\
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: {name}, image: {image}}}]
"""


TWO_DEPLOYMENTS = MANIFEST + another_deployment("worker", "<IMAGE>")


class Registry:
    def __init__(self) -> None:
        self.pushed = False


class PushingDocker(FakeDocker):
    """Builds only once the dry run alongside the build is over (so that dry run always meets
    the tag unpushed, as it does when a build takes minutes), stops when the checks stop it, and
    puts the image in the registry when it pushes."""

    def __init__(self, journal: Journal, registry: Registry, checks_done: threading.Event):
        super().__init__(journal)
        self.registry, self.checks_done = registry, checks_done

    def build(self, request: BuildRequest, line: Callable[[str], None]) -> None:
        assert self.checks_done.wait(timeout=30)
        if self.stopped:
            raise InputError("docker build was stopped", where="dockerfile")
        super().build(request, line)

    def push(self, ref: str, line: Callable[[str], None]) -> str:
        self.registry.pushed = True
        return super().push(ref, line)


class AdmittingConnection(CountingConnection):
    """The API server with an admission webhook: objects in `until_pushed` are denied while the
    image is not in the registry, those in `always` whatever the registry holds. `answers`
    records each dry run as (name, image pushed yet, admitted)."""

    def __init__(self, registry: Registry, *, code: int = 400) -> None:
        super().__init__()
        self.registry, self.code = registry, code
        self.until_pushed: set[str] = set()
        self.always: set[str] = set()
        self.invalid: dict[str, str] = {}  # name -> the API server's own 422 message
        self.answers: list[tuple[str, bool, bool]] = []

    def call(self, method: str, path: str, query: list[tuple[str, str]], **kw: Any) -> Any:
        name = path.rsplit("/", 1)[-1]
        if method == "PATCH" and ("dryRun", "All") in query:
            denied = name in self.always or (name in self.until_pushed and not self.registry.pushed)
            self.answers.append(
                (name, self.registry.pushed, not denied and name not in self.invalid)
            )
            if denied:
                self.requests.append((method, True, name))
                image = kw["body"]["spec"]["template"]["spec"]["containers"][0]["image"]
                status = {"kind": "Status", "message": NOT_PUSHED.format(image=image)}
                raise from_status(self.code, status, f"apply deployment/{name}")
            if name in self.invalid:
                self.requests.append((method, True, name))
                body = {"message": self.invalid[name], "reason": "Invalid"}
                raise from_status(422, body, f"apply deployment/{name}")
        return super().call(method, path, query, **kw)


class WebhookWorld(World):
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, code: int = 400):
        super().__init__(tmp_path)
        self.registry = Registry()
        checks_done = threading.Event()
        self.docker = PushingDocker(self.journal, self.registry, checks_done)
        self.cluster = CountingCluster(self.journal)
        self.api = AdmittingConnection(self.registry, code=code)
        self.cluster.connection = self.api
        early_dry_run = building.dry_run

        def dry_run(*args: Any) -> None:
            try:
                early_dry_run(*args)
            finally:
                checks_done.set()

        monkeypatch.setattr(building, "dry_run", dry_run)

    def manifests(self, text: str) -> None:
        (self.settings.workspace / "deploy" / "deployment.yaml").write_text(text)

    def line_of(self, name: str) -> int:
        lines = (self.settings.workspace / "deploy" / "deployment.yaml").read_text().splitlines()
        metadata = next(i for i, t in enumerate(lines) if t == f"metadata: {{name: {name}}}")
        return metadata - 1  # 1-based: its document starts two lines above its metadata

    def applied(self) -> list[str]:
        return [n for m, dry, n in self.api.requests if m == "PATCH" and not dry]

    def warnings(self) -> list[str]:
        return [t for t in self.log.getvalue().splitlines() if t.startswith("::warning")]


# --- the deploy -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [400, 403], ids=["webhook-default-400", "gatekeeper-style-403"])
def test_a_webhook_refusal_before_the_push_is_checked_again_after_it_and_the_deploy_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    world = WebhookWorld(tmp_path, monkeypatch, code=code)
    world.api.until_pushed.add("web")
    outcome = world.deploy()

    assert outcome.error is None and outcome.result == "succeeded"
    assert not world.docker.stopped
    # The refused object is dry-run again once the image is in the registry, then applied; the
    # one the webhook admitted alongside the build is not sent again.
    assert world.api.answers == [
        ("app-config", False, True),
        ("web", False, False),
        ("web", True, True),
    ]
    assert world.applied() == ["app-config", "web"]
    (warning,) = world.warnings()
    assert f"file=deploy/deployment.yaml,line={world.line_of('web')}" in warning
    assert f'deployment/web: admission webhook "{WEBHOOK}" refused the dry run before' in warning
    assert "checked again after the push, before anything is applied" in warning
    assert "not found" in warning  # the webhook's own reason, shown as data
    log = world.log.getvalue()
    assert "1 left to the dry run after the push" in log
    assert "dry run: after the push (deployment/web again): the API server accepts" in log


def test_a_webhook_that_refuses_again_after_the_push_fails_at_the_line_and_applies_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = WebhookWorld(tmp_path, monkeypatch)
    world.api.always.add("web")
    outcome = world.deploy()

    error = outcome.error
    assert isinstance(error, InputError) and error.exit_code == 2
    assert (error.file, error.line) == ("deploy/deployment.yaml", world.line_of("web"))
    assert f'admission webhook "{WEBHOOK}" denied the request' in error.message
    assert f'"{WEBHOOK}" admits it; nothing was applied' in error.hint
    # The build was not stopped by the first refusal: it was pushed, then the object refused.
    assert not world.docker.stopped and world.registry.pushed
    assert [(n, pushed) for n, pushed, ok in world.api.answers if not ok] == [
        ("web", False),
        ("web", True),
    ]
    assert world.applied() == []
    assert "State: nothing was applied to the cluster" in world.log.getvalue()


def test_after_a_webhook_refusal_the_objects_behind_it_are_still_checked_alongside_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = WebhookWorld(tmp_path, monkeypatch)
    world.manifests(TWO_DEPLOYMENTS)
    world.api.until_pushed.add("web")
    world.api.invalid["worker"] = 'Deployment.apps "worker" is invalid: spec.replicas: Invalid'
    outcome = world.deploy()

    error = outcome.error
    assert isinstance(error, InputError) and error.exit_code == 2
    assert (error.file, error.line) == ("deploy/deployment.yaml", world.line_of("worker"))
    assert world.docker.stopped and not world.registry.pushed
    assert world.applied() == []


def test_a_refusal_by_the_api_server_itself_still_stops_the_build_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ValidatingAdmissionPolicy runs inside the API server and cannot see a registry; its
    message may quote the webhook phrase (a messageExpression is the policy author's text)."""
    world = WebhookWorld(tmp_path, monkeypatch)
    world.api.invalid["web"] = (
        "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'pinned' with binding "
        f"'pinned' denied request: not like admission webhook \"{WEBHOOK}\" denied the request"
    )
    outcome = world.deploy()

    error = outcome.error
    assert isinstance(error, InputError) and error.exit_code == 2
    assert (error.file, error.line) == ("deploy/deployment.yaml", world.line_of("web"))
    assert world.docker.stopped and not world.registry.pushed
    assert world.applied() == [] and world.warnings() == []


# --- the predicate ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "webhook"),
    [
        (f'admission webhook "{WEBHOOK}" denied the request: image not found', WEBHOOK),
        (
            'admission webhook "v.kyverno.svc" denied the request without explanation',
            "v.kyverno.svc",
        ),
        ('Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1', ""),
        (f'x: admission webhook "{WEBHOOK}" denied the request: quoted by a policy', ""),
        ('admission webhook "Bad Name\\u001b[31m" denied the request: hostile', ""),
        (f'failed calling webhook "{WEBHOOK}": connection refused', ""),
    ],
    ids=["webhook", "without-explanation", "schema", "quoted-later", "not-a-name", "unreachable"],
)
def test_only_the_api_servers_own_prefix_names_a_denying_webhook(
    message: str, webhook: str
) -> None:
    assert denying_webhook({"message": message}) == webhook


def test_a_webhook_denial_is_a_refused_object_whatever_its_http_code() -> None:
    denial = {"message": f'admission webhook "{WEBHOOK}" denied the request: no'}
    assert isinstance(from_status(403, denial, "apply deployment/web"), Invalid)
    assert isinstance(from_status(403, {"message": "forbidden"}, "x", verb="patch"), Forbidden)
    refused = Rejected("m", index=0, kind="Deployment", name="web", namespace="shop")
    assert refused.webhook == "" and refused.hint == "Fix the manifest; nothing was applied."


def test_the_webhooks_text_in_the_warning_cannot_become_a_workflow_command(
    tmp_path: Path,
) -> None:
    log = io.StringIO()
    reporter = Reporter(github=True, stream=log)
    world = World(tmp_path)
    plan = pipeline.preflight(Run(world.settings, reporter, world.services))
    hostile = f'admission webhook "{WEBHOOK}" denied the request: x\n::error::forged %0A'
    rejected = Rejected(
        hostile, index=1, kind="Deployment", name="web", namespace="shop", webhook=WEBHOOK
    )
    _left_to_after_the_push(rejected, world.settings, reporter, plan)
    lines = log.getvalue().splitlines()
    (written,) = [t for t in lines if "forged" in t]
    assert written.startswith("::warning ") and "forged %250A" in written
    assert not [t for t in lines if t.startswith("::error")]


def test_a_webhook_refusal_of_an_object_that_does_not_run_our_image_stops_the_build_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The unpushed tag cannot be why a webhook refuses a Deployment of someone else's image."""
    world = WebhookWorld(tmp_path, monkeypatch)
    world.manifests(MANIFEST + another_deployment("cache", '"redis:7"'))
    world.api.until_pushed.add("cache")
    outcome = world.deploy()

    error = outcome.error
    assert isinstance(error, InputError) and error.exit_code == 2
    assert (error.file, error.line) == ("deploy/deployment.yaml", world.line_of("cache"))
    assert f'admission webhook "{WEBHOOK}" denied the request' in error.message
    assert world.docker.stopped and not world.registry.pushed
    assert world.applied() == [] and world.warnings() == []


# --- a preview pushes nothing -------------------------------------------------------------------


def test_a_preview_the_webhook_refuses_for_the_unpushed_image_warns_and_previews_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = WebhookWorld(tmp_path, monkeypatch)
    world.settings = settings(tmp_path, dry_run=True)
    world.api.until_pushed.add("web")
    outcome = world.deploy()

    assert outcome.error is None
    (warning,) = world.warnings()
    assert f"file=deploy/deployment.yaml,line={world.line_of('web')}" in warning
    assert "title=Not previewed" in warning
    assert f'deployment/web: admission webhook "{WEBHOOK}" refused the preview' in warning
    assert "not found" in warning  # the webhook's own reason, shown as data
    log = world.log.getvalue()
    assert "dry run: the API server accepts 1 of 2 object(s)" in log
    assert world.applied() == [] and not world.registry.pushed


def test_a_preview_the_webhook_refuses_for_an_object_without_the_image_fails_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = WebhookWorld(tmp_path, monkeypatch)
    world.settings = settings(tmp_path, dry_run=True)
    world.manifests(
        MANIFEST.replace("image: <IMAGE>", 'image: "redis:7"')
        + another_deployment("app", "<IMAGE>")
    )
    world.api.until_pushed.add("web")  # runs redis:7: the unpushed tag is not its reason
    outcome = world.deploy()

    error = outcome.error
    assert isinstance(error, InputError) and error.exit_code == 2
    assert (error.file, error.line) == ("deploy/deployment.yaml", world.line_of("web"))
    assert world.warnings() == []
