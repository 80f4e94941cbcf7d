"""The deploy, as one readable list of phases. Each phase is one function and one log group.

    preflight → build & push ∥ cluster checks → render → run-first Jobs → apply → watch
    → diagnose (→ rollback) → run-after Jobs → prune → report

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
from collections.abc import Sequence

from deployer import app_url, applyset, manifests, report, rollback, run_first, workloads
from deployer.access import (
    Credentials,
    check_references,
    credentials,
    credentials_to_watch,
    refresh_if_short,
)
from deployer.applying import check_by_dry_run, preview, render
from deployer.building import CacheTag, build_while_checking_the_cluster
from deployer.commenting import comment_preview
from deployer.errors import Cancelled, DeployError, InputError, RolloutFailed
from deployer.plan import Plan, Rendered
from deployer.pruning import prune_registry
from deployer.results import Target, result_of
from deployer.rollouts import existing_targets, roll_out
from deployer.run import Outcome, Run
from deployer.running_first import run_after_jobs, run_first_jobs
from deployer.services import ClusterApi


def deploy(run: Run) -> Outcome:
    """Run every phase, then report. The outcome's `error` says what stopped it, if anything;
    the report has already been written, so the caller only maps it to an exit code."""
    settings, outcome = run.settings, run.outcome
    if not settings.apply:
        return watch_only(run)
    creds: Credentials | None = None
    cache: CacheTag | None = None
    try:
        plan = preflight(run)
        if settings.dry_run:
            # Nothing is built or pushed: the image reference need not exist to be previewed.
            creds = credentials(run, plan)
            outcome.image_ref = settings.image_ref
            documents = render(run, plan).documents
            preview(run, creds.cluster, documents, plan)
            if settings.prune:
                applyset.preview(run, creds.cluster, [d.body for d in documents], plan.namespace)
            prune_registry(run, creds.cluster, plan.namespace)
            return _finish(run, creds, cache)
        creds, cache = build_while_checking_the_cluster(run, plan)
        creds = refresh_if_short(run, creds)
        rendered = render(run, plan)
        release(run, creds.cluster, plan, rendered)
    except DeployError as error:
        outcome.error = error
    return _finish(run, creds, cache)


def release(run: Run, cluster: ClusterApi, plan: Plan, rendered: Rendered) -> None:
    """From the rendered manifests to a live release: the ApplySet's parent (prune), what a
    failure would restore read first, the run-first Jobs (a failure puts the config back), the
    rollouts (a failure, with rollback-on-failure, puts the whole release back), the run-after
    Jobs, then prune. A failure is on the outcome, or raised."""
    settings, outcome = run.settings, run.outcome
    checked = bool(rendered.jobs or rendered.after)
    if checked:
        # Every object is checked before any Job runs, not only the ones applied with it.
        check_by_dry_run(run, cluster, [d.body for d in rendered.documents], plan)
    pruning = None
    if settings.prune:
        # The parent first (refused if another tool's), as the superset: nothing leaks.
        bodies = [d.body for d in rendered.documents]
        pruning = applyset.before_apply(run, cluster, bodies, plan.namespace)
    snapshot = None
    if rendered.jobs or settings.rollback_on_failure:
        # What the deploy is about to change, read before it does: a failed migration puts
        # the config back, a failed rollout (rollback-on-failure) the whole release.
        snapshot = rollback.capture(
            run,
            cluster,
            [d.body for d in rendered.documents],
            workloads=settings.rollback_on_failure,
        )
    if rendered.jobs:
        first, _ = run_first.split(rendered.documents, rendered.jobs)
        allowed = run_first.time_allowed(
            rendered.jobs, settings.run_first_timeout_s, settings.timeout_s
        )
        try:
            run_first_jobs(run, cluster, first, rendered.jobs, allowed)
        except RolloutFailed:
            if snapshot is not None:
                rollback.restore_config(run, cluster, snapshot, "the run-first Jobs failed")
            raise
    try:
        results = roll_out(
            run,
            cluster,
            [Target(d.name, d.namespace, 0, kind=d.kind) for d in plan.targets],
            bodies=[d.body for d in rendered.rolled_out()],
            plan=None if checked else plan,  # with run-first/after Jobs, all was checked above
            timeout_s=settings.timeout_s,  # starts now, after the migration had its own time
        )
    except Cancelled:
        raise
    except DeployError as error:
        # Refused part-way through apply: what was applied is put back too.
        if settings.rollback_on_failure and snapshot is not None and outcome.applied:
            outcome.error = error
            rollback.roll_back(run, cluster, snapshot, settings.timeout_s)
        raise
    if result_of(results) != "succeeded":
        outcome.error = RolloutFailed(report.failure_line(outcome.results))
        if settings.rollback_on_failure and snapshot is not None:
            # The rollback has its own budget: the deploy's timeout, anew.
            rollback.roll_back(run, cluster, snapshot, settings.timeout_s)
    else:
        # The run-after Jobs first: a failed one fails the deploy, and nothing is deleted.
        if rendered.after:
            allowed = run_first.time_allowed(rendered.after, None, settings.timeout_s)
            run_after_jobs(run, cluster, rendered.after, allowed)
        if pruning is not None:
            # Only now, every rollout green: what left the manifests leaves the cluster.
            applyset.prune(run, cluster, pruning)
        outcome.url = app_address(run, cluster, rendered.documents, plan.namespace)
        prune_registry(run, cluster, plan.namespace)  # after prune: its images may go too


def watch_only(run: Run) -> Outcome:
    """apply: false. Judge and diagnose workloads another tool applied (a `helm upgrade` step
    before this one): credentials, the workloads named by wait-for or the selector, the same
    roll-out with nothing to apply, the same report."""
    settings, reporter, outcome = run.settings, run.reporter, run.outcome
    creds: Credentials | None = None
    try:
        creds = credentials_to_watch(run)
        namespace = settings.namespace or "default"
        with run.phase("preflight", "Watch only: workloads another tool applied"):
            wanted = [
                (kind, name, "wait-for")
                for kind, _, name in (item.partition("/") for item in settings.wait_for)
            ]
            targets = existing_targets(creds.cluster, wanted, namespace, settings.selector)
            if not targets:
                raise InputError(
                    f"no Deployment, StatefulSet, DaemonSet or Job in namespace {namespace} "
                    f"matches selector {settings.selector}",
                    where="selector",
                    hint="Check the selector's labels and the namespace input "
                    "(kubectl get deploy,sts,ds,job -l ... shows what it picks).",
                )
            reporter.line(f"will watch: {', '.join(t.subject for t in targets)} in {namespace}")
        results = roll_out(run, creds.cluster, targets, timeout_s=settings.timeout_s)
        if result_of(results) != "succeeded":
            outcome.error = RolloutFailed(report.failure_line(outcome.results))
        else:
            outcome.url = settings.url  # what another tool applied is not ours to read
    except DeployError as error:
        outcome.error = error
    return _finish(run, creds, None)


def _finish(run: Run, creds: Credentials | None, cache: CacheTag | None) -> Outcome:
    if cache is not None:
        cache.finish(run.reporter, cancelled=run.interrupt.event.is_set())
    if creds is not None:
        creds.cluster.close()
    if run.settings.dry_run:
        # The preview, or why it failed, on the pull request (github-token): before the report,
        # so a comment that could not be posted is in it.
        comment_preview(run)
    run.reporter.publish(report.of_deploy(run.facts()))
    return run.outcome


URL_WAIT_S = 10.0  # how long a LoadBalancer's external address is waited for


def app_address(
    run: Run, cluster: ClusterApi, documents: Sequence[manifests.Document], namespace: str
) -> str:
    """The `url` output: the `url` input; else an Ingress's host among the applied objects; else
    a LoadBalancer Service's external address (waited for briefly: a notice if not there yet)."""
    if run.settings.url:
        return run.settings.url
    bodies = [d.body for d in documents]
    found = app_url.from_ingresses(bodies)
    services = app_url.load_balancers(bodies)
    if found or not services:
        if found:
            run.reporter.line(f"url: {found} (from the Ingress)")
        return found
    deadline = time.monotonic() + URL_WAIT_S
    while True:
        for name, ns in services:
            service = cluster.get_object("v1", "Service", name, ns or namespace)
            found = app_url.service_url(service or {})
            if found:
                run.reporter.line(f"url: {found} (service/{name}'s load balancer)")
                return found
        if time.monotonic() >= deadline or run.interrupt.event.is_set():
            break
        time.sleep(1.0)
    names = ", ".join(f"service/{name}" for name, _ in services)
    run.reporter.notice(
        f"{names} has no external address yet (no load balancer within {URL_WAIT_S:.0f}s): the "
        "url output is empty; set the url input to state it",
        title="No URL yet",
    )
    return ""


def preflight(run: Run) -> Plan:
    settings, reporter = run.settings, run.reporter
    root = settings.workspace
    with run.phase("preflight", "Preflight: inputs and manifests"):
        sources = manifests.read_sources(settings.manifests, root)
        prepared = manifests.prepare(
            sources,
            placeholder=settings.placeholder,
            image_ref=settings.image_ref,
            repository=settings.image,
            namespace=settings.namespace,
            root=root,
        )
        documents, namespace, uses = prepared.documents, prepared.namespace, prepared.uses
        if settings.prune:
            applyset.check_manifests(documents, root)
        chosen = run_first.select(documents, settings.run_first, root)
        after = run_first.select_after(documents, chosen, root)
        run_first_names = [d.name for d in chosen]
        ordered = [*chosen, *after]
        targets = [
            d
            for d in workloads.wait_targets(documents, settings.wait_for)
            if not any(d is o for o in ordered)
        ]
        if chosen:
            reporter.line(
                "runs first, to completion, before any other workload changes: "
                + ", ".join(f"job/{name}" for name in run_first_names)
            )
        if after:
            reporter.line(
                "runs after every rollout is green: " + ", ".join(d.subject for d in after)
            )
        if not targets:
            reporter.notice(
                "the manifests hold no Deployment, StatefulSet, DaemonSet or Job: nothing to "
                "wait for after apply",
                title="Nothing to wait for",
            )
        deferred = check_references(settings, documents, namespace)
        ours = [u.subject for u in uses if u.ours]
        built = [manifests.display_path(p, root) for p in sources if p.is_dir()]
        files = {d.path for d in documents} | {p for p in sources if not p.is_dir()}
        reporter.line(
            f"{len(documents)} objects in {len(files)} file(s)"
            + (f" (kustomize built {', '.join(built)})" if built else "")
            + "; placeholder "
            f"{settings.placeholder} found {prepared.placeholders} time(s), in the image of {len(ours)} "
            f"container(s); namespace {namespace}"
        )
        for use in uses:
            if not use.ours:
                reporter.line(f"{use.subject} keeps the image written in the manifest: {use.image}")
        reporter.line(f"will watch: {', '.join(f'{d.subject}' for d in targets) or 'nothing'}")
        return Plan(sources, documents, namespace, targets, deferred, run_first_names)
