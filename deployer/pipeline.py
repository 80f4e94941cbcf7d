"""The deploy, as one readable list of phases. Each phase is one function and one log group.

    preflight → build & push ∥ cluster checks → render → apply → watch → diagnose (→ rollback)
    → report

Cheap checks come first: inputs (already validated by settings), manifests, placeholder, wait-for,
config references. Then the image builds while the cluster checks run alongside it: the
DigitalOcean token and cluster, the kubeconfig, the references that must already be in the
cluster, the permission preflight, pull access to DOCR and a server-side dry run of the rendered
manifests. A failed check stops the build at once; their log is shown first, as their own groups,
then the build's. Only `apply` changes the cluster. Whatever happens, the report says what state
the deploy left behind.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from deployer import docr, manifests, report, run_first, stamps, workloads
from deployer import kubeconfig as kubeconfig_input
from deployer import preview as previewing
from deployer.diagnose import Diagnosis, diagnose_all
from deployer.docker import BuildRequest
from deployer.envfile import secret_manifest
from deployer.errors import Cancelled, DeployError, InputError, RolloutFailed
from deployer.github import Reporter
from deployer.kube import FIELD_MANAGER, Applied, Rejected
from deployer.services import Builder, ClusterApi, Services
from deployer.settings import Settings
from deployer.watch import RolloutResult, Target, watch_rollouts

DOCR_HOST = "registry.digitalocean.com"
# The kubeconfig is fetched before the build so a bad token or cluster fails fast; its token must
# outlive the build plus the whole wait. If the build runs past this allowance we fetch a new one.
BUILD_ALLOWANCE_S = 30 * 60
# A build that fails on its own waits this long for the cluster checks' log before it reports.
CHECKS_GRACE_S = 10.0
EXPIRY_MARGIN_S = 5 * 60
# After link-registry, how long DigitalOcean's operator gets to put the pull secret in place.
LINK_WAIT_S = 60.0
LINK_POLL_S = 1.0


@dataclass
class Plan:
    """What preflight learned from the manifests."""

    sources: dict[Path, str]
    documents: list[manifests.Document]
    namespace: str
    targets: list[manifests.Document]
    deferred_refs: list[manifests.ConfigReference]
    run_first: list[str] = field(default_factory=list)  # base names of the run-first Jobs


@dataclass
class Outcome:
    """Everything the report needs, filled in as the phases run; `error` is what stopped the
    deploy (RolloutFailed when a rollout did not succeed), None when it succeeded."""

    requested_image: str = ""
    image_ref: str = ""
    digest: str = ""
    applied: list[Applied] = field(default_factory=list)
    results: list[RolloutResult] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    phase: str = "preflight"
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    error: DeployError | None = None
    preview: list[str] = field(default_factory=list)

    @property
    def result(self) -> str:
        return report.result_of(self.results)

    def facts(self) -> report.DeployFacts:
        return report.DeployFacts(
            image_ref=self.image_ref,
            digest=self.digest,
            phase=self.phase,
            applied=tuple(self.applied),
            results=tuple(self.results),
            diagnoses=tuple(self.diagnoses),
            rolled_back=tuple(self.rolled_back),
            error=self.error,
            requested_image=self.requested_image,
            preview=tuple(self.preview),
        )


@dataclass
class Credentials:
    cluster: ClusterApi
    expires_at: datetime | None
    describe: str
    cluster_id: str = ""  # the DOKS cluster's id, when the credentials came from DigitalOcean


class Interrupt:
    """Set by SIGINT/SIGTERM. Phases that block in child processes are interrupted by an exception;
    the watch phase instead sees the event and ends within a second or two with what it knows."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.raise_on_signal = True


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
            _check_by_dry_run(
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


# -- phases -------------------------------------------------------------------------------------


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
        deferred = _check_references(settings, documents, namespace)
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


def credentials(
    settings: Settings, reporter: Reporter, services: Services, outcome: Outcome, plan: Plan
) -> Credentials:
    outcome.phase = "credentials"
    with reporter.group("Credentials: cluster access"):
        creds = _fetch_credentials(settings, reporter, services)
        try:
            _check_access(settings, reporter, services, creds, plan)
        except BaseException:
            creds.cluster.close()  # its key material goes with it
            raise
        return creds


def _check_access(
    settings: Settings, reporter: Reporter, services: Services, creds: Credentials, plan: Plan
) -> None:
    version = creds.cluster.server_version()
    reporter.line(f"connected to {creds.describe} (Kubernetes {version})")
    missing = [
        r for r in plan.deferred_refs if not creds.cluster.exists(r.kind, r.name, r.namespace)
    ]
    if missing:
        ref = missing[0]
        file, _, line = ref.where.rpartition(":")
        raise InputError(
            f"{ref.used_by} needs {ref.kind} {ref.namespace}/{ref.name}, which is neither in the "
            f"manifests, nor the secrets input, nor the cluster",
            file=file,
            line=int(line),
            hint=f"Add the {ref.kind} to the manifests (or secrets/secret-name), create it in the "
            "cluster, or mark the reference optional: true.",
        )
    missing_rights = creds.cluster.missing_permissions(
        [d.body for d in plan.documents] + _secret_stub(settings, plan)
    )
    if missing_rights:
        shown = "; ".join(missing_rights[:5]) + (
            f"; and {len(missing_rights) - 5} more" if len(missing_rights) > 5 else ""
        )
        raise InputError(
            f"the cluster identity ({creds.describe}) may not: {shown}",
            where="cluster",
            hint="Grant these rights (a Role and RoleBinding per namespace), or use credentials that have them.",
        )
    if plan.deferred_refs:
        reporter.line(
            f"{len(plan.deferred_refs)} referenced ConfigMap/Secret(s) found in the cluster"
        )
    _registry_access(settings, reporter, services, creds, plan)


class _HeldLog(io.TextIOBase):
    """The log while the cluster checks run alongside the build: the build's lines are held
    until the checks are done, then written after theirs, and from then on pass straight through.
    So the log reads in order (checks, then build), and no line of one is interleaved with the
    other's, nor lands inside the build's stop-commands block. When the checks failed, the
    build's lines (held or still to come: it is being stopped) are dropped."""

    def __init__(self, real: TextIO) -> None:
        super().__init__()
        self.real = real
        self.held: list[str] = []
        self.mode = "hold"  # then "live", or "drop"
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            if self.mode == "live":
                self.real.write(text)
            elif self.mode == "hold":
                self.held.append(text)
        return len(text)

    def flush(self) -> None:
        with self.lock:
            if self.mode == "live":
                self.real.flush()

    def release(self, first: str, *, drop: str = "") -> None:
        """Write `first` (the checks' log), then what was held and go live; or, given `drop`
        (why), write that instead and drop the build's lines from now on."""
        with self.lock:
            if self.mode != "hold":
                return
            self.real.write(first)
            self.real.write(drop or "".join(self.held))
            self.held.clear()
            self.mode = "drop" if drop else "live"
            self.real.flush()


class ClusterChecks(threading.Thread):
    """The cluster phases that need no image — credentials (DigitalOcean lookup, kubeconfig),
    references, the permission preflight, pull access to DOCR, and a server-side dry run of the
    rendered manifests with the reference about to be pushed — run while the image builds. They
    log to a buffer; when they are done it is written, then the build's log, held meanwhile. A
    failure stops the build at once (its held log is dropped: it was stopped, not broken)."""

    def __init__(
        self,
        settings: Settings,
        services: Services,
        plan: Plan,
        reporter: Reporter,
        stop_build: Callable[[], None],
    ) -> None:
        super().__init__(name="cluster-checks", daemon=True)  # a cancel never waits for it
        self.settings, self.services, self.plan = settings, services, plan
        self.reporter, self.stop_build = reporter, stop_build
        self.log = Reporter(github=reporter.github, stream=io.StringIO())
        self.held = _HeldLog(reporter.stream)
        self.creds: Credentials | None = None
        self.error: Exception | None = None
        self._lock = threading.Lock()
        self._abandoned = False

    def run(self) -> None:
        creds: Credentials | None = None
        try:
            with self.log.library_logs_of_this_thread():
                creds = credentials(self.settings, self.log, self.services, Outcome(), self.plan)
                dry_run(self.settings, self.log, creds.cluster, self.plan)
        except Exception as error:  # raised again in the main thread, as is
            self.error = error
            self.stop_build()
        with self._lock:
            if self._abandoned or self.error is not None:
                if creds is not None:
                    creds.cluster.close()
                if self._abandoned:
                    return
            else:
                self.creds = creds
            text = self.reporter.adopt(self.log)
            if self.error is None:
                self.held.release(text)
            else:
                self.held.release(text, drop="the image build started alongside was stopped\n")

    def result(self, outcome: Outcome) -> Credentials:
        """Wait for the checks; their credentials, or their error."""
        self.join()
        if self.error is not None:
            outcome.phase = "credentials"
            raise self.error
        assert self.creds is not None
        return self.creds

    def abandon(self, note: str) -> None:
        """The deploy goes on without them (the build failed, or a cancel): the held log is
        shown with `note` first; credentials they still make are closed (key material removed)."""
        with self._lock:
            self._abandoned = True
            if self.creds is not None:
                self.creds.cluster.close()
                self.creds = None
            self.held.release(note)


def build_while_checking_the_cluster(
    settings: Settings, reporter: Reporter, services: Services, outcome: Outcome, plan: Plan
) -> Credentials:
    docker = services.docker()
    checks = ClusterChecks(settings, services, plan, reporter, docker.stop)
    stream = reporter.stream
    reporter.stream = checks.held
    checks.start()
    try:
        try:
            build_and_push(settings, reporter, services, outcome, docker)
        except DeployError:
            # A build stopped because the checks failed gives their reason; a build that failed
            # on its own gives its own, once the checks (seconds) had their say.
            checks.join(timeout=CHECKS_GRACE_S)
            if checks.error is not None:
                outcome.phase = "credentials"
                raise checks.error from None
            raise
        return checks.result(outcome)
    except BaseException:
        if checks.is_alive() or checks.error is None:
            checks.abandon("(the cluster checks were not waited for)\n")
        raise
    finally:
        reporter.stream = stream
        docker.close()


def dry_run(settings: Settings, reporter: Reporter, cluster: ClusterApi, plan: Plan) -> None:
    """The rendered manifests, with the reference about to be pushed, through the API server's
    validation and admission (`dryRun=All`, nothing stored): what apply would be refused is found
    while the image still builds. Apply runs its own dry run again, with the final reference."""
    with reporter.group("Dry run: the rendered manifests, server-side"):
        bodies = render_bodies(
            settings, Reporter(github=False, stream=io.StringIO()), plan, settings.image_ref
        )
        try:
            checked = cluster.dry_run(bodies, field_manager=FIELD_MANAGER)
        except Rejected as rejected:
            raise _located(rejected, settings, plan) from rejected
        reporter.line(f"the API server accepts {checked} of {len(bodies)} object(s)")


def build_and_push(
    settings: Settings,
    reporter: Reporter,
    services: Services,
    outcome: Outcome,
    docker: Builder | None = None,
) -> None:
    outcome.phase = "build"
    ref = settings.image_ref
    owned = docker is None
    docker = docker or services.docker()
    try:
        with reporter.group(f"Build: {ref}"):
            reporter.line(f"Docker daemon {docker.check_daemon()}")
            _registry_login(settings, reporter, services, docker)
            exists = settings.build != "always" and docker.exists(ref)
            if settings.build == "never" and not exists:
                raise InputError(
                    f"{ref} is not in the registry and build is never",
                    where="build",
                    hint="Use build: auto to build it, or pick a sha that was built.",
                )
            if exists:
                reporter.notice(
                    f"{ref} is already in the registry: not rebuilt (build: {settings.build})",
                    title="Image reused",
                )
            else:
                labels = [
                    ("org.opencontainers.image.revision", settings.sha),
                    (
                        "org.opencontainers.image.created",
                        datetime.now(UTC).isoformat(timespec="seconds"),
                    ),
                ]
                if settings.source_url:
                    labels.append(("org.opencontainers.image.source", settings.source_url))
                cache_from = _cache_source(settings, reporter, docker)
                request = BuildRequest(
                    ref=ref,
                    context=settings.context,
                    dockerfile=settings.dockerfile,
                    build_args=settings.build_args,
                    target=settings.target,
                    network=settings.build_network,
                    labels=tuple(labels),
                    cache_from=cache_from,
                    inline_cache=_cache_wanted(settings, docker),
                    secrets=settings.build_secrets,
                )
                if settings.build_secrets:
                    ids = ", ".join(secret_id for secret_id, _ in settings.build_secrets)
                    reporter.line(f"build secrets (RUN --mount=type=secret,id=…): {ids}")
                with reporter.untrusted():
                    docker.build(request, reporter.line)
        if exists:
            outcome.digest = docker.remote_digest(ref)
        else:
            outcome.phase = "push"
            with reporter.group(f"Push: {ref}"):
                with reporter.untrusted():
                    outcome.digest = docker.push(ref, reporter.line)
                if _cache_wanted(settings, docker):
                    _push_cache(settings, reporter, docker)
        outcome.image_ref = f"{settings.image}@{outcome.digest}" if settings.pin_digest else ref
        reporter.line(f"image {outcome.image_ref} (digest {outcome.digest})")
    finally:
        if owned:
            docker.close()


def refresh_if_short(
    settings: Settings,
    reporter: Reporter,
    services: Services,
    outcome: Outcome,
    creds: Credentials,
) -> Credentials:
    if creds.expires_at is None:
        return creds
    left = (creds.expires_at - datetime.now(UTC)).total_seconds()
    if left >= settings.timeout_s + EXPIRY_MARGIN_S:
        return creds
    outcome.phase = "credentials"
    reporter.line(
        f"the cluster token expires in {left:.0f}s, less than the wait needs: fetching a new one"
    )
    creds.cluster.close()
    return _fetch_credentials(settings, reporter, services)


@dataclass
class Rendered:
    """The documents as they will be applied (in apply order) and the run-first Jobs among them,
    already under their per-commit names."""

    documents: list[manifests.Document]
    jobs: list[run_first.RunFirstJob]


def render(settings: Settings, reporter: Reporter, outcome: Outcome, plan: Plan) -> Rendered:
    outcome.phase = "render"
    with reporter.group("Render: manifests"):
        return render_documents(settings, reporter, plan, outcome.image_ref)


def render_bodies(
    settings: Settings, reporter: Reporter, plan: Plan, image_ref: str
) -> list[dict[str, Any]]:
    """The objects to apply, in apply order (what the dry run alongside the build tries)."""
    return [d.body for d in render_documents(settings, reporter, plan, image_ref).documents]


def render_documents(
    settings: Settings, reporter: Reporter, plan: Plan, image_ref: str
) -> Rendered:
    """Placeholder replaced, checksums and cause stamped, the Secret from the secrets input
    added, run-first Jobs renamed per commit; in apply order."""
    rendered = manifests.render(plan.sources, settings.placeholder, image_ref)
    documents = manifests.parse(rendered, settings.workspace)
    manifests.assign_namespace(documents, settings.namespace, settings.workspace)
    manifests.verify_images(
        documents, image_ref, settings.image, settings.placeholder, settings.workspace
    )
    config_users = stamps.stamp_config_checksums(documents)
    if config_users:
        reporter.line(
            "the ConfigMaps/Secrets of the manifests each workload uses: checksum on the pod "
            f"templates of {', '.join(config_users)}"
        )
    if settings.secrets:
        secret = secret_manifest(settings.secret_name, plan.namespace, settings.secrets)
        # Pods read a Secret at start: its checksum rolls exactly the workloads using it.
        users = stamps.stamp_checksum(
            documents,
            {("Secret", plan.namespace, settings.secret_name): secret},
            SECRET_CHECKSUM_ANNOTATION,
        )
        # Sorted with the rest: after config it may need, before the workloads that use it.
        documents.append(manifests.Document(path=Path("secrets"), line=1, body=secret))
        reporter.line(
            f"secret/{settings.secret_name}: {len(settings.secrets)} key(s) from the secrets input"
            + (f"; its checksum is on the pod templates of {', '.join(users)}" if users else "")
        )
    cause = stamps.change_cause(settings.sha, settings.run_url)
    if stamps.stamp_change_cause(documents, cause):
        reporter.line(f"change cause (kubectl rollout history): {cause}")
    jobs = run_first.plan(run_first.select(documents, plan.run_first), settings.sha)
    for job in jobs:
        reporter.line(f"job/{job.base} runs first as job/{job.name} (one Job per commit)")
    for d, label, image in manifests.images(documents):
        if image == image_ref:
            reporter.line(f"{d.kind.lower()}/{d.name} {label}: {image}")
    return Rendered(manifests.apply_order(documents), jobs)


SECRET_CHECKSUM_ANNOTATION = "django-k8s-deploy/secrets-checksum"  # noqa: S105 - a name, not a secret


def apply(
    settings: Settings,
    reporter: Reporter,
    outcome: Outcome,
    cluster: ClusterApi,
    bodies: list[dict[str, Any]],
    plan: Plan,
    *,
    checked: bool = False,
) -> None:
    outcome.phase = "apply"
    with reporter.group(
        f"Apply: {len(bodies)} objects (server-side, field manager {FIELD_MANAGER})"
    ):
        if not checked:
            _check_by_dry_run(settings, reporter, cluster, bodies, plan)
        _apply_bodies(settings, reporter, outcome, cluster, bodies)


def _check_by_dry_run(
    settings: Settings,
    reporter: Reporter,
    cluster: ClusterApi,
    bodies: list[dict[str, Any]],
    plan: Plan,
) -> None:
    """A dry run of every object first: a document the API server refuses for its content
    (`replicas: "two"`) is the user's error at its file:line, and nothing is applied yet."""
    try:
        checked = cluster.dry_run(bodies, field_manager=FIELD_MANAGER)
    except Rejected as rejected:
        raise _located(rejected, settings, plan) from rejected
    reporter.line(f"dry run: the API server accepts {checked} of {len(bodies)} object(s)")


def _apply_bodies(
    settings: Settings,
    reporter: Reporter,
    outcome: Outcome,
    cluster: ClusterApi,
    bodies: list[dict[str, Any]],
) -> None:
    def applied(item: Applied) -> None:
        outcome.applied.append(item)
        reporter.line(
            f"applied {item.kind.lower()}/{item.name}"
            + (f" in {item.namespace}" if item.namespace else "")
        )

    cluster.server_side_apply(
        bodies,
        field_manager=FIELD_MANAGER,
        force_conflicts=settings.force_conflicts,
        on_applied=applied,
        warn=lambda text: reporter.warning(text, title="Field conflict"),
    )


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
        _apply_bodies(
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
                _apply_bodies(settings, reporter, outcome, cluster, [job.document.body])
            targets.append(Target(job.name, job.namespace, None, kind="Job"))
        if targets:
            interrupt.raise_on_signal = False
            try:
                results = watch_rollouts(
                    cluster,
                    targets,
                    timeout_s=settings.timeout_s,
                    progress=reporter.line,
                    on_verdict=lambda r: reporter.line(report.verdict_line(r)),
                    cancel=interrupt.event,
                )
            finally:
                interrupt.raise_on_signal = True
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
            for name in run_first.to_clean_up(listed):
                cluster.delete_object("batch/v1", "Job", name, namespace, propagation="Background")
                reporter.line(
                    f"job/{name}: deleted (older than the newest {run_first.KEEP_JOBS} run-first Jobs)"
                )
    except DeployError as error:
        reporter.warning(f"old run-first Jobs not cleaned up: {error}", title="Cleanup skipped")


def preview(
    settings: Settings,
    reporter: Reporter,
    outcome: Outcome,
    cluster: ClusterApi,
    documents: list[manifests.Document],
    plan: Plan,
) -> None:
    """dry-run: ask the API server what a server-side apply of every object would make of it
    (admission and validation run, nothing is stored) and show the difference per object."""
    outcome.phase = "preview"
    bodies = [d.body for d in documents]
    with reporter.group(
        f"Preview: server-side dry run of {len(bodies)} objects (nothing is changed)"
    ):
        # A refusal is the user's error at its file:line, as in a real deploy.
        _check_by_dry_run(settings, reporter, cluster, bodies, plan)
    with reporter.group("Preview: what would change"), reporter.untrusted():
        planned = cluster.preview(
            bodies, field_manager=FIELD_MANAGER, force_conflicts=settings.force_conflicts
        )
        diffs = [previewing.diff(p.live, p.planned) for p in planned]
        for d in diffs:
            lines = d.lines()
            outcome.preview += lines
            for line in lines:
                reporter.line(line)
        changed = [d for d in diffs if d.changed]
        reporter.line(
            f"dry run: {len(changed)} of {len(diffs)} object(s) would change; nothing was applied"
        )


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
        interrupt.raise_on_signal = False
        try:
            outcome.results = outcome.results + watch_rollouts(
                cluster,
                targets,
                timeout_s=timeout_s,
                progress=reporter.line,
                on_verdict=lambda r: reporter.line(report.verdict_line(r)),
                cancel=interrupt.event,
            )
        finally:
            interrupt.raise_on_signal = True
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


def _located(rejected: Rejected, settings: Settings, plan: Plan) -> InputError:
    """The dry run's refusal, at the file:line of the document it refused."""
    for d in plan.documents:
        if (d.kind, d.name) == (rejected.kind, rejected.name) and (
            rejected.namespace is None or d.namespace == rejected.namespace
        ):
            return InputError(
                rejected.message,
                file=manifests.display_path(d.path, settings.workspace),
                line=d.line,
                hint=rejected.hint,
            )
    where = "secrets" if (rejected.kind, rejected.name) == ("Secret", settings.secret_name) else ""
    return InputError(rejected.message, where=where or "manifests", hint=rejected.hint)


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


# -- helpers --------------------------------------------------------------------------------------


def _check_references(
    settings: Settings, documents: list[manifests.Document], namespace: str
) -> list[manifests.ConfigReference]:
    """References satisfied by the manifests or the secrets input are fine; the rest must be in the
    cluster (checked once we have credentials). Optional ones are never required."""
    have = {(d.kind, d.namespace, d.name) for d in documents}
    if settings.secret_name:
        have.add(("Secret", namespace, settings.secret_name))
    deferred: list[manifests.ConfigReference] = []
    for ref in manifests.config_references(documents, settings.workspace):
        if ref.optional or (ref.kind, ref.namespace, ref.name) in have:
            continue
        if ref not in deferred:
            deferred.append(ref)
    return deferred


def _secret_stub(settings: Settings, plan: Plan) -> list[dict[str, Any]]:
    """The Secret made from the secrets input, for the permission check (values not needed)."""
    if not settings.secrets:
        return []
    return [secret_manifest(settings.secret_name, plan.namespace, ())]


def _fetch_credentials(settings: Settings, reporter: Reporter, services: Services) -> Credentials:
    if settings.kubeconfig:
        config = kubeconfig_input.load(settings.kubeconfig, "kubeconfig")
        for secret in kubeconfig_input.credentials(config):
            reporter.mask(secret)
        server = config["clusters"][0]["cluster"]["server"]
        return Credentials(services.cluster(config), None, f"{server} (kubeconfig input)")
    api = services.digitalocean(settings.digitalocean_token, settings.api_url)
    try:
        found = api.find_cluster(settings.cluster)
        if found.warning:
            reporter.warning(found.warning, title="Cluster not running")
        expiry = int(settings.timeout_s + BUILD_ALLOWANCE_S + EXPIRY_MARGIN_S)
        kubeconfig = api.kubeconfig(found.id, expiry_seconds=expiry)
    finally:
        api.close()
    for secret in kubeconfig.secrets:
        reporter.mask(secret)
    expires = f", token expires {kubeconfig.expires_at:%H:%M:%S}Z" if kubeconfig.expires_at else ""
    return Credentials(
        services.cluster(kubeconfig.config),
        kubeconfig.expires_at,
        f"cluster {found.name} ({found.id}{expires})",
        found.id,
    )


def _registry_access(
    settings: Settings, reporter: Reporter, services: Services, creds: Credentials, plan: Plan
) -> None:
    """Pods pulling from DOCR need a pull secret, in their spec or their ServiceAccount: warn
    before the build when they have none (with link-registry, integrate the registry first)."""
    images = [i for _, _, i in manifests.images(plan.documents) if docr.registry_name(i)]
    if not images:
        return
    if settings.link_registry and settings.dry_run:
        # A preview changes nothing, DigitalOcean included: the warning below says what is missing.
        reporter.line("dry run: link-registry would integrate the registry with the cluster")
    elif settings.link_registry:
        _link_registry(settings, reporter, services, creds, plan, images)
    missing, unknown = docr.without_pull_secret(plan.documents, creds.cluster.pull_secrets)
    for found in missing:
        reporter.warning(docr.warning(found, settings.cluster), title="No pull access to DOCR")
    for found in unknown:
        reporter.line(
            f"{found.workload}: serviceaccount/{found.service_account} in {found.namespace} "
            "is not there yet or not readable, so pull access to DOCR is unchecked"
        )
    if not missing and not unknown:
        reporter.line(f"pull access to {docr.HOST}: every workload using it has a pull secret")


def _link_registry(
    settings: Settings,
    reporter: Reporter,
    services: Services,
    creds: Credentials,
    plan: Plan,
    images: list[str],
) -> None:
    """link-registry: integrate the account's registry with the cluster (idempotent), then give
    DigitalOcean's operator a bounded time to put the pull secret where the pods will look."""
    api = services.digitalocean(settings.digitalocean_token, settings.api_url)
    try:
        name = api.registry_name()
        linked = api.link_registry(creds.cluster_id)
    finally:
        api.close()
    others = sorted({n for i in images if (n := docr.registry_name(i)) and n != name})
    if others:
        reporter.warning(
            f"the images are in registry {', '.join(others)}, but this token's registry is "
            f"{name}: {docr.LINK_INPUT} gives the cluster pull access to {name} only",
            title="Another registry",
        )
    secret = docr.secret_name(name)
    reporter.line(
        f"registry {name} {'is now' if linked else 'was already'} integrated with the cluster "
        f"(pull secret {secret} in every namespace)"
    )
    waiting = {
        d.namespace
        for d in plan.documents
        if (spec := manifests.pod_spec(d)) is not None
        and not spec.get("imagePullSecrets")
        and (spec.get("serviceAccountName") or "default") == "default"
        and any(docr.registry_name(i) for _, _, i in manifests.images([d]))
    }
    deadline = time.monotonic() + LINK_WAIT_S
    while waiting and time.monotonic() < deadline:
        # A namespace that does not exist yet gets the secret when it is made.
        waiting = {
            ns
            for ns in waiting
            if (have := creds.cluster.pull_secrets("default", ns)) is not None
            and secret not in have
        }
        if waiting:
            time.sleep(LINK_POLL_S)
    for ns in sorted(waiting):
        reporter.warning(
            f"DigitalOcean has not put pull secret {secret} into namespace {ns} within "
            f"{LINK_WAIT_S:.0f}s; pods made before it arrives cannot pull",
            title="Pull secret not there yet",
        )


def _registry_login(
    settings: Settings, reporter: Reporter, services: Services, docker: Builder
) -> None:
    registry = settings.registry
    if settings.registry_username:
        docker.login(registry, settings.registry_username, settings.registry_password)
        reporter.line(f"logged in to {registry} as {settings.registry_username}")
    elif registry == DOCR_HOST and settings.digitalocean_token:
        api = services.digitalocean(settings.digitalocean_token, settings.api_url)
        try:
            user, password = api.registry_credentials(
                registry, expiry_seconds=int(BUILD_ALLOWANCE_S + 600)
            )
        finally:
            api.close()
        reporter.mask(password)
        docker.login(registry, user, password)
        reporter.line(
            f"logged in to {registry} with short-lived credentials from the DigitalOcean API"
        )
    else:
        reporter.line(f"no registry credentials given: using {registry} anonymously")


def _cache_source(settings: Settings, reporter: Reporter, docker: Builder) -> str:
    """The cache reference when it can be read; a missing or unreadable cache is a warning only."""
    if not settings.build_cache:
        reporter.line("build cache: off (build-cache: false)")
        return ""
    if not docker.buildkit():
        reporter.line(
            "build cache: off (this docker CLI builds without BuildKit: no buildx plugin)"
        )
        return ""
    problem = docker.cache_state(settings.build_cache)
    if problem:
        reporter.warning(
            f"build cache {settings.build_cache}: {problem}; building without it "
            "(the cache is written after this push)",
            title="No build cache",
        )
        return ""
    reporter.line(f"build cache: reusing layers from {settings.build_cache}")
    return settings.build_cache


def _cache_wanted(settings: Settings, docker: Builder) -> bool:
    return bool(settings.build_cache) and docker.buildkit()


def _push_cache(settings: Settings, reporter: Reporter, docker: Builder) -> None:
    problem = docker.push_cache(settings.image_ref, settings.build_cache)
    if problem:
        reporter.warning(
            f"could not write the build cache {settings.build_cache}: {problem}; the deploy "
            "goes on, the next build on a fresh runner starts without cache",
            title="Build cache not written",
        )
    else:
        reporter.line(f"build cache: {settings.build_cache} now points at this image")
