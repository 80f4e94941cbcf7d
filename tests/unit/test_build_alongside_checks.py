"""The cluster checks run while the image builds: a failed check stops the build at once and
gives its reason; the log shows the checks' groups first and the build's lines unbroken after
them; secrets the checks learn are masked before any of that."""

from __future__ import annotations

import io
import logging
import os
import stat
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from deployer import building
from deployer.access import Credentials
from deployer.docker import Docker
from deployer.errors import InputError
from deployer.github import Reporter
from deployer.plan import Plan
from deployer.services import Services
from deployer.settings import Settings
from tests.unit.runs import make_run

SHA = "2" * 40
IMAGE = "registry.example.com/team/app"

# `build` prints a line, then more lines slowly; its pid goes to a file so the test can see it die.
FAKE_DOCKER = textwrap.dedent(
    """\
    #!{python}
    import os, sys, time
    here = os.path.dirname(os.path.abspath(__file__))
    args = sys.argv[1:]
    if args[:1] == ["build"]:
        with open(os.path.join(here, "build.pid"), "w") as out:
            out.write(str(os.getpid()))
        for n in range({lines}):
            print(f"#{{n}} step {{n}}", flush=True)
            time.sleep({pause})
    elif args[:1] == ["push"]:
        print("latest: digest: sha256:" + "cd" * 32 + " size: 1")
    elif args[:2] == ["manifest", "inspect"]:
        print("no such manifest", file=sys.stderr)
        sys.exit(1)
    """
)


def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: int, pause: float) -> Path:
    binary = tmp_path / "bin" / "docker"
    binary.parent.mkdir()
    binary.write_text(FAKE_DOCKER.format(python=sys.executable, lines=lines, pause=pause))
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return binary


def services() -> Services:
    return Services(
        docker=lambda: Docker(env=dict(os.environ)),
        digitalocean=lambda token, url: None,  # type: ignore[arg-type,return-value]
        cluster=lambda config: None,  # type: ignore[arg-type,return-value]
    )


def settings(tmp_path: Path) -> Settings:
    return Settings(image=IMAGE, sha=SHA, workspace=tmp_path, manifests=(), build="always")


class FakeCluster:
    closed = False

    def close(self) -> None:
        self.closed = True


def checks(
    monkeypatch: pytest.MonkeyPatch,
    *,
    after: float,
    fail: str = "",
    secret: str = "",
    library_log: str = "",
) -> FakeCluster:
    cluster = FakeCluster()

    def credentials(run: Any, _p: Any) -> Credentials:
        reporter = run.reporter
        with reporter.group("Credentials: cluster access"):
            if secret:
                reporter.mask(secret)
            time.sleep(after)
            if library_log:  # what the kubernetes client logs, e.g. an exec plugin's stderr
                logging.getLogger("kubernetes.config.exec_provider").warning(library_log)
            reporter.line("connected to the fake cluster")
            if fail:
                raise InputError(fail, where="cluster")
        return Credentials(cluster, None, "fake")  # type: ignore[arg-type]

    def dry_run(run: Any, _c: Any, _p: Any) -> None:
        reporter = run.reporter
        with reporter.group("Dry run: server-side apply of the rendered manifests"):
            reporter.line("the API server accepts all 0 objects")

    monkeypatch.setattr(building, "credentials", credentials)
    monkeypatch.setattr(building, "dry_run", dry_run)
    return cluster


def plan() -> Plan:
    return Plan(sources={}, documents=[], namespace="default", targets=[], deferred_refs=[])


def test_a_failed_check_stops_the_build_at_once_and_is_the_reason_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_docker(tmp_path, monkeypatch, lines=600, pause=0.1)  # a minute of building
    cluster = checks(monkeypatch, after=0.5, fail="the cluster identity may not: patch configmaps")
    stream = io.StringIO()
    run = make_run(settings(tmp_path), Reporter(github=True, stream=stream), services())
    started = time.monotonic()
    with pytest.raises(InputError, match="may not: patch configmaps"):
        building.build_while_checking_the_cluster(run, plan())
    assert time.monotonic() - started < 30  # not the minute the build would take
    pid = int((tmp_path / "bin" / "build.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the build is gone, not orphaned
    log = stream.getvalue()
    assert "::group::Credentials: cluster access" in log
    assert "the image build started alongside was stopped" in log
    assert "::group::Build" not in log  # a stopped build's lines are not shown
    assert run.phase_name == "credentials"
    assert not cluster.closed  # never handed out: credentials() closes what it made on failure


def test_the_checks_log_comes_first_and_the_build_log_is_not_interleaved_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_docker(tmp_path, monkeypatch, lines=20, pause=0.02)
    secret = "kubeconfig-token-" + "x" * 20
    cluster = checks(monkeypatch, after=0.3, secret=secret)
    stream = io.StringIO()
    creds, _cache = building.build_while_checking_the_cluster(
        make_run(settings(tmp_path), Reporter(github=True, stream=stream), services()), plan()
    )
    assert creds.cluster is cluster and not cluster.closed
    lines = stream.getvalue().splitlines()
    groups = [line for line in lines if line.startswith("::group::")]
    assert [g.removeprefix("::group::").split(":")[0] for g in groups] == [
        "Credentials",
        "Dry run",
        "Build",
        "Push",
    ]
    assert lines.index(f"::add-mask::{secret}") < lines.index(groups[2])  # before the build
    steps = [n for n, line in enumerate(lines) if line.startswith("#") and " step " in line]
    assert len(steps) == 20 and steps == list(range(steps[0], steps[0] + 20))  # unbroken
    checks_end = lines.index("the API server accepts all 0 objects")
    assert checks_end < lines.index(groups[2])


def test_what_a_library_logs_during_the_checks_is_shown_with_them_even_when_they_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_docker(tmp_path, monkeypatch, lines=600, pause=0.1)
    checks(
        monkeypatch,
        after=0.2,
        fail="cannot reach the cluster",
        library_log="exec: process returned 1. plugin says: token expired",
    )
    stream = io.StringIO()
    reporter = Reporter(github=True, stream=stream)
    with reporter.library_logs(), pytest.raises(InputError):
        building.build_while_checking_the_cluster(
            make_run(settings(tmp_path), reporter, services()), plan()
        )
    lines = stream.getvalue().splitlines()
    shown = [n for n, line in enumerate(lines) if "plugin says: token expired" in line]
    assert shown, "the build's log is dropped, the checks' own library log is not"
    assert lines[shown[0]].startswith("::debug::kubernetes.config.exec_provider: exec:")
    assert shown[0] < lines.index("::endgroup::")  # inside the Credentials group
