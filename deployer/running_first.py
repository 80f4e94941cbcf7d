"""The run-first phase: config and Services applied, then the run-first Jobs, watched and
diagnosed like any rollout; a red one ends the deploy before anything else changes. Old run-first
Jobs are cleaned up after. What to run and what to delete is decided by the pure `run_first`."""

from __future__ import annotations

from deployer import manifests, report, run_first
from deployer.applying import apply_bodies
from deployer.errors import Cancelled, DeployError, RolloutFailed
from deployer.github import Reporter
from deployer.plan import Interrupt, Outcome
from deployer.rollouts import diagnose, watch_reported
from deployer.services import ClusterApi
from deployer.settings import Settings
from deployer.watch import RolloutResult, Target


def run_first_jobs(
    settings: Settings,
    reporter: Reporter,
    outcome: Outcome,
    cluster: ClusterApi,
    first: list[manifests.Document],
    jobs: list[run_first.RunFirstJob],
    interrupt: Interrupt,
) -> None:
    """Apply what changes no running pod (config, Services), then each run-first Job, and wait
    for them with the same fail-fast rules and diagnosis as any rollout. A failure ends the deploy
    here: nothing else is applied."""
    outcome.phase = "run-first"
    job_ids = {id(j.document) for j in jobs}
    with reporter.group(
        f"Run first: {', '.join(f'job/{j.name}' for j in jobs)} (before anything else changes)"
    ):
        apply_bodies(
            settings, reporter, outcome, cluster, [d.body for d in first if id(d) not in job_ids]
        )
        targets: list[Target] = []
        for job in jobs:
            existing = cluster.get_object("batch/v1", "Job", job.name, job.namespace)
            decision, why = run_first.decide(existing, rerun=settings.rerun_first)
            reporter.line(f"job/{job.name}: {why}")
            if decision == "skip":
                outcome.results = [
                    *outcome.results,
                    RolloutResult(job.name, job.namespace, "succeeded", why, 0.0, kind="Job"),
                ]
                continue
            if decision == "rerun":
                # Foreground: the Job goes only once its pods are gone, so no old pod outlives it.
                cluster.delete_object(
                    "batch/v1", "Job", job.name, job.namespace, propagation="Foreground", wait_s=60
                )
            if decision in ("run", "rerun"):
                apply_bodies(settings, reporter, outcome, cluster, [job.document.body])
            targets.append(Target(job.name, job.namespace, None, kind="Job"))
        if targets:
            results = watch_reported(cluster, targets, settings.timeout_s, reporter, interrupt)
            outcome.results = [*outcome.results, *results]
    if interrupt.event.is_set():
        raise Cancelled("cancelled while waiting for the run-first Jobs")
    diagnose(reporter, outcome, cluster, interrupt)
    if outcome.result != "succeeded":
        line = (
            f"{report.failure_line(outcome.results)}; nothing else was applied: the run-first "
            "Jobs must complete before any other workload changes, so every running workload "
            "is unchanged"
        )
        reporter.line(line)
        raise RolloutFailed(line)
    _clean_up_run_first(reporter, cluster, jobs)


def _clean_up_run_first(
    reporter: Reporter, cluster: ClusterApi, jobs: list[run_first.RunFirstJob]
) -> None:
    """Keep the newest few run-first Jobs per name; older ones go with their pods. A cluster
    that refuses (no delete right) gets a warning, not a failed deploy."""
    namespaces = sorted({j.namespace for j in jobs})
    try:
        for namespace in namespaces:
            listed = cluster.list_labelled("batch/v1", "Job", namespace, run_first.BASE_NAME_LABEL)
            current = {j.name for j in jobs}
            for name in run_first.to_clean_up(listed, current=current):
                cluster.delete_object("batch/v1", "Job", name, namespace, propagation="Background")
                reporter.line(
                    f"job/{name}: deleted (older than the newest {run_first.KEEP_JOBS} run-first Jobs)"
                )
    except DeployError as error:
        reporter.warning(f"old run-first Jobs not cleaned up: {error}", title="Cleanup skipped")
