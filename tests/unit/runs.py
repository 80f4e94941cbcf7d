"""A `Run` for unit tests that call one phase: plain settings, a terminal reporter, no services."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from deployer.github import Reporter
from deployer.run import Interrupt, Outcome, Run
from deployer.services import Services
from deployer.settings import Settings


def _unused(*_args: Any) -> Any:
    raise AssertionError("this test's run opens no outside service")


def make_run(
    settings: Settings | None = None,
    reporter: Reporter | None = None,
    services: Services | None = None,
    interrupt: Interrupt | None = None,
    outcome: Outcome | None = None,
) -> Run:
    return Run(
        settings
        or Settings(image="reg/app", sha="0" * 40, workspace=Path(), manifests=(), settle_s=0.0),
        reporter or Reporter(github=False, stream=io.StringIO()),
        services or Services(docker=_unused, digitalocean=_unused, cluster=_unused),
        interrupt,
        outcome,
    )
