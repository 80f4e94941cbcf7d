"""What a roll-out produces, as plain frozen values: what is waited for (`Target`), the doomed pod
the judge found (`PodProblem`), each rollout's result (`RolloutResult`) and, for a red or
timed-out one, its diagnosis (`Diagnosis`, with `LogExcerpt`s and `EventLine`s).

Pure and at the bottom of the import graph: the watcher, the diagnosis and the report all read
these and none of them imports another for its types. A diagnosis is stored once, on its result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from deployer.objects import subject

ResultKind = Literal["succeeded", "failed", "timed-out", "cancelled"]


@dataclass(frozen=True)
class Target:
    """A workload to wait for."""

    name: str
    namespace: str
    generation: int | None = None  # from the apply; None: whatever the object has now
    kind: str = "Deployment"  # a kind of workloads.KINDS

    @property
    def subject(self) -> str:
        return subject(self.kind, self.name)


@dataclass(frozen=True)
class PodProblem:
    """Why one pod of the new revision will not become ready without a new release.

    `state` names the row of `status.FATAL_STATES` that matched; `detail` is one line without a
    subject, so it reads after "deployment/web: " as well as after "pod web-5d9f-x2x: ".
    """

    pod: str
    container: str | None
    init_container: bool
    state: str
    reason: str
    exit_code: int | None
    detail: str

    def message(self, subject: str) -> str:
        return f"{subject}: {self.detail} [pod {self.pod}]"


@dataclass(frozen=True)
class LogExcerpt:
    container: str
    previous: bool
    lines: tuple[str, ...]
    note: str = ""  # why there are no lines, when there are none
    run: str = ""  # which run, when not simply the current or the previous one

    @property
    def title(self) -> str:
        run = self.run or ("previous run" if self.previous else "current run")
        return f"logs of `{self.container}`, {run}"


@dataclass(frozen=True)
class EventLine:
    when: datetime | None
    type: str
    reason: str
    object: str
    message: str
    count: int = 1

    def text(self) -> str:
        stamp = self.when.strftime("%H:%M:%S") if self.when else "--:--:--"
        times = f" (x{self.count})" if self.count > 1 else ""
        return f"{stamp} {self.type} {self.reason} {self.object}: {self.message}{times}"


@dataclass(frozen=True)
class Diagnosis:
    name: str
    namespace: str
    summary: str
    pod: str | None = None
    container: str | None = None
    init_container: bool = False
    reason: str | None = None
    exit_code: int | None = None
    conditions: tuple[str, ...] = ()
    logs: tuple[LogExcerpt, ...] = ()
    events: tuple[EventLine, ...] = ()
    notes: tuple[str, ...] = field(default=())
    since: datetime | None = None
    kind: str = "Deployment"

    @property
    def subject(self) -> str:
        return subject(self.kind, self.name)

    def where(self) -> str | None:
        """Pod, container, reason and exit code in one phrase (None without a pod)."""
        if not self.pod:
            return None
        parts = [f"pod {self.pod}"]
        if self.container:
            kind = "init container" if self.init_container else "container"
            parts.append(f"{kind} `{self.container}`")
        code = f"exit code {self.exit_code}" if self.exit_code is not None else None
        facts = [x for x in (self.reason, code) if x]
        return ", ".join(parts) + (f": {', '.join(facts)}" if facts else "")

    def since_text(self) -> str:
        return f" since {self.since.strftime('%H:%M:%S %Z')}" if self.since else ""


@dataclass(frozen=True)
class RolloutResult:
    """`reason` reads after "<kind>/<name>: " (it does not repeat the name).

    For the diagnosis phase, a red or timed-out result keeps the last object seen (`last_seen`)
    and the doomed pod, if one was found (`problem`); `diagnosis` is filled in by that phase."""

    name: str
    namespace: str
    result: ResultKind
    reason: str
    duration_s: float
    diagnosis: Diagnosis | None = None
    kind: str = "Deployment"
    problem: PodProblem | None = None
    last_seen: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def subject(self) -> str:
        return subject(self.kind, self.name)


def diagnoses(results: Sequence[RolloutResult]) -> list[Diagnosis]:
    """The diagnoses of `results`, in their order (each is stored once, on its result)."""
    return [r.diagnosis for r in results if r.diagnosis is not None]


def result_of(results: Sequence[RolloutResult]) -> str:
    """succeeded if every rollout did (nothing to wait on is a success: what was applied is
    final); timed-out if some timed out and none failed; else failed."""
    if all(r.result == "succeeded" for r in results):
        return "succeeded"
    if any(r.result == "timed-out" for r in results) and not any(
        r.result == "failed" for r in results
    ):
        return "timed-out"
    return "failed"
