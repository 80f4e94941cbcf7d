"""The run-first phase: config and Services applied, then the run-first Jobs, watched and
diagnosed like any rollout; a red one ends the deploy before anything else changes. Old run-first
Jobs are cleaned up after. What to run and what to delete is decided by the pure `run_first`."""

from __future__ import annotations

import dataclasses
from typing import Any

from deployer import manifests, report, run_first
from deployer.errors import DeployError, RolloutFailed
from deployer.github import Reporter
from deployer.results import Target, result_of
from deployer.rollouts import Stage, roll_out
from deployer.run import Run
from deployer.services import ClusterApi


def run_first_jobs(
    run: Run,
    cluster: ClusterApi,
    first: list[manifests.Document],
    jobs: list[run_first.RunFirstJob],
    timeout_s: float,
) -> None:
    """Apply what changes no running pod (config, Services), then each run-first Job, and wait
    for them with the same fail-fast rules and diagnosis as any rollout. A failure ends the deploy
    here: nothing else is applied."""
    job_ids = {id(j.document) for j in jobs}
    names = ", ".join(f"job/{j.name}" for j in jobs)
    with run.phase("run-first"):
        _run_jobs(
            run,
            cluster,
            jobs,
            [d.body for d in first if id(d) not in job_ids],
            Stage("the run-first Jobs", f"Run first: {names} (before anything else changes)"),
            timeout_s,
            "nothing else was applied: the run-first Jobs must complete before any other "
            "workload changes, so every running workload is unchanged",
        )


def run_after_jobs(
    run: Run, cluster: ClusterApi, jobs: list[run_first.RunFirstJob], timeout_s: float
) -> None:
    """The run-after Jobs, once every rollout is green: applied, watched and diagnosed the same
    way. A failure fails the deploy, and says that the release itself is live."""
    names = ", ".join(f"job/{j.name}" for j in jobs)
    with run.phase("run-after"):
        _run_jobs(
            run,
            cluster,
            jobs,
            [],
            Stage("the run-after Jobs", f"Run after: {names} (every rollout is green)"),
            timeout_s,
            "the release itself is live: every rollout succeeded before the run-after Jobs ran",
        )


def _run_jobs(
    run: Run,
    cluster: ClusterApi,
    jobs: list[run_first.RunFirstJob],
    bodies: list[dict[str, Any]],
    stage: Stage,
    timeout_s: float,
    if_failed: str,
) -> None:
    results = roll_out(
        run,
        cluster,
        [],
        bodies=bodies,
        timeout_s=timeout_s,
        stage=dataclasses.replace(stage, decide=lambda: _decide(run, cluster, jobs)),
    )
    if result_of(results) != "succeeded":
        line = f"{report.failure_line(results)}; {if_failed}"
        run.reporter.line(line)
        raise RolloutFailed(line)
    _clean_up_run_first(run.reporter, cluster, jobs)


def _decide(
    run: Run, cluster: ClusterApi, jobs: list[run_first.RunFirstJob]
) -> tuple[list[dict[str, Any]], list[Target]]:
    """For each Job, as `run_first.decide` says: run it, run it again (the old one deleted
    first), wait for the one already running, or skip it (it completed at this commit: it is
    not rolled out again, so it has no result). What to apply, and what to wait for."""
    bodies: list[dict[str, Any]] = []
    targets: list[Target] = []
    for job in jobs:
        existing = cluster.get_object("batch/v1", "Job", job.name, job.namespace)
        decision, why = run_first.decide(existing, rerun=run.settings.rerun_first)
        run.reporter.line(f"job/{job.name}: {why}")
        if decision == "skip":
            continue
        if decision == "rerun":
            # Foreground: the Job goes only once its pods are gone, so no old pod outlives it.
            cluster.delete_object(
                "batch/v1", "Job", job.name, job.namespace, propagation="Foreground", wait_s=60
            )
        if decision in ("run", "rerun"):
            bodies.append(job.document.body)
        targets.append(Target(job.name, job.namespace, None, kind="Job"))
    return bodies, targets


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
