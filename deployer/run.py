"""One run of the deployer in progress: the context every phase is handed (`Run`), what the
run has done so far for its report (`Outcome`), and the `Interrupt` a signal sets.

A phase is `f(run, …)`, returns what it made, and opens its log group with `run.phase(name,
title)`, which also records where the run is (the report says where it stopped). Work alongside
the main thread (the cluster checks beside the build) gets `run.beside(stream)`: the same
deploy, its own log and its own place, so neither thread writes the other's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from deployer import report
from deployer.errors import DeployError
from deployer.github import Reporter
from deployer.kube import Applied
from deployer.results import Diagnosis, RolloutResult, diagnoses, result_of
from deployer.services import Services
from deployer.settings import Settings, spoken


class Interrupt:
    """Set by SIGINT/SIGTERM. Phases that block in child processes are interrupted by an exception;
    the watch phase instead sees the event and ends within a second or two with what it knows."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.raise_on_signal = True


@dataclass
class Outcome:
    """Everything the report needs, filled in as the phases run; `error` is what stopped the
    deploy (RolloutFailed when a rollout did not succeed), None when it succeeded."""

    requested_image: str = ""
    image_ref: str = ""
    digest: str = ""
    applied: list[Applied] = field(default_factory=list)
    results: list[RolloutResult] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)  # "kind/name (what was done)"
    rollback_results: list[RolloutResult] = field(default_factory=list)  # the restored release
    rollback_problems: list[str] = field(default_factory=list)  # what could not be restored
    pruned: list[str] = field(
        default_factory=list
    )  # kind/name deleted by prune (or, dry run, would be)
    prune_preview: bool = False  # dry-run with prune: `pruned` is what would be deleted
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    error: DeployError | None = None
    preview: list[str] = field(default_factory=list)
    retention: list[str] = field(default_factory=list)  # what registry retention did or would do
    url: str = ""  # the deployed app's address (the url output)

    @property
    def result(self) -> str:
        return result_of(self.results)

    @property
    def diagnoses(self) -> list[Diagnosis]:
        return diagnoses(self.results)


class Run:
    """What every phase of one run reads (settings, services, the interrupt) and writes (the
    log, the outcome), and the phase it is in."""

    def __init__(
        self,
        settings: Settings,
        reporter: Reporter,
        services: Services,
        interrupt: Interrupt | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        self.settings = settings
        self.reporter = reporter
        self.services = services
        self.interrupt = interrupt or Interrupt()
        self.outcome = outcome or Outcome(requested_image=settings.image_ref)
        self.phase_name = "preflight"

    @contextlib.contextmanager
    def phase(self, name: str, title: str = "") -> Iterator[None]:
        """Enter phase `name`, in a log group titled `title` (none without one)."""
        self.phase_name = name
        if not title:
            yield
            return
        with self.reporter.group(title):
            yield

    def beside(self, stream: TextIO) -> Run:
        """The same run for work in another thread: its log on `stream` (secrets shared),
        its own phase; the outcome is this run's."""
        return Run(
            self.settings,
            self.reporter.beside(stream),
            self.services,
            self.interrupt,
            self.outcome,
        )

    def facts(self) -> report.DeployFacts:
        o = self.outcome
        return report.DeployFacts(
            image_ref=o.image_ref,
            digest=o.digest,
            phase=self.phase_name,
            applied=tuple(o.applied),
            results=tuple(o.results),
            diagnoses=tuple(o.diagnoses),
            rolled_back=tuple(o.rolled_back),
            rollback_results=tuple(o.rollback_results),
            rollback_problems=tuple(o.rollback_problems),
            pruned=tuple(o.pruned),
            prune_preview=o.prune_preview,
            # In the words of whoever gave the inputs: the action's names or the CLI's flags.
            error=spoken(o.error, self.settings.github) if o.error else None,
            requested_image=o.requested_image,
            preview=tuple(o.preview),
            watch_only=not self.settings.apply,
            retention=tuple(o.retention),
            url=o.url,
        )
