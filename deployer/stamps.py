"""What the render phase writes onto workloads so that the right things roll and stay traceable.

* **Config checksums.** Pods read ConfigMaps and Secrets (envFrom, env valueFrom, volumes,
  projected volumes) only when they start, so a changed ConfigMap alone never reaches running
  pods. Each long-running workload (Deployment, StatefulSet, DaemonSet) whose pods use a
  ConfigMap/Secret *from the manifests* gets a checksum of exactly the objects it uses on its pod
  template: a change rolls those workloads and nothing else. Objects that are not in the
  manifests are not ours to hash (we would have to read the cluster, and the user changes them
  out of band on purpose). Jobs are left alone: their template is immutable, and a new Job runs
  with the config of its day anyway.
* **Change cause.** `kubernetes.io/change-cause` on each rolled workload names the commit and, in
  Actions, the run; the controllers copy it onto the ReplicaSet/ControllerRevision, so
  `kubectl rollout history` shows it per revision, and `rollout undo` (and our rollback, which
  copies the old ReplicaSet's annotations back) restores the old one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from deployer import manifests

CONFIG_CHECKSUM_ANNOTATION = "django-k8s-deploy/config-checksum"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"

# Workloads whose pods live on and must be replaced to see new config; their templates may change.
ROLLED_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})

ConfigKey = tuple[str, str, str]  # kind, namespace, name


def config_digest(configs: Iterable[dict[str, Any]]) -> str:
    """sha256 over the content of ConfigMaps/Secrets (data, binaryData, stringData), order-free."""
    content = sorted(
        (
            str(c.get("kind")),
            str((c.get("metadata") or {}).get("name")),
            {k: c.get(k) for k in ("data", "binaryData", "stringData") if c.get(k) is not None},
        )
        for c in configs
    )
    return "sha256:" + hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def stamp_checksum(
    documents: list[manifests.Document],
    configs: dict[ConfigKey, dict[str, Any]],
    annotation: str,
) -> list[str]:
    """On each rolled workload using any of `configs`, set `annotation` on its pod template to the
    digest of exactly the ones it uses. Returns the workloads stamped ("deployment/web")."""
    stamped: list[str] = []
    for d in documents:
        template = manifests.pod_template(d)
        if d.kind not in ROLLED_KINDS or template is None:
            continue
        used = {
            (r.kind, r.namespace, r.name)
            for r in manifests.config_references([d])
            if (r.kind, r.namespace, r.name) in configs
        }
        if not used:
            continue
        _annotations(template)[annotation] = config_digest(configs[key] for key in sorted(used))
        stamped.append(f"{d.subject}")
    return stamped


def stamp_config_checksums(documents: list[manifests.Document]) -> list[str]:
    """The config checksum for the ConfigMaps and Secrets defined in the manifests themselves."""
    configs: dict[ConfigKey, dict[str, Any]] = {
        (d.kind, d.namespace, d.name): d.body
        for d in documents
        if d.kind in ("ConfigMap", "Secret")
    }
    return stamp_checksum(documents, configs, CONFIG_CHECKSUM_ANNOTATION)


def change_cause(sha: str, run_url: str) -> str:
    """One line for `kubectl rollout history`: the commit, and the run when there is one."""
    text = f"django-k8s-deploy {sha[:12]}" if sha else "django-k8s-deploy"
    return f"{text} {run_url}" if run_url else text


def stamp_change_cause(documents: list[manifests.Document], cause: str) -> list[str]:
    """`kubernetes.io/change-cause` on every rolled workload (its own metadata, not the pod
    template: changing it alone must not roll anything)."""
    stamped: list[str] = []
    for d in documents:
        if d.kind not in ROLLED_KINDS:
            continue
        _annotations(d.body)[CHANGE_CAUSE_ANNOTATION] = cause
        stamped.append(f"{d.subject}")
    return stamped


def _annotations(owner: dict[str, Any]) -> dict[str, Any]:
    """`owner.metadata.annotations`, made a mapping where the file left either out or null."""
    metadata = owner.get("metadata")
    if not isinstance(metadata, dict):
        metadata = owner["metadata"] = {}
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict):
        annotations = metadata["annotations"] = {}
    return annotations
