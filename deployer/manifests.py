"""Manifests: parse with file:line, render the placeholder, and answer questions about them.

Rendering is a plain text substitution on the file as written, so everything but the placeholder
stays exactly as the user wrote it (comments, quoting, key order). Parsing happens on the rendered
text, and every document remembers the file and line it came from for error messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployer.errors import InputError

# Kinds that live outside namespaces (the ones a Django app's manifests plausibly hold).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "RuntimeClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "APIService",
        "Node",
        "ClusterIssuer",
    }
)

# Apply order: what others depend on first, workloads after their config, then what routes to them.
_APPLY_ORDER = (
    "Namespace",
    "CustomResourceDefinition",
    "PriorityClass",
    "StorageClass",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ResourceQuota",
    "LimitRange",
    "NetworkPolicy",
    "ConfigMap",
    "Secret",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Service",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Ingress",
)
_WORKLOAD_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"}
)


@dataclass(frozen=True)
class Document:
    """One YAML document of a manifest file."""

    path: Path
    line: int  # 1-based line where the document starts
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str((self.body.get("metadata") or {}).get("namespace") or "")

    def where(self, root: Path | None = None) -> str:
        return f"{display_path(self.path, root)}:{self.line}"


@dataclass(frozen=True)
class ConfigReference:
    """A pod spec's reference to a ConfigMap or Secret."""

    kind: str  # ConfigMap or Secret
    name: str
    namespace: str
    optional: bool
    used_by: str  # e.g. deployment/web container `app` envFrom
    where: str  # file:line of the workload document


def display_path(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return str(path)


def read_sources(paths: tuple[Path, ...], root: Path | None = None) -> dict[Path, str]:
    sources: dict[Path, str] = {}
    for path in paths:
        try:
            sources[path] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(
                f"cannot read manifest: {exc}",
                where=display_path(path, root),
                hint="Check the manifests input.",
            ) from exc
    return sources


def check_placeholder(sources: dict[Path, str], placeholder: str, root: Path | None = None) -> int:
    """Count placeholder occurrences; none anywhere is an error (else the old image is redeployed)."""
    count = sum(text.count(placeholder) for text in sources.values())
    if count == 0:
        files = ", ".join(display_path(p, root) for p in sources)
        raise InputError(
            f"the placeholder {placeholder!r} occurs in none of the manifests ({files})",
            where="placeholder",
            hint=f"Write `image: {placeholder}` for every container to deploy, or set the placeholder input.",
        )
    return count


def render(sources: dict[Path, str], placeholder: str, image_ref: str) -> dict[Path, str]:
    return {path: text.replace(placeholder, image_ref) for path, text in sources.items()}


def parse(sources: dict[Path, str], root: Path | None = None) -> list[Document]:
    """Parse every document; errors name file:line. Empty documents are skipped."""
    documents: list[Document] = []
    for path, text in sources.items():
        shown = display_path(path, root)
        try:
            nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
            bodies = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise InputError(
                f"invalid YAML: {problem}",
                file=shown,
                line=line,
                hint="Fix the YAML syntax (indentation, quoting, tabs).",
            ) from exc
        for node, body in zip(nodes, bodies, strict=True):
            if body is None:
                continue
            line = node.start_mark.line + 1 if node is not None else 1
            if not isinstance(body, dict):
                raise InputError(
                    "a manifest document must be a mapping (a Kubernetes object)",
                    file=shown,
                    line=line,
                    hint="Check for a stray list or scalar.",
                )
            document = Document(path=path, line=line, body=body)
            missing = [k for k in ("apiVersion", "kind") if not body.get(k)]
            if not document.name:
                missing.append("metadata.name")
            if missing:
                raise InputError(
                    f"object lacks {', '.join(missing)}",
                    file=shown,
                    line=line,
                    hint="Every Kubernetes object needs apiVersion, kind and metadata.name.",
                )
            if body.get("kind") == "List":
                raise InputError(
                    "kind: List is not supported",
                    file=shown,
                    line=line,
                    hint="Write the items as separate documents separated by '---'.",
                )
            documents.append(document)
    if not documents:
        raise InputError(
            "the manifests hold no Kubernetes objects",
            where="manifests",
            hint="Check the manifests input.",
        )
    return documents


def assign_namespace(documents: list[Document], namespace: str, root: Path | None = None) -> str:
    """Fill in the namespace of namespaced objects that name none; return the default used.

    Default: the namespace input; else the one namespace the manifests name; else `default`.
    """
    named = {d.namespace for d in documents if d.namespace and d.kind not in CLUSTER_SCOPED_KINDS}
    if namespace:
        for d in documents:
            if d.namespace and d.namespace != namespace and d.kind not in CLUSTER_SCOPED_KINDS:
                raise InputError(
                    f"{d.kind.lower()}/{d.name} names namespace {d.namespace!r} but the namespace input is "
                    f"{namespace!r}",
                    file=display_path(d.path, root),
                    line=d.line,
                    hint="Remove metadata.namespace from the manifest or change the namespace input.",
                )
        default = namespace
    elif len(named) == 1:
        default = next(iter(named))
    else:
        default = "default"
    for d in documents:
        if d.kind not in CLUSTER_SCOPED_KINDS and not d.namespace:
            d.body.setdefault("metadata", {})["namespace"] = default
    return default


def apply_order(documents: list[Document]) -> list[Document]:
    """Stable sort by kind priority; unknown kinds go after the workloads, in file order."""
    rank = {kind: i for i, kind in enumerate(_APPLY_ORDER)}
    return sorted(documents, key=lambda d: rank.get(d.kind, len(_APPLY_ORDER)))


def deployments(documents: list[Document]) -> list[Document]:
    return [d for d in documents if d.kind == "Deployment"]


def pod_template(document: Document) -> dict[str, Any] | None:
    """The pod template (metadata + spec) of a workload; None for other kinds and bare Pods."""
    spec = document.body.get("spec") or {}
    if document.kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    elif document.kind not in _WORKLOAD_KINDS or document.kind == "Pod":
        return None
    template = spec.get("template") if isinstance(spec, dict) else None
    return template if isinstance(template, dict) else None


def pod_spec(document: Document) -> dict[str, Any] | None:
    if document.kind == "Pod":
        spec = document.body.get("spec")
    else:
        template = pod_template(document)
        spec = template.get("spec") if template else None
    return spec if isinstance(spec, dict) else None


def config_references(documents: list[Document], root: Path | None = None) -> list[ConfigReference]:
    """Every ConfigMap/Secret a workload's pods need: envFrom, env valueFrom, volumes, pull secrets."""
    refs: list[ConfigReference] = []
    for d in documents:
        spec = pod_spec(d)
        if spec is None:
            continue
        # (kind, the reference object, the key holding the name, what uses it)
        found: list[tuple[str, dict[str, Any], str, str]] = []
        for container, label in _containers(spec):
            for source in container.get("envFrom") or []:
                found.append(
                    ("ConfigMap", source.get("configMapRef") or {}, "name", f"{label} envFrom")
                )
                found.append(("Secret", source.get("secretRef") or {}, "name", f"{label} envFrom"))
            for var in container.get("env") or []:
                value_from = var.get("valueFrom") or {}
                used_by = f"{label} env {var.get('name')}"
                found.append(
                    ("ConfigMap", value_from.get("configMapKeyRef") or {}, "name", used_by)
                )
                found.append(("Secret", value_from.get("secretKeyRef") or {}, "name", used_by))
        for volume in spec.get("volumes") or []:
            used_by = f"volume {volume.get('name')}"
            found.append(("ConfigMap", volume.get("configMap") or {}, "name", used_by))
            found.append(("Secret", volume.get("secret") or {}, "secretName", used_by))
        for pull in spec.get("imagePullSecrets") or []:
            # Never optional: the kubelet cannot pull without it.
            found.append(("Secret", {"name": pull.get("name")}, "name", "imagePullSecrets"))
        owner = f"{d.kind.lower()}/{d.name}"
        refs += [
            ConfigReference(
                kind,
                str(ref[key]),
                d.namespace,
                bool(ref.get("optional")),
                f"{owner} {used_by}",
                d.where(root),
            )
            for kind, ref, key, used_by in found
            if ref.get(key)
        ]
    return refs


def images(documents: list[Document]) -> Iterator[tuple[Document, str, str]]:
    """(document, container label, image) for every container and init container."""
    for d in documents:
        spec = pod_spec(d)
        if spec is None:
            continue
        for container, label in _containers(spec):
            yield d, label, str(container.get("image", ""))


def _containers(spec: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    for c in spec.get("initContainers") or []:
        yield c, f"init container `{c.get('name')}`"
    for c in spec.get("containers") or []:
        yield c, f"container `{c.get('name')}`"


def to_yaml(sources: dict[Path, str]) -> str:
    """Rendered files joined as one multi-document stream (for `render` on stdout)."""
    parts = []
    for text in sources.values():
        body = text if text.endswith("\n") else text + "\n"
        if not body.lstrip().startswith("---"):
            body = "---\n" + body
        parts.append(body)
    return "".join(parts)
