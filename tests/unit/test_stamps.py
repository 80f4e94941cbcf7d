"""Config checksums roll exactly the workloads that use a changed ConfigMap/Secret; the change
cause names the commit and run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from deployer import manifests
from deployer.stamps import (
    CHANGE_CAUSE_ANNOTATION,
    CONFIG_CHECKSUM_ANNOTATION,
    change_cause,
    stamp_change_cause,
    stamp_config_checksums,
)

WORKLOADS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
        - name: web
          image: app
          envFrom: [{configMapRef: {name: app-config}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  template:
    spec:
      containers:
        - name: worker
          image: app
          env:
            - name: BROKER
              valueFrom: {secretKeyRef: {name: broker, key: url}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: cache, annotations: {team: core}}
spec:
  template:
    spec:
      containers: [{name: cache, image: redis}]
      volumes:
        - name: conf
          projected:
            sources:
              - configMap: {name: cache-conf}
              - secret: {name: broker}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: logs}
spec:
  template:
    spec:
      containers: [{name: logs, image: fluent}]
      volumes: [{name: c, configMap: {name: not-in-the-manifests}}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: app
          envFrom: [{configMapRef: {name: app-config}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {DEBUG: "false"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cache-conf}
data: {maxmemory: 100mb}
---
apiVersion: v1
kind: Secret
metadata: {name: broker}
stringData: {url: "redis://cache:6379/0"}
"""


def stamped(tmp_path: Path, text: str) -> tuple[list[str], dict[str, Any]]:
    path = tmp_path / "deploy.yaml"
    path.write_text(text)
    docs = manifests.parse(manifests.read_sources((path,)))
    manifests.assign_namespace(docs, "shop")
    users = stamp_config_checksums(docs)
    checksums = {
        f"{d.kind.lower()}/{d.name}": (manifests.pod_template(d) or {})
        .get("metadata", {})
        .get("annotations", {})
        .get(CONFIG_CHECKSUM_ANNOTATION)
        for d in docs
        if manifests.pod_template(d) is not None
    }
    return users, checksums


def test_each_workload_is_stamped_with_what_it_uses_and_jobs_are_left_alone(
    tmp_path: Path,
) -> None:
    users, sums = stamped(tmp_path, WORKLOADS)
    assert users == ["deployment/web", "deployment/worker", "statefulset/cache"]
    assert sums["daemonset/logs"] is None  # its ConfigMap is not in the manifests
    assert sums["job/migrate"] is None  # a Job's template is immutable
    assert all(str(sums[u]).startswith("sha256:") for u in users)
    assert len({sums[u] for u in users}) == 3


def test_a_template_with_null_metadata_or_annotations_is_stamped_too(tmp_path: Path) -> None:
    for template_metadata in ("metadata:", "metadata: {annotations: null}"):
        text = f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{DEBUG: "false"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, annotations: null}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    {template_metadata}
    spec:
      containers:
        - {{name: web, image: <IMAGE>, envFrom: [{{configMapRef: {{name: settings}}}}]}}
"""
        users, sums = stamped(tmp_path, text)
        assert users == ["deployment/web"], template_metadata
        assert str(sums["deployment/web"]).startswith("sha256:")


def test_a_changed_configmap_rolls_exactly_its_users(tmp_path: Path) -> None:
    _, before = stamped(tmp_path, WORKLOADS)
    _, same = stamped(tmp_path, WORKLOADS.replace("# unrelated", ""))
    assert same == before
    _, after = stamped(tmp_path, WORKLOADS.replace('DEBUG: "false"', 'DEBUG: "true"'))
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"deployment/web"}


def test_a_changed_secret_rolls_its_env_and_projected_volume_users(tmp_path: Path) -> None:
    _, before = stamped(tmp_path, WORKLOADS)
    _, after = stamped(tmp_path, WORKLOADS.replace("cache:6379/0", "cache:6379/1"))
    assert {k for k in before if before[k] != after[k]} == {
        "deployment/worker",
        "statefulset/cache",
    }


def test_a_reordered_manifest_with_the_same_content_rolls_nothing(tmp_path: Path) -> None:
    _, before = stamped(tmp_path, WORKLOADS)
    docs = WORKLOADS.split("---\n")
    _, after = stamped(tmp_path, "---\n".join(list(reversed(docs[5:])) + docs[:5]))
    assert after == before


def test_the_change_cause_is_on_the_rolled_workloads_metadata_not_their_pods(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(WORKLOADS)
    docs = manifests.parse(manifests.read_sources((path,)))
    cause = change_cause("9b2d771e" + "0" * 32, "https://github.com/team/app/actions/runs/42")
    assert cause == "django-k8s-deploy 9b2d771e0000 https://github.com/team/app/actions/runs/42"
    assert stamp_change_cause(docs, cause) == [
        "deployment/web",
        "deployment/worker",
        "statefulset/cache",
        "daemonset/logs",
    ]
    by_name = {d.name: d.body for d in docs}
    assert by_name["cache"]["metadata"]["annotations"] == {
        "team": "core",
        CHANGE_CAUSE_ANNOTATION: cause,
    }
    assert CHANGE_CAUSE_ANNOTATION not in yaml.safe_dump(by_name["migrate"])
    assert CHANGE_CAUSE_ANNOTATION not in yaml.safe_dump(by_name["web"]["spec"])


def test_outside_actions_the_change_cause_names_the_commit_only() -> None:
    assert change_cause("0123456789abcdef", "") == "django-k8s-deploy 0123456789ab"
