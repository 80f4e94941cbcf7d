"""Build and push, while the cluster checks (credentials, then a server-side dry run) run in a
second thread. Their log is shown first, then the build's, held meanwhile; a failed check stops
the build at once and is the error reported. Also the registry login and the build cache."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar, cast

from deployer import applyset
from deployer.access import BUILD_ALLOWANCE_S, Credentials, credentials
from deployer.applying import dry_run
from deployer.docker import BuildRequest
from deployer.errors import DeployError, InputError
from deployer.github import HeldLog, Reporter
from deployer.plan import Plan
from deployer.pruning import wait_for_garbage_collection
from deployer.run import Run
from deployer.services import Builder
from deployer.settings import Settings

T = TypeVar("T")

# A build that fails on its own waits this long for the cluster checks' log before it reports.
CHECKS_GRACE_S = 10.0


def build_while_checking_the_cluster(run: Run, plan: Plan) -> tuple[Credentials, CacheTag | None]:
    """Build and push while the cluster checks run; their credentials, and the build cache tag
    being moved to the new image (in a thread of its own: `CacheTag.finish` says how it went)."""
    docker = run.services.docker()
    checks = ClusterChecks(run, plan, docker.stop)
    try:
        with run.reporter.holding() as held:
            checks.begin(held)
            try:
                pushed = build_and_push(run, docker)
            except DeployError:
                # A build stopped because the checks failed gives their reason; a build that
                # failed on its own gives its own, once the checks (seconds) had their say.
                checks.join(timeout=CHECKS_GRACE_S)
                if checks.error is not None:
                    run.phase_name = checks.checks.phase_name
                    raise checks.error from None
                raise
            creds = checks.result(run)
    except BaseException:
        if checks.is_alive() or checks.error is None:
            checks.abandon("(the cluster checks were not waited for)\n")
        docker.close()
        raise
    if pushed and _cache_wanted(run.settings, docker):
        return creds, CacheTag(run.settings, docker)  # it closes the docker session when done
    docker.close()
    return creds, None


class CacheTag:
    """The build cache tag moved to the image just pushed, while the deploy goes on (only a
    manifest goes up). `finish` waits for it, says how it went, and closes the docker CLI's
    session (its private login) that it kept open."""

    def __init__(self, settings: Settings, docker: Builder) -> None:
        self.settings, self.docker = settings, docker
        self._problem = _Answer(lambda: docker.push_cache(settings.image_ref, settings.build_cache))

    def finish(self, reporter: Reporter, *, cancelled: bool = False) -> None:
        if cancelled and not self._problem.answered():
            # A cancel does not wait for the tag (its thread is a daemon); the next build reads
            # the cache the tag still points at, so nothing is lost but this build's layers.
            self.docker.close()
            reporter.warning(
                f"the build cache {self.settings.build_cache} was not moved to this image: the "
                "deploy was cancelled first; the next build uses the cache it points at now",
                title="Build cache not written",
            )
            return
        try:
            problem = self._problem.result()
        except DeployError as error:
            problem = error.message
        finally:
            self.docker.close()
        cache = self.settings.build_cache
        if problem:
            reporter.warning(
                f"could not write the build cache {cache}: {problem}; the deploy goes on, the "
                "next build on a fresh runner starts without cache",
                title="Build cache not written",
            )
        else:
            reporter.line(f"build cache: {cache} now points at this image")


class ClusterChecks(threading.Thread):
    """The cluster phases that need no image — credentials (DigitalOcean lookup, kubeconfig),
    references, the permission preflight, pull access to DOCR, and a server-side dry run of the
    rendered manifests with the reference about to be pushed — run while the image builds. They
    log to a buffer of their own (`run.beside`); when they are done it is written, then the
    build's log, held meanwhile. A failure stops the build at once (its held log is dropped: it
    was stopped, not broken)."""

    def __init__(self, run: Run, plan: Plan, stop_build: Callable[[], None]) -> None:
        super().__init__(name="cluster-checks", daemon=True)  # a cancel never waits for it
        self.main, self.plan, self.stop_build = run, plan, stop_build
        self.checks = run.beside(io.StringIO())
        self.held: HeldLog | None = None
        self.creds: Credentials | None = None
        self.error: Exception | None = None
        self._lock = threading.Lock()
        self._abandoned = False

    def begin(self, held: HeldLog) -> None:
        """Start them; `held` is the main log, holding the build's lines meanwhile."""
        self.held = held
        self.start()

    def run(self) -> None:
        creds: Credentials | None = None
        try:
            with (
                self.checks.reporter.library_logs_of_this_thread(),
                self.checks.phase("credentials"),
            ):
                creds = credentials(self.checks, self.plan)
                dry_run(self.checks, creds.cluster, self.plan)
                if self.checks.settings.prune:
                    # An ApplySet parent of another tool is refused now, not after the build.
                    rendered = self.plan.rendered(
                        self.checks.settings, self.checks.settings.image_ref
                    )
                    applyset.plan_set(
                        self.checks,
                        creds.cluster,
                        [d.body for d in rendered.documents],
                        self.plan.namespace,
                    )
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
            text = self.main.reporter.adopt(self.checks.reporter)
            assert self.held is not None
            if self.error is None:
                self.held.release(text)
            else:
                self.held.release(text, drop="the image build started alongside was stopped\n")

    def result(self, run: Run) -> Credentials:
        """Wait for the checks; their credentials, or their error (and the phase it is from)."""
        self.join()
        if self.error is not None:
            run.phase_name = self.checks.phase_name
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
            if self.held is not None:
                self.held.release(note)


def build_and_push(run: Run, docker: Builder) -> bool:
    """Build the image unless the registry has it already (build: auto), then push it; the
    outcome gets its digest and the reference to deploy. True when an image was pushed."""
    settings, reporter, outcome = run.settings, run.reporter, run.outcome
    ref = settings.image_ref
    with run.phase("build", f"Build: {ref}"):
        exists, cache_state = _ask_docker(run, docker)
        if not exists:
            _build(run, docker, cache_state)
    if exists:
        outcome.digest = docker.remote_digest(ref)
    else:
        with run.phase("push", f"Push: {ref}"):
            wait_for_garbage_collection(run)
            with reporter.untrusted():
                outcome.digest = docker.push(ref, reporter.line)
    outcome.image_ref = f"{settings.image}@{outcome.digest}" if settings.pin_digest else ref
    reporter.line(f"image {outcome.image_ref} (digest {outcome.digest})")
    return not exists


def _ask_docker(run: Run, docker: Builder) -> tuple[bool, _Answer[str] | None]:
    """Is the daemon there, can it build with BuildKit, are we logged in, is the image already
    in the registry, can the cache be read? Independent questions go out together (each is a
    round trip to the daemon or the registry); their answers are reported, and their errors
    raised, in this order. Whether the image exists, and the cache question (still open)."""
    settings, reporter = run.settings, run.reporter
    daemon = _Answer(docker.check_daemon)
    buildkit = _Answer(docker.buildkit)
    try:
        logged_in = _registry_login(run, docker)
    except DeployError:
        daemon.result()  # an unreachable daemon is said first: it explains the rest
        raise
    reporter.line(f"Docker daemon {daemon.result()}")
    reporter.line(logged_in)
    # Taken here in every case: later calls to docker.buildkit() reuse this answer instead of
    # asking buildx again.
    has_buildkit = buildkit.result()
    if not has_buildkit:
        reporter.warning(
            f"building with Docker's legacy builder ({docker.without_buildkit()}): no registry "
            "build cache, no build secrets, no attestations; install docker-buildx",
            title="No BuildKit",
        )
    cache_state = (
        _Answer(lambda: docker.cache_state(settings.build_cache))
        if settings.build_cache and settings.build != "never" and has_buildkit
        else None
    )
    ref = settings.image_ref
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
    return exists, cache_state


def _build(run: Run, docker: Builder, cache_state: _Answer[str] | None) -> None:
    settings, reporter = run.settings, run.reporter
    labels = [
        ("org.opencontainers.image.revision", settings.sha),
        ("org.opencontainers.image.created", datetime.now(UTC).isoformat(timespec="seconds")),
    ]
    if settings.source_url:
        labels.append(("org.opencontainers.image.source", settings.source_url))
    provenance, sbom = _attestations(settings, reporter, docker)
    request = BuildRequest(
        ref=settings.image_ref,
        context=settings.context,
        dockerfile=settings.dockerfile,
        build_args=settings.build_args,
        target=settings.target,
        network=settings.build_network,
        labels=tuple(labels),
        cache_from=_cache_source(settings, reporter, cache_state),
        inline_cache=_cache_wanted(settings, docker),
        secrets=settings.build_secrets,
        provenance=provenance,
        sbom=sbom,
    )
    if settings.build_secrets:
        ids = ", ".join(secret_id for secret_id, _ in settings.build_secrets)
        reporter.line(f"build secrets (RUN --mount=type=secret,id=…): {ids}")
    with reporter.untrusted():
        docker.build(request, reporter.line)


def _attestations(settings: Settings, reporter: Reporter, docker: Builder) -> tuple[str, str]:
    """The `--provenance` and `--sbom` values for the build ('' for the legacy builder, which
    knows neither), and one line or warning saying what the image gets."""
    wanted = settings.provenance != "false" or settings.sbom
    asked = " and ".join(
        (["provenance (" + settings.provenance + ")"] if settings.provenance != "false" else [])
        + (["SBOM"] if settings.sbom else [])
    )
    if not docker.buildkit():
        if wanted:
            reporter.warning(
                f"{asked} attestations are unavailable: this docker CLI builds without BuildKit "
                "(no buildx plugin); the image is built without them",
                title="No attestations",
            )
        return "", ""
    if wanted and not docker.stores_attestations():
        reporter.warning(
            f"{asked} attestations are unavailable: this Docker engine's classic image store "
            "cannot hold them (the containerd image store can: Docker 29's default); the image "
            "is built without them",
            title="No attestations",
        )
        return "false", "false"
    if wanted:
        reporter.line(f"attestations: {asked}, pushed with the image")
    provenance = (
        settings.provenance if settings.provenance == "false" else f"mode={settings.provenance}"
    )
    return provenance, "true" if settings.sbom else "false"


def _registry_login(run: Run, docker: Builder) -> str:
    """Log the docker CLI in; the line that says how."""
    settings, reporter, services = run.settings, run.reporter, run.services
    registry = settings.registry
    if settings.registry_username:
        docker.login(registry, settings.registry_username, settings.registry_password)
        return f"logged in to {registry} as {settings.registry_username}"
    if registry == settings.docr_host and settings.digitalocean_token:
        api = services.digitalocean(settings.digitalocean_token, settings.api_url)
        try:
            user, password = api.registry_credentials(
                registry, expiry_seconds=int(BUILD_ALLOWANCE_S + 600)
            )
        finally:
            api.close()
        reporter.mask(password)
        docker.login(registry, user, password)
        return f"logged in to {registry} with short-lived credentials from the DigitalOcean API"
    return f"no registry credentials given: using {registry} anonymously"


def _cache_source(settings: Settings, reporter: Reporter, state: _Answer[str] | None) -> str:
    """The cache reference when it can be read; a missing or unreadable cache is a warning only.
    `state` is the registry's answer about the cache, asked only when BuildKit builds here."""
    if not settings.build_cache:
        reporter.line("build cache: off (build-cache: false)")
        return ""
    if state is None:
        reporter.line(
            "build cache: off (this docker CLI builds without BuildKit: no buildx plugin)"
        )
        return ""
    problem = state.result()
    if problem:
        reporter.warning(
            f"build cache {settings.build_cache}: {problem}; building without it "
            "(the cache is written after this push)",
            title="No build cache",
        )
        return ""
    reporter.line(f"build cache: reusing layers from {settings.build_cache}")
    return settings.build_cache


class _Answer(Generic[T]):
    """A question asked now in a thread of its own, its answer (or error) taken when needed.
    A daemon thread: a cancel does not wait for a docker command that is only asking."""

    def __init__(self, ask: Callable[[], T]) -> None:
        self._ask = ask
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="docker-question", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._ask()
        except BaseException as error:  # handed to whoever takes the answer
            self._error = error

    def answered(self) -> bool:
        return not self._thread.is_alive()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)


def _cache_wanted(settings: Settings, docker: Builder) -> bool:
    return bool(settings.build_cache) and docker.buildkit()
