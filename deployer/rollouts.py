"""After apply: watch the rollouts, diagnose the red or timed-out ones, and (opt-in) roll the
failed Deployments back to their previous revision."""

from __future__ import annotations

import time

from deployer import report
from deployer.diagnose import diagnose_all
from deployer.errors import Cancelled
from deployer.github import Reporter
from deployer.plan import Interrupt, Outcome, Plan
from deployer.services import ClusterApi
from deployer.settings import Settings
from deployer.watch import RolloutResult, Target, watch_rollouts


def watch_reported(
    cluster: ClusterApi,
    targets: list[Target],
    timeout_s: float,
    reporter: Reporter,
    interrupt: Interrupt,
    settle_s: float = 0.0,
) -> list[RolloutResult]:
    """`watch_rollouts` with its progress and each verdict on the log. A signal only sets the
    interrupt's event while it runs (the watcher ends within a moment and says where each rollout
    stood); the interrupt's earlier behaviour is restored afterwards."""
    raised_on_signal = interrupt.raise_on_signal
    interrupt.raise_on_signal = False
    try:
        return watch_rollouts(
            cluster,
            targets,
            timeout_s=timeout_s,
            progress=reporter.line,
            on_verdict=lambda r: reporter.line(report.verdict_line(r)),
            cancel=interrupt.event,
            settle_s=settle_s,  # issue 17: the `settle` input
        )
    finally:
        interrupt.raise_on_signal = raised_on_signal


def watch(
    settings: Settings,
    reporter: Reporter,
    outcome: Outcome,
    cluster: ClusterApi,
    plan: Plan,
    interrupt: Interrupt,
    deadline: float | None = None,
) -> None:
    outcome.phase = "watch"
    generations = {(a.kind, a.namespace, a.name): a.generation for a in outcome.applied}
    targets = [
        Target(
            name=d.name,
            namespace=d.namespace,
            generation=generations.get((d.kind, d.namespace, d.name), 0),
            kind=d.kind,
        )
        for d in plan.targets
    ]
    if not targets:
        return
    # One timeout for the whole deploy: what the run-first Jobs used is gone.
    timeout_s = settings.timeout_s if deadline is None else max(deadline - time.monotonic(), 1.0)
    with reporter.group(f"Watch: {len(targets)} rollout(s), timeout {timeout_s:.0f}s"):
        watched = watch_reported(
            cluster, targets, timeout_s, reporter, interrupt, settings.settle_s
        )
        outcome.results = outcome.results + watched
    if interrupt.event.is_set():
        raise Cancelled("cancelled while waiting for the rollouts")


def diagnose(
    reporter: Reporter, outcome: Outcome, cluster: ClusterApi, interrupt: Interrupt
) -> None:
    """Every red or timed-out rollout diagnosed at once, within a small budget of its own."""
    if not any(r.result in ("failed", "timed-out") for r in outcome.results):
        return
    outcome.phase = "diagnose"
    outcome.results = diagnose_all(
        cluster, outcome.results, outcome.started, cancel=interrupt.event
    )
    outcome.diagnoses = [r.diagnosis for r in outcome.results if r.diagnosis is not None]
    reporter.publish(report.of_diagnoses(outcome.diagnoses))
    if interrupt.event.is_set():
        raise Cancelled("cancelled while diagnosing the rollouts")


def rollback(reporter: Reporter, outcome: Outcome, cluster: ClusterApi) -> None:
    outcome.phase = "rollback"
    with reporter.group("Rollback: failed Deployments to their previous revision"):
        for r in outcome.results:
            if r.result == "succeeded" or r.kind != "Deployment":
                continue
            undo = cluster.undo_rollout(r.name, r.namespace)
            if not undo.done:
                reporter.warning(f"deployment/{r.name}: {undo.message}", title="Rollback skipped")
                continue
            outcome.rolled_back.append(r.name)
            reporter.line(f"deployment/{r.name}: {undo.message}")
            reporter.notice(
                f"deployment/{r.name} was rolled back to revision {undo.to_revision}",
                title="Rolled back",
            )
