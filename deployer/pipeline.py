"""The deploy, as one readable list of phases. Each phase is one function and one log group.

    preflight → build & push ∥ cluster checks → render → run-first Jobs → apply → watch
    → diagnose (→ rollback) → report

Cheap checks come first: inputs (already validated by settings), manifests, placeholder, wait-for,
config references. Then the image builds while the cluster checks run alongside it: the
DigitalOcean token and cluster, the kubeconfig, the references that must already be in the
cluster, the permission preflight, pull access to DOCR and a server-side dry run of the rendered
manifests. A failed check stops the build at once; their log is shown first, as their own groups,
then the build's. Only `apply` changes the cluster. Whatever happens, the report says what state
the deploy left behind.
"""

from __future__ import annotations

import time

from deployer import manifests, report, run_first, workloads
from deployer.access import Credentials, check_references, credentials, refresh_if_short
from deployer.applying import apply, check_by_dry_run, preview, render
from deployer.building import build_while_checking_the_cluster
from deployer.errors import DeployError, RolloutFailed
from deployer.github import Reporter
from deployer.plan import Interrupt, Outcome, Plan
from deployer.rollouts import diagnose, rollback, watch
from deployer.running_first import run_first_jobs
from deployer.services import Services
from deployer.settings import Settings


def deploy(
    settings: Settings,
    reporter: Reporter,
    services: Services,
    interrupt: Interrupt | None = None,
) -> Outcome:
    """Run every phase, then report. The outcome's `error` says what stopped it, if anything;
    the report has already been written, so the caller only maps it to an exit code."""
    interrupt = interrupt or Interrupt()
    outcome = Outcome(requested_image=settings.image_ref)
    creds: Credentials | None = None
    try:
        plan = preflight(settings, reporter, outcome)
        if settings.dry_run:
            # Nothing is built or pushed: the image reference need not exist to be previewed.
            creds = credentials(settings, reporter, services, outcome, plan)
            outcome.image_ref = settings.image_ref
            rendered = render(settings, reporter, outcome, plan)
            preview(settings, reporter, outcome, creds.cluster, rendered.documents, plan)
            return _finish(reporter, outcome, creds)
        creds = build_while_checking_the_cluster(settings, reporter, services, outcome, plan)
        creds = refresh_if_short(settings, reporter, services, outcome, creds)
        rendered = render(settings, reporter, outcome, plan)
        deadline = time.monotonic() + settings.timeout_s
        rest = rendered.documents
        if rendered.jobs:
            first, rest = run_first.split(rendered.documents, rendered.jobs)
            # Every object is checked before the migration runs, not only the first ones.
            check_by_dry_run(
                settings, reporter, creds.cluster, [d.body for d in rendered.documents], plan
            )
            run_first_jobs(
                settings, reporter, outcome, creds.cluster, first, rendered.jobs, interrupt
            )
        apply(
            settings,
            reporter,
            outcome,
            creds.cluster,
            [d.body for d in rest],
            plan,
            checked=bool(rendered.jobs),
        )
        watch(settings, reporter, outcome, creds.cluster, plan, interrupt, deadline)
        diagnose(reporter, outcome, creds.cluster, interrupt)
        if settings.rollback_on_failure and outcome.result != "succeeded":
            rollback(reporter, outcome, creds.cluster)
        if outcome.result != "succeeded":
            outcome.error = RolloutFailed(report.failure_line(outcome.results))
    except DeployError as error:
        outcome.error = error
    return _finish(reporter, outcome, creds)


def _finish(reporter: Reporter, outcome: Outcome, creds: Credentials | None) -> Outcome:
    if creds is not None:
        creds.cluster.close()
    reporter.publish(report.of_deploy(outcome.facts()))
    return outcome


def preflight(settings: Settings, reporter: Reporter, outcome: Outcome) -> Plan:
    outcome.phase = "preflight"
    root = settings.workspace
    with reporter.group("Preflight: inputs and manifests"):
        sources = manifests.read_sources(settings.manifests, root)
        count = manifests.check_placeholder(sources, settings.placeholder, root)
        # Parse the text as it will be applied, so a placeholder in an odd spot is judged rendered.
        documents = manifests.parse(
            manifests.render(sources, settings.placeholder, settings.image_ref), root
        )
        namespace = manifests.assign_namespace(documents, settings.namespace, root)
        uses = manifests.verify_images(
            documents, settings.image_ref, settings.image, settings.placeholder, root
        )
        chosen = run_first.select(documents, settings.run_first, root)
        run_first_names = [d.name for d in chosen]
        targets = [
            d
            for d in workloads.wait_targets(documents, settings.wait_for)
            if not (d.kind == "Job" and d.name in run_first_names)
        ]
        if chosen:
            reporter.line(
                "runs first, to completion, before any other workload changes: "
                + ", ".join(f"job/{name}" for name in run_first_names)
            )
        if not targets:
            reporter.notice(
                "the manifests hold no Deployment, StatefulSet, DaemonSet or Job: nothing to "
                "wait for after apply",
                title="Nothing to wait for",
            )
        deferred = check_references(settings, documents, namespace)
        ours = [u.subject for u in uses if u.ours]
        reporter.line(
            f"{len(documents)} objects in {len(sources)} file(s); placeholder "
            f"{settings.placeholder} found {count} time(s), in the image of {len(ours)} "
            f"container(s); namespace {namespace}"
        )
        for use in uses:
            if not use.ours:
                reporter.line(f"{use.subject} keeps the image written in the manifest: {use.image}")
        reporter.line(
            f"will watch: {', '.join(f'{d.kind.lower()}/{d.name}' for d in targets) or 'nothing'}"
        )
        return Plan(sources, documents, namespace, targets, deferred, run_first_names)
