"""Shapes: every field our code reads or shows, checked for type and form before anything reads it.

A document that passed `check_object` has apiVersion, kind and a Kubernetes name, and, for a
workload, mappings and lists where its pod template, containers, env, volumes and pull secrets
are read; `check_unique` refuses two documents for one object (`kubectl apply` and we would
silently keep the later one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from deployer.errors import InputError
from deployer.manifests.documents import WORKLOAD_KINDS, Document
from deployer.manifests.files import display_path
from deployer.manifests.names import (
    API_VERSION,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    ENV_NAME,
    KIND,
    PATH_SEGMENT,
    shown,
)

STRICT_NAME_KINDS = frozenset(
    {
        "ConfigMap",
        "Secret",
        "Service",
        "ServiceAccount",
        "Namespace",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
        "Pod",
        "Ingress",
        "PersistentVolumeClaim",
        "PersistentVolume",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
    }
)


def check_object(document: Document, where: str) -> None:
    """The fields our code reads, checked for type and form before anything reads or shows them."""
    body = document.body

    def refuse(message: str, part: object = None, hint: str = "") -> None:
        raise InputError(
            message,
            file=where,
            line=document.line_of(part) if part is not None else document.line,
            hint=hint,
        )

    missing = [k for k in ("apiVersion", "kind") if body.get(k) in (None, "")]
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        refuse("metadata must be a mapping", hint="Write metadata: {name: ...}.")
    name = (metadata or {}).get("name")
    if name in (None, ""):
        missing.append("metadata.name")
    if missing:
        refuse(
            f"object lacks {', '.join(missing)}",
            hint="Every Kubernetes object needs apiVersion, kind and metadata.name.",
        )
    kind, api_version = body["kind"], body["apiVersion"]
    if not isinstance(kind, str) or not KIND.match(kind):
        refuse(f"kind {shown(kind)} is not a Kubernetes kind", hint="E.g. kind: Deployment.")
    if not isinstance(api_version, str) or not API_VERSION.match(api_version):
        refuse(
            f"apiVersion {shown(api_version)} is not an API version",
            hint="E.g. apiVersion: apps/v1.",
        )
    if kind == "List":
        refuse(
            "kind: List is not supported",
            hint="Write the items as separate documents separated by '---'.",
        )
    strict = kind in STRICT_NAME_KINDS
    if (
        not isinstance(name, str)
        or len(name) > 253
        or not (DNS_SUBDOMAIN if strict else PATH_SEGMENT).match(name)
    ):
        refuse(
            f"metadata.name {shown(name)} is not a valid Kubernetes name",
            metadata,
            "Use at most 253 lower-case letters, digits, '-' and '.', starting and ending with a "
            "letter or digit.",
        )
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    if namespace not in (None, "") and (
        not isinstance(namespace, str) or not DNS_LABEL.match(namespace)
    ):
        refuse(
            f"metadata.namespace {shown(namespace)} is not a valid namespace name",
            metadata,
            "Use at most 63 lower-case letters, digits and '-'.",
        )
    for key in ("labels", "annotations"):
        value = (metadata or {}).get(key)
        if value is not None and not isinstance(value, dict):
            refuse(f"metadata.{key} must be a mapping", metadata)
    _check_pod_shapes(document, refuse)


def _check_pod_shapes(document: Document, refuse: Callable[..., None]) -> None:
    kind = document.kind
    if kind not in WORKLOAD_KINDS:
        return
    spec = document.body.get("spec")
    path = "spec"
    if spec is not None and not isinstance(spec, dict):
        refuse(f"{path} must be a mapping")
    if kind == "CronJob":
        for step in ("jobTemplate", "spec"):
            spec = (spec or {}).get(step)
            path += f".{step}"
            if spec is not None and not isinstance(spec, dict):
                refuse(f"{path} must be a mapping")
    if kind != "Pod":
        template = (spec or {}).get("template")
        path += ".template"
        if template is not None and not isinstance(template, dict):
            refuse(f"{path} must be a mapping", spec)
        for step in ("metadata", "spec"):
            part = (template or {}).get(step)
            if part is not None and not isinstance(part, dict):
                refuse(f"{path}.{step} must be a mapping", template)
        meta = (template or {}).get("metadata") or {}
        annotations = meta.get("annotations")
        if annotations is not None and not isinstance(annotations, dict):
            refuse(f"{path}.metadata.annotations must be a mapping", meta)
        spec = (template or {}).get("spec")
        path += ".spec"
    if spec is None:
        return
    for key in ("containers", "initContainers", "volumes", "imagePullSecrets"):
        entries = spec.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            refuse(f"{path}.{key} must be a list", spec)
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                refuse(f"{path}.{key}[{i}] must be a mapping", entries)
            if key in ("containers", "initContainers"):
                _check_container(entry, f"{path}.{key}[{i}]", refuse)
            elif key == "volumes":
                if not isinstance(entry.get("name"), str) or not DNS_LABEL.match(entry["name"]):
                    refuse(
                        f"{path}.{key}[{i}].name {shown(entry.get('name'))} is not a valid volume "
                        "name",
                        entry,
                    )
                for source in ("configMap", "secret"):
                    if entry.get(source) is not None and not isinstance(entry[source], dict):
                        refuse(f"{path}.{key}[{i}].{source} must be a mapping", entry)


def _check_container(container: dict[str, Any], path: str, refuse: Callable[..., None]) -> None:
    name = container.get("name")
    if name is None:
        refuse(f"{path} has no name", container, "Every container needs a name.")
    if not isinstance(name, str) or not DNS_LABEL.match(name):
        refuse(
            f"{path}.name {shown(name)} is not a valid container name",
            container,
            "Use at most 63 lower-case letters, digits and '-'.",
        )
    image = container.get("image")
    if image is not None and not isinstance(image, str):
        refuse(f"{path}.image must be a string", container)
    for key in ("env", "envFrom"):
        entries = container.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            refuse(f"{path}.{key} must be a list", container)
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                refuse(f"{path}.{key}[{i}] must be a mapping", entries)
            if key == "env" and (
                not isinstance(entry.get("name"), str) or not ENV_NAME.match(entry["name"])
            ):
                refuse(
                    f"{path}.{key}[{i}].name {shown(entry.get('name'))} is not a valid variable name",
                    entry,
                )
            for ref in ("valueFrom", "configMapRef", "secretRef"):
                value = entry.get(ref)
                if value is not None and not isinstance(value, dict):
                    refuse(f"{path}.{key}[{i}].{ref} must be a mapping", entry)
                for inner in ("configMapKeyRef", "secretKeyRef"):
                    if (
                        isinstance(value, dict)
                        and value.get(inner) is not None
                        and not isinstance(value[inner], dict)
                    ):
                        refuse(f"{path}.{key}[{i}].{ref}.{inner} must be a mapping", value)


def check_unique(documents: list[Document], root: Path | None = None) -> None:
    """Two documents for one object: `kubectl apply` and we would silently keep the later one."""
    seen: dict[tuple[str, str, str, str], Document] = {}
    for d in documents:
        group = d.api_version.rpartition("/")[0]
        key = (group, d.kind, d.namespace, d.name)
        first = seen.setdefault(key, d)
        if first is not d:
            raise InputError(
                f"{d.subject}"
                + (f" in namespace {d.namespace}" if d.namespace else "")
                + f" is defined twice (first at {first.where(root)}); only one would be applied",
                file=display_path(d.path, root),
                line=d.line,
                hint="Remove or rename one of them.",
            )
