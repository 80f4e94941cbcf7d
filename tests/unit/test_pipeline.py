"""Pipeline paths the end-to-end tests cannot reach on the local stack: DOCR short-lived registry
credentials (the image host must be registry.digitalocean.com) and a kubeconfig that would expire
before the wait ends because the build ran long."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deployer import pipeline
from deployer.github import Reporter
from deployer.settings import Settings
from deployer.watch import RolloutResult
from stack.digitalocean import FakeDigitalOcean

TOKEN = "dop_v1_" + "a" * 64


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "image": "registry.digitalocean.com/team/app",
        "sha": "0" * 40,
        "workspace": tmp_path,
        "manifests": (),
        "digitalocean_token": TOKEN,
        "cluster": "prod",
        "timeout_s": 600.0,
    }
    values.update(overrides)
    return Settings(**values)


class RecordingDocker:
    def __init__(self) -> None:
        self.logins: list[tuple[str, str, str]] = []

    def login(self, registry: str, username: str, password: str) -> None:
        self.logins.append((registry, username, password))


def test_docr_without_registry_credentials_logs_in_with_short_lived_ones_from_the_api(
    tmp_path: Path,
) -> None:
    with FakeDigitalOcean(
        TOKEN,
        registry="registry.digitalocean.com",
        registry_login=("docr-user", "docr-short-lived-password"),
    ) as fake:
        stream = io.StringIO()
        reporter = Reporter(github=True, stream=stream)
        docker = RecordingDocker()
        pipeline._registry_login(settings(tmp_path, api_url=fake.url), reporter, docker)  # type: ignore[arg-type]
    assert docker.logins == [
        ("registry.digitalocean.com", "docr-user", "docr-short-lived-password")
    ]
    log = stream.getvalue()
    assert "::add-mask::docr-short-lived-password\n" in log
    assert log.index("::add-mask::") < log.index("logged in to registry.digitalocean.com")
    assert "docr-short-lived-password" not in log.replace(
        "::add-mask::docr-short-lived-password", ""
    )


def test_given_registry_credentials_win_over_the_api(tmp_path: Path) -> None:
    docker = RecordingDocker()
    config = settings(
        tmp_path,
        registry_username="bot",
        registry_password="given-password",
        api_url="http://127.0.0.1:9",
    )  # never called
    pipeline._registry_login(config, Reporter(github=False, stream=io.StringIO()), docker)  # type: ignore[arg-type]
    assert docker.logins == [("registry.digitalocean.com", "bot", "given-password")]


class ClosableCluster:
    closed = False

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("left_s", "refetched"), [(3600.0, False), (300.0, True)])
def test_a_kubeconfig_that_would_expire_during_the_wait_is_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, left_s: float, refetched: bool
) -> None:
    old = pipeline.Credentials(
        ClosableCluster(), datetime.now(UTC) + timedelta(seconds=left_s), "old"
    )  # type: ignore[arg-type]
    new = pipeline.Credentials(ClosableCluster(), datetime.now(UTC) + timedelta(hours=1), "new")  # type: ignore[arg-type]
    monkeypatch.setattr(pipeline, "_fetch_credentials", lambda settings, reporter: new)
    outcome = pipeline.Outcome()
    got = pipeline.refresh_if_short(
        settings(tmp_path), Reporter(github=False, stream=io.StringIO()), outcome, old
    )
    assert (got is new) == refetched
    assert old.cluster.closed == refetched  # type: ignore[attr-defined]


def test_a_deploy_with_nothing_to_wait_on_is_a_success() -> None:
    assert pipeline.Outcome().result == "succeeded"


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
    outcome = pipeline.Outcome(
        results=[
            RolloutResult(f"w{i}", "ns", r, "", 0.0)  # type: ignore[arg-type]
            for i, r in enumerate(results)
        ]
    )
    assert outcome.result == expected
