"""DOCR housekeeping: wait out a garbage collection before a push, and registry retention after a
green deploy (`retention.decide` says what goes; this phase reads the cluster and the registry,
deletes, and starts a garbage collection with `registry-gc`).

A garbage collection makes the registry read-only for minutes: a push during it would fail with
an unexplained registry error, so before pushing to DOCR the active one is named in one line and
waited for within the deploy's timeout, or the deploy stops saying the registry is read-only.

Retention never turns a green deploy red: a failure there is a warning and nothing more is
deleted. It deletes nothing when it cannot read what the namespace runs.
"""

from __future__ import annotations

import time

from deployer import retention
from deployer.errors import DeployError, ServiceError
from deployer.run import Run
from deployer.services import ClusterApi

GC_POLL_S = 3.0


def docr_target(run: Run) -> tuple[str, str] | None:
    """(registry name, repository) when the image is on DOCR and the API can be asked."""
    settings = run.settings
    if settings.registry != settings.docr_host or not settings.digitalocean_token:
        return None
    registry, repository = retention.docr_repository(settings.image)
    return (registry, repository) if registry and repository else None


def wait_for_garbage_collection(run: Run) -> None:
    """Before a push to DOCR: a running garbage collection is reported, and waited for within the
    deploy's timeout; still running then, the deploy stops (the registry refuses pushes)."""
    target = docr_target(run)
    if target is None:
        return
    registry = target[0]
    settings, reporter = run.settings, run.reporter
    api = run.services.digitalocean(settings.digitalocean_token, settings.api_url)
    try:
        try:
            gc = api.active_garbage_collection(registry)
        except DeployError as error:
            # Not knowing is no reason to stop: the push itself will say if the registry refuses.
            reporter.line(
                f"could not ask whether registry {registry} is being garbage-collected "
                f"({error.detail()}); pushing"
            )
            return
        if gc is None:
            return
        deadline = time.monotonic() + settings.timeout_s
        reporter.line(
            f"registry {registry}: garbage collection {gc.uuid} is running ({gc.status}); the "
            f"registry is read-only until it ends: waiting up to {settings.timeout_s:.0f}s "
            "before the push"
        )
        started = time.monotonic()
        while gc is not None:
            if time.monotonic() + GC_POLL_S > deadline:
                raise ServiceError(
                    "DigitalOcean Container Registry",
                    f"registry {registry} is read-only: garbage collection {gc.uuid} is still "
                    f"running ({gc.status}) after {time.monotonic() - started:.0f}s, so the push "
                    "would fail",
                    hint="Run the deploy again once it has ended (doctl registry "
                    "garbage-collection get-active), or raise timeout.",
                )
            time.sleep(GC_POLL_S)
            gc = api.active_garbage_collection(registry)
        reporter.line(
            f"registry {registry}: the garbage collection ended after "
            f"{time.monotonic() - started:.0f}s; pushing"
        )
    finally:
        api.close()


def prune_registry(run: Run, cluster: ClusterApi, namespace: str) -> None:
    """Registry retention after a green deploy (with dry-run: what it would delete)."""
    settings, reporter, outcome = run.settings, run.reporter, run.outcome
    target = docr_target(run)
    if not settings.registry_retention or target is None:
        return
    registry, repository = target
    dry = settings.dry_run
    with run.phase("retention", f"Registry retention: {registry}/{repository}"):
        try:
            objects = [
                {**obj, "kind": kind}  # a list's items carry no kind
                for api_version, kind in retention.SOURCES
                for obj in cluster.list_labelled(api_version, kind, namespace, "")
            ]
        except DeployError as error:
            reporter.warning(
                f"registry retention skipped, nothing deleted: could not read what namespace "
                f"{namespace} runs ({error.message})",
                title="Registry retention skipped",
            )
            return
        running = retention.in_use(objects, settings.image)
        cache_repo, _, cache_tag = settings.build_cache.rpartition(":")
        api = run.services.digitalocean(settings.digitalocean_token, settings.api_url)
        try:
            tags = api.list_tags(registry, repository)
            decision = retention.decide(
                tags,
                settings.registry_retention,
                running,
                cache_tag if cache_repo == settings.image else "",
            )
            kept = ", ".join(f"{tag[:12]} ({why})" for tag, why in decision.keep) or "none"
            lines = [f"kept {len(decision.keep)} of {len(tags)} tags: {kept}"]
            if decision.untouched:
                lines.append(
                    "not commit tags, left alone: " + ", ".join(sorted(decision.untouched))
                )
            verb = "would delete (dry-run)" if dry else "deleted"
            lines.append(
                f"{verb} {len(decision.delete)}: " + (", ".join(decision.delete) or "none")
            )
            if not dry:
                for tag in decision.delete:
                    api.delete_tag(registry, repository, tag)
            if not dry and settings.registry_gc and decision.delete:
                active = api.active_garbage_collection(registry)
                if active is not None:
                    lines.append(f"garbage collection {active.uuid} already running: none started")
                else:
                    gc = api.start_garbage_collection(registry)
                    lines.append(
                        f"garbage collection {gc.uuid} started ({gc.status}): the registry is "
                        "read-only until it ends"
                    )
            elif dry and settings.registry_gc and decision.delete:
                lines.append("would start a garbage collection (registry-gc)")
            for line in lines:
                reporter.line(line)
            outcome.retention = lines
        except DeployError as error:
            reporter.warning(
                f"registry retention stopped: {error.detail()}",
                title="Registry retention failed",
            )
            outcome.retention = [f"failed: {error.message}"]
        finally:
            api.close()
