"""The one roll-out: apply → watch → diagnose. The deploy's workloads, the run-first and
run-after Jobs, watch-only, the rollback's restored release and `deployer wait` (nothing to
apply) all go through `roll_out`, so they are judged, diagnosed and reported the same way."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployer import report
from deployer.applying import apply_bodies, check_by_dry_run
from deployer.diagnose import diagnose_all
from deployer.errors import Cancelled, InputError
from deployer.kube import FIELD_MANAGER
from deployer.objects import name as name_of
from deployer.objects import subject
from deployer.plan import Plan
from deployer.results import RolloutResult, Target
from deployer.run import Run
from deployer.services import ClusterApi
from deployer.watch import watch_rollouts
from deployer.workloads import KINDS

Decide = Callable[[], tuple[list[dict[str, Any]], list[Target]]]


@dataclass(frozen=True)
class Stage:
    """What one roll-out is, for its log: `what` is waited for ("the rollouts"); `group`, when
    given, is one log group around its apply and watch (else each has its own); `decide`, when
    given, runs first in that group and says what else to apply and wait for (the run-first
    Jobs: which run, which were already done at this commit); `record` False keeps the results
    off the outcome's (the rollback's own verdicts, which the caller keeps apart)."""

    what: str = "the rollouts"
    group: str = ""
    decide: Decide | None = None
    record: bool = True


def roll_out(
    run: Run,
    cluster: ClusterApi,
    targets: Sequence[Target],
    *,
    timeout_s: float,
    bodies: Sequence[dict[str, Any]] = (),
    plan: Plan | None = None,
    stage: Stage = Stage(),
) -> list[RolloutResult]:
    """Apply `bodies` (dry-run first those `plan` has not seen accepted, when a plan is given),
    wait for `targets` at the generations just applied and diagnose the red or timed-out ones
    (the rollback, when asked, is the caller's: `rollback.roll_back`). The results are added to
    the outcome (unless the stage says not to) and returned; a signal meanwhile raises
    Cancelled once the outcome says where things stood."""
    with run.reporter.group(stage.group) if stage.group else contextlib.nullcontext():
        if stage.decide is not None:
            more_bodies, more_targets = stage.decide()
            bodies, targets = [*bodies, *more_bodies], [*targets, *more_targets]
        applied = _apply(run, cluster, bodies, plan, grouped=bool(stage.group)) if bodies else []
        generations = {(a.kind, a.namespace, a.name): a.generation for a in applied}
        targets = [
            dataclasses.replace(t, generation=generations.get((t.kind, t.namespace, t.name)))
            if (t.kind, t.namespace, t.name) in generations
            else t
            for t in targets
        ]
        results = _watch(
            run, cluster, targets, timeout_s, grouped=bool(stage.group), record=stage.record
        )
    if run.interrupt.event.is_set():
        raise Cancelled(f"cancelled while waiting for {stage.what}")
    results = _diagnose(run, cluster, results)
    if run.interrupt.event.is_set():
        raise Cancelled(f"cancelled while diagnosing {stage.what}")
    return results


def _apply(
    run: Run,
    cluster: ClusterApi,
    bodies: Sequence[dict[str, Any]],
    plan: Plan | None,
    *,
    grouped: bool,
) -> list[Any]:
    title = f"Apply: {len(bodies)} objects (server-side, field manager {FIELD_MANAGER})"
    # In a stage's one group (run-first Jobs), the phase stays the stage's and no group opens.
    with contextlib.nullcontext() if grouped else run.phase("apply", title):
        if plan is not None:
            check_by_dry_run(run, cluster, list(bodies), plan)
        return apply_bodies(run, cluster, list(bodies))


def _watch(
    run: Run,
    cluster: ClusterApi,
    targets: list[Target],
    timeout_s: float,
    *,
    grouped: bool,
    record: bool = True,
) -> list[RolloutResult]:
    if not targets:
        return []
    title = f"Watch: {len(targets)} rollout(s), timeout {timeout_s:.0f}s"
    with contextlib.nullcontext() if grouped else run.phase("watch", title):
        results = watch_reported(run, cluster, targets, timeout_s)
        if record:
            run.outcome.results = [*run.outcome.results, *results]
        return results


def watch_reported(
    run: Run, cluster: ClusterApi, targets: list[Target], timeout_s: float
) -> list[RolloutResult]:
    """`watch_rollouts` with its progress and each verdict on the log. A signal only sets the
    interrupt's event while it runs (the watcher ends within a moment and says where each rollout
    stood); the interrupt's earlier behaviour is restored afterwards."""
    interrupt, reporter = run.interrupt, run.reporter
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
            settle_s=run.settings.settle_s,  # green means it stays up (the `settle` input)
        )
    finally:
        interrupt.raise_on_signal = raised_on_signal


def _diagnose(run: Run, cluster: ClusterApi, results: list[RolloutResult]) -> list[RolloutResult]:
    """Every red or timed-out rollout diagnosed at once, within a small budget of its own; the
    diagnoses are shown (a group each) and kept on their results, in the outcome too."""
    if not any(r.result in ("failed", "timed-out") for r in results):
        return results
    with run.phase("diagnose"):
        diagnosed = diagnose_all(cluster, results, run.outcome.started, cancel=run.interrupt.event)
        done = {id(r): d for r, d in zip(results, diagnosed, strict=True)}
        run.outcome.results = [done.get(id(r), r) for r in run.outcome.results]
        run.reporter.publish(
            report.of_diagnoses([r.diagnosis for r in diagnosed if r.diagnosis is not None])
        )
        return diagnosed


def existing_targets(
    cluster: ClusterApi,
    wanted: Sequence[tuple[str, str, str]],
    namespace: str,
    selector: str = "",
) -> list[Target]:
    """What to wait for among workloads already in the cluster (another tool applied them):
    each (Kind, name, where it was named) must exist; with `selector`, every workload of a
    waited kind it matches joins them. Each at the generation it has now."""
    targets: dict[tuple[str, str], Target] = {}
    for kind, name, where in wanted:
        found = cluster.get_object(KINDS[kind].api_version, kind, name, namespace)
        if found is None:
            raise InputError(
                f"{subject(kind, name)} does not exist in namespace {namespace}",
                where=where,
                hint="Check the name and "
                + ("--namespace." if where.startswith("--") else "the namespace input."),
            )
        targets[kind, name] = Target(name, namespace, _generation(found), kind)
    if selector:
        for row in KINDS.values():
            items, _ = cluster.list_collection(row.collection, namespace, selector)
            for found in items:
                key = (row.kind, name_of(found))
                targets.setdefault(key, Target(key[1], namespace, _generation(found), row.kind))
    return list(targets.values())


def _generation(obj: Mapping[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)
