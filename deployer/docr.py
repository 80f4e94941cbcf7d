"""What a cluster needs to pull from DigitalOcean Container Registry (DOCR), as plain logic.

A DOKS cluster pulls from `registry.digitalocean.com` only with credentials. DigitalOcean's
"Kubernetes integration" (the control panel's checkbox, `doctl kubernetes cluster registry add`,
or `POST /v2/kubernetes/registry`) has the cluster's DOSecret operator put a dockerconfigjson
Secret named `registry-<registry name>` into every namespace (doctl names it the same way), and
the Kubernetes ServiceAccount admission plugin copies a ServiceAccount's `imagePullSecrets` into
every new pod that names none itself. So pods can pull when their own spec names a pull secret,
or their ServiceAccount (`default` unless `serviceAccountName` says otherwise) does.

This module judges that from the manifests and the ServiceAccounts' pull secrets; the pipeline
fetches those and prints the findings. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deployer import manifests

HOST = "registry.digitalocean.com"
LINK_INPUT = "link-registry"


def registry_name(image: str) -> str | None:
    """`registry.digitalocean.com/<name>/repo[:tag]` -> `<name>`; None for other registries."""
    host, _, rest = image.partition("/")
    name = rest.split("/", 1)[0] if "/" in rest else ""
    return name if host == HOST and name else None


def secret_name(registry: str) -> str:
    """The pull secret the integration puts into every namespace."""
    return f"registry-{registry}"


def fix(cluster: str) -> str:
    """The one-time fix, for messages."""
    target = cluster or "<cluster>"
    return (
        f"integrate the registry with the cluster once: set `{LINK_INPUT}: true`, run "
        f"`doctl kubernetes cluster registry add {target}`, or tick the cluster in the "
        "registry's settings (or name an imagePullSecret in the pod template)"
    )


def short_fix(cluster: str = "") -> str:
    """The fix in few words, for a verdict line that must stay short."""
    return (
        f"set `{LINK_INPUT}: true` or run "
        f"`doctl kubernetes cluster registry add {cluster or '<cluster>'}`"
    )


@dataclass(frozen=True)
class Unpullable:
    """A workload whose pods would pull DOCR images without any pull secret."""

    workload: str  # e.g. deployment/web
    namespace: str
    service_account: str
    images: tuple[str, ...]


# service account name, namespace -> its imagePullSecrets, or None when unknown (not readable,
# or the namespace does not exist yet).
PullSecretsOf = Callable[[str, str], list[str] | None]


def without_pull_secret(
    documents: list[manifests.Document], pull_secrets_of: PullSecretsOf
) -> tuple[list[Unpullable], list[Unpullable]]:
    """(workloads that cannot pull, workloads we cannot tell about) among those using DOCR."""
    declared = {
        (d.namespace, d.name): [
            str(p.get("name")) for p in d.body.get("imagePullSecrets") or [] if isinstance(p, dict)
        ]
        for d in documents
        if d.kind == "ServiceAccount"
    }
    missing: list[Unpullable] = []
    unknown: list[Unpullable] = []
    for d in documents:
        spec = manifests.pod_spec(d)
        if spec is None:
            continue
        docr = tuple(
            dict.fromkeys(image for doc, _, image in manifests.images([d]) if registry_name(image))
        )
        if not docr or spec.get("imagePullSecrets"):
            continue
        account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        if (d.namespace, account) in declared:
            secrets: list[str] | None = declared[(d.namespace, account)]
        else:
            secrets = pull_secrets_of(account, d.namespace)
        found = Unpullable(f"{d.subject}", d.namespace, account, docr)
        if secrets is None:
            unknown.append(found)
        elif not secrets:
            missing.append(found)
    return missing, unknown


def warning(found: Unpullable, cluster: str) -> str:
    """One line: which pods, which images, why they will fail, and the fix."""
    images = ", ".join(found.images)
    return (
        f"{found.workload} in namespace {found.namespace} pulls {images}, but neither its pod "
        f"template nor serviceaccount/{found.service_account} names an imagePullSecret: every "
        f"new pod will fail with an unauthorized pull. To fix, {fix(cluster)}"
    )
