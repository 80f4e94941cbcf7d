"""Documents: one parsed manifest object with the file and lines it came from, and what the rest
of the deployer reads off a workload (pod template, pod spec, containers, images, the ConfigMaps
and Secrets its pods need). The objects they read have passed `shapes.check_object`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer.errors import InputError
from deployer.manifests.files import display_path
from deployer.manifests.names import DNS_SUBDOMAIN, shown
from deployer.objects import spec_containers, subject

WORKLOAD_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"}
)


@dataclass(frozen=True)
class Document:
    """One YAML document of a manifest file."""

    path: Path
    line: int  # 1-based line where the document starts
    body: dict[str, Any]
    # id() of each mapping and list in `body` -> its 1-based line, for messages about a part of it.
    lines: Mapping[int, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, part: object) -> int:
        return self.lines.get(id(part), self.line)

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
    def subject(self) -> str:
        """`deployment/web`, as our messages name it."""
        return subject(self.kind, self.name)

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


def deployments(documents: list[Document]) -> list[Document]:
    return [d for d in documents if d.kind == "Deployment"]


def pod_template(document: Document) -> dict[str, Any] | None:
    """The pod template (metadata + spec) of a workload; None for other kinds and bare Pods."""
    spec = document.body.get("spec") or {}
    if document.kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    elif document.kind not in WORKLOAD_KINDS or document.kind == "Pod":
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
        for container, label in spec_containers(spec):
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
            projected = volume.get("projected")
            sources = projected.get("sources") if isinstance(projected, dict) else None
            for source in sources if isinstance(sources, list) else []:
                if isinstance(source, dict):
                    found.append(("ConfigMap", source.get("configMap") or {}, "name", used_by))
                    found.append(("Secret", source.get("secret") or {}, "name", used_by))
        for pull in spec.get("imagePullSecrets") or []:
            # Never optional: the kubelet cannot pull without it.
            found.append(("Secret", {"name": pull.get("name")}, "name", "imagePullSecrets"))
        owner = f"{d.subject}"
        for kind, ref, key, used_by in found:
            name = ref.get(key)
            if not name:
                continue
            if not isinstance(name, str) or not DNS_SUBDOMAIN.match(name):
                raise InputError(
                    f"{owner} {used_by}: {shown(name)} is not a valid {kind} name",
                    file=display_path(d.path, root),
                    line=d.line_of(ref),
                    hint="Use lower-case letters, digits, '-' and '.'.",
                )
            refs.append(
                ConfigReference(
                    kind,
                    name,
                    d.namespace,
                    bool(ref.get("optional")),
                    f"{owner} {used_by}",
                    d.where(root),
                )
            )
    return refs


def check_keys(
    documents: list[Document],
    known: Mapping[tuple[str, str, str], frozenset[str]],
    root: Path | None = None,
) -> None:
    """Every `configMapKeyRef`/`secretKeyRef` (not `optional: true`) to a ConfigMap or Secret whose
    keys we know (`known`: (kind, namespace, name) → keys; the manifests' own and the env-file
    Secret) names a key it has; else the kubelet holds the pod in CreateContainerConfigError.
    Raises at the first reference's file:line, counting the others. A Secret's keys are not
    listed (the env-file's may be pasted values); a ConfigMap's are, with the nearest."""
    missing: list[InputError] = []
    for d in documents:
        spec = pod_spec(d)
        if spec is None:
            continue
        for container, label in spec_containers(spec):
            for var in container.get("env") or []:
                value_from = (var.get("valueFrom") or {}) if isinstance(var, dict) else {}
                for kind, field_name in (
                    ("ConfigMap", "configMapKeyRef"),
                    ("Secret", "secretKeyRef"),
                ):
                    ref = value_from.get(field_name)
                    if not isinstance(ref, dict) or ref.get("optional") is True:
                        continue
                    name, key = ref.get("name"), ref.get("key")
                    keys = known.get((kind, d.namespace, str(name)))
                    if keys is None or not isinstance(key, str) or key in keys:
                        continue
                    if kind == "ConfigMap":
                        near = difflib.get_close_matches(key, sorted(keys), n=1)
                        has = f"it has: {', '.join(sorted(keys)) or 'no key'}"
                        hint = f"Did you mean {near[0]}? " if near else ""
                    else:
                        has, hint = f"it has {len(keys)} key(s)", ""
                    missing.append(
                        InputError(
                            f"{d.subject} {label} env {shown(var.get('name'))}: key {shown(key)} "
                            f"is not in {kind} {d.namespace}/{name} ({has})",
                            file=display_path(d.path, root),
                            line=d.line_of(ref),
                            hint=hint + "Fix the key, add it to the "
                            f"{kind}, or mark the reference `optional: true`.",
                        )
                    )
    if missing:
        first = missing[0]
        more = f" (and {len(missing) - 1} more reference(s) to missing keys)" if missing[1:] else ""
        raise InputError(first.message + more, file=first.file, line=first.line, hint=first.hint)


def keys_of(document: Document) -> frozenset[str]:
    """The keys a ConfigMap (data, binaryData) or Secret (data, stringData) defines."""
    names = ("data", "binaryData") if document.kind == "ConfigMap" else ("data", "stringData")
    keys: set[str] = set()
    for name in names:
        part = document.body.get(name)
        if isinstance(part, dict):
            keys.update(str(k) for k in part)
    return frozenset(keys)


def images(documents: list[Document]) -> Iterator[tuple[Document, str, str]]:
    """(document, container label, image) for every container and init container."""
    for d in documents:
        spec = pod_spec(d)
        if spec is None:
            continue
        for container, label in spec_containers(spec):
            yield d, label, str(container.get("image", ""))
