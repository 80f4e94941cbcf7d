"""Build and push, while the cluster checks (credentials, then a server-side dry run) run in a
second thread. Their log is shown first, then the build's, held meanwhile; a failed check stops
the build at once and is the error reported. Also the registry login and the build cache."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TextIO, TypeVar, cast

from deployer import docr
from deployer.access import BUILD_ALLOWANCE_S, Credentials, credentials
from deployer.applying import dry_run
from deployer.docker import BuildRequest
from deployer.errors import DeployError, InputError
from deployer.github import Reporter
from deployer.plan import Outcome, Plan
from deployer.services import Builder, Services
from deployer.settings import Settings

T = TypeVar("T")

# A build that fails on its own waits this long for the cluster checks' log before it reports.
CHECKS_GRACE_S = 10.0


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
            # Independent questions go out together (each is a round trip to the daemon or the
            # registry); their answers are reported, and their errors raised, in this order.
            daemon = _Answer(docker.check_daemon)
            buildkit = _Answer(docker.buildkit)
            try:
                logged_in = _registry_login(settings, reporter, services, docker)
            except DeployError:
                daemon.result()  # an unreachable daemon is said first: it explains the rest
                raise
            reporter.line(f"Docker daemon {daemon.result()}")
            reporter.line(logged_in)
            # Taken here in every case: later calls to docker.buildkit() reuse this answer
            # instead of asking buildx again.
            has_buildkit = buildkit.result()
            cache_state = (
                _Answer(lambda: docker.cache_state(settings.build_cache))
                if settings.build_cache and settings.build != "never" and has_buildkit
                else None
            )
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
                cache_from = _cache_source(settings, reporter, cache_state)
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


def _registry_login(
    settings: Settings, reporter: Reporter, services: Services, docker: Builder
) -> str:
    """Log the docker CLI in; the line that says how."""
    registry = settings.registry
    if settings.registry_username:
        docker.login(registry, settings.registry_username, settings.registry_password)
        return f"logged in to {registry} as {settings.registry_username}"
    if registry == docr.HOST and settings.digitalocean_token:
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

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)


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
