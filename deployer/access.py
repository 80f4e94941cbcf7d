"""Cluster access: credentials (a kubeconfig input, or DigitalOcean: cluster → short-lived
kubeconfig, fetched again when its token would not outlive the wait), and what is checked with
them before anything changes: references that must already be in the cluster, the permission
preflight, pull access to DOCR (with link-registry, the registry integrated first)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from deployer import applyset, docr, manifests, rollback
from deployer import kubeconfig as kubeconfig_input
from deployer.envfile import secret_manifest
from deployer.errors import InputError
from deployer.plan import Plan
from deployer.run import Run
from deployer.services import ClusterApi
from deployer.settings import Settings

# The kubeconfig is fetched before the build so a bad token or cluster fails fast; its token must
# outlive the build plus the whole wait. If the build runs past this allowance we fetch a new one.
BUILD_ALLOWANCE_S = 30 * 60
EXPIRY_MARGIN_S = 5 * 60
# After link-registry, how long DigitalOcean's operator gets to put the pull secret in place.
LINK_WAIT_S = 60.0
LINK_POLL_S = 1.0


@dataclass
class Credentials:
    cluster: ClusterApi
    expires_at: datetime | None
    describe: str
    cluster_id: str = ""  # the DOKS cluster's id, when the credentials came from DigitalOcean


def credentials(run: Run, plan: Plan) -> Credentials:
    with run.phase("credentials", "Credentials: cluster access"):
        creds = _fetch_credentials(run)
        try:
            _check_access(run, creds, plan)
        except BaseException:
            creds.cluster.close()  # its key material goes with it
            raise
        return creds


def credentials_to_watch(run: Run) -> Credentials:
    """Watch only (apply: false): cluster access, nothing to check ahead of a build that does not
    happen (a watch it may not do fails at once, with the API server's reason)."""
    with run.phase("credentials", "Credentials: cluster access"):
        creds = _fetch_credentials(run)
        try:
            version = creds.cluster.server_version()
        except BaseException:
            creds.cluster.close()
            raise
        run.reporter.line(f"connected to {creds.describe} (Kubernetes {version})")
        return creds


def _check_access(run: Run, creds: Credentials, plan: Plan) -> None:
    settings, reporter = run.settings, run.reporter
    version = creds.cluster.server_version()
    reporter.line(f"connected to {creds.describe} (Kubernetes {version})")
    _check_namespaces(run, creds, plan)
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
            hint=f"Add the {ref.kind} to the manifests (or the secrets input with secret-name), "
            "create it in the "
            "cluster, or mark the reference optional: true.",
        )
    bodies = [d.body for d in plan.documents] + _secret_stub(settings, plan)
    also: list[tuple[str, dict[str, Any]]] = []
    if settings.rollback_on_failure or plan.run_first:
        also += rollback.rights_needed(bodies, workloads=settings.rollback_on_failure)
    if settings.prune:
        also += applyset.rights_needed(bodies, plan.namespace)
    missing_rights = creds.cluster.missing_permissions(bodies, also)
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
    _registry_access(run, creds, plan)


def _check_namespaces(run: Run, creds: Credentials, plan: Plan) -> None:
    """Every namespace the manifests' objects go to is in the cluster or among the manifests'
    Namespace objects: found now, with the fix, not as `namespaces "x" not found` at apply."""
    ours = {d.name for d in plan.documents if d.kind == "Namespace"}
    for namespace in dict.fromkeys(d.namespace for d in plan.documents if d.namespace):
        if namespace in ours or creds.cluster.namespace_exists(namespace) is not False:
            continue
        first = next(d for d in plan.documents if d.namespace == namespace)
        given = namespace == plan.namespace and namespace == run.settings.namespace
        raise InputError(
            f"namespace {namespace} does not exist in the cluster"
            + ("" if given else f" ({first.subject} goes there)"),
            where="namespace" if given else "",
            file=None if given else manifests.display_path(first.path, run.settings.workspace),
            line=None if given else first.line,
            hint=f"Create it (kubectl create namespace {namespace}), or add a Namespace object "
            f"to the manifests (apiVersion: v1, kind: Namespace, metadata: {{name: {namespace}}}).",
        )


def refresh_if_short(run: Run, creds: Credentials) -> Credentials:
    if creds.expires_at is None:
        return creds
    left = (creds.expires_at - datetime.now(UTC)).total_seconds()
    if left >= run.settings.timeout_s + EXPIRY_MARGIN_S:
        return creds
    with run.phase("credentials"):
        run.reporter.line(
            f"the cluster token expires in {left:.0f}s, less than the wait needs: fetching a new one"
        )
        creds.cluster.close()
        return _fetch_credentials(run)


def _fetch_credentials(run: Run) -> Credentials:
    settings, reporter, services = run.settings, run.reporter, run.services
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


def check_references(
    settings: Settings, documents: list[manifests.Document], namespace: str
) -> list[manifests.ConfigReference]:
    """References satisfied by the manifests or the secrets input are fine (and the keys they
    name are there); the rest must be in the cluster (checked once we have credentials).
    Optional ones are never required."""
    have = {(d.kind, d.namespace, d.name) for d in documents}
    if settings.secret_name:
        have.add(("Secret", namespace, settings.secret_name))
    # The keys a configMapKeyRef/secretKeyRef names, where we know the object's keys.
    known = {
        (d.kind, d.namespace, d.name): manifests.keys_of(d)
        for d in documents
        if d.kind in ("ConfigMap", "Secret")
    }
    if settings.secret_name and settings.secrets:
        known[("Secret", namespace, settings.secret_name)] = frozenset(
            k for k, _ in settings.secrets
        )
    manifests.check_keys(documents, known, settings.workspace)
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


def _registry_access(run: Run, creds: Credentials, plan: Plan) -> None:
    """Pods pulling from DOCR need a pull secret, in their spec or their ServiceAccount: warn
    before the build when they have none (with link-registry, integrate the registry first)."""
    settings, reporter = run.settings, run.reporter
    images = [i for _, _, i in manifests.images(plan.documents) if docr.registry_name(i)]
    if not images:
        return
    if settings.link_registry and settings.dry_run:
        # A preview changes nothing, DigitalOcean included: the warning below says what is missing.
        reporter.line("dry run: link-registry would integrate the registry with the cluster")
    elif settings.link_registry:
        _link_registry(run, creds, plan, images)
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


def _link_registry(run: Run, creds: Credentials, plan: Plan, images: list[str]) -> None:
    """link-registry: integrate the account's registry with the cluster (idempotent), then give
    DigitalOcean's operator a bounded time to put the pull secret where the pods will look."""
    settings, reporter, services = run.settings, run.reporter, run.services
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
