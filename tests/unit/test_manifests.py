"""Rendering leaves everything but the placeholder as written; parse errors name file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployer import manifests
from deployer.errors import InputError

APP = """\
# web tier
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  template:
    spec:
      initContainers:
        - name: migrate
          image: <IMAGE>
          args: ["migrate"]
      containers:
        - name: app
          image: "<IMAGE>"   # quoted on purpose
          envFrom:
            - configMapRef: {name: app-config}
            - secretRef: {name: app-secrets}
          env:
            - name: OPTIONAL
              valueFrom: {secretKeyRef: {name: extra, key: k, optional: true}}
      volumes:
        - name: static
          configMap: {name: static-files}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  DJANGO_IMAGE: <IMAGE>
"""


@pytest.fixture
def app(tmp_path: Path) -> dict[Path, str]:
    path = tmp_path / "deploy" / "deployment.yaml"
    path.parent.mkdir()
    path.write_text(APP)
    return manifests.read_sources((path,), tmp_path)


def test_render_replaces_every_occurrence_and_nothing_else(app: dict[Path, str]) -> None:
    rendered = manifests.render(app, "<IMAGE>", "reg.example/app:abc")
    (text,) = rendered.values()
    assert text == APP.replace("<IMAGE>", "reg.example/app:abc")
    assert "# web tier" in text and '"reg.example/app:abc"   # quoted on purpose' in text
    assert manifests.check_placeholder(app, "<IMAGE>") == 3
    docs = manifests.parse(rendered)
    uses = manifests.verify_images(docs, "reg.example/app:abc", "reg.example/app", "<IMAGE>")
    assert [(u.subject, u.ours) for u in uses] == [
        ("deployment/web init container `migrate`", True),
        ("deployment/web container `app`", True),
    ]


def test_no_container_running_the_image_is_an_error_naming_file_and_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        "# <IMAGE> in a comment does not count\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
        "spec: {containers: [{name: a, image: 'other/app:old'}]}\n"
    )
    docs = manifests.parse(manifests.read_sources((path,), tmp_path), tmp_path)
    with pytest.raises(InputError) as info:
        manifests.verify_images(docs, "reg/app:abc", "reg/app", "<IMAGE>", tmp_path)
    assert str(info.value).startswith(
        "d.yaml:2: no container runs the image being deployed (reg/app:abc)"
    )


def test_documents_know_their_file_and_line(app: dict[Path, str], tmp_path: Path) -> None:
    docs = manifests.parse(app, tmp_path)
    assert [(d.kind, d.name, d.where(tmp_path)) for d in docs] == [
        ("Service", "web", "deploy/deployment.yaml:2"),
        ("Deployment", "web", "deploy/deployment.yaml:9"),
        ("ConfigMap", "app-config", "deploy/deployment.yaml:34"),
    ]


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: oops\n")
    with pytest.raises(InputError) as info:
        manifests.parse(manifests.read_sources((path,)), tmp_path)
    assert (info.value.file, info.value.line) == ("bad.yaml", 5)
    assert str(info.value).startswith("bad.yaml:5: invalid YAML")


def test_object_without_name_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\n"
    )
    with pytest.raises(InputError, match=r"m.yaml:5: object lacks metadata.name"):
        manifests.parse(manifests.read_sources((path,)), tmp_path)


def test_namespace_defaults_to_the_one_the_manifests_name(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "kind: ConfigMap\napiVersion: v1\nmetadata: {name: a, namespace: shop}\n---\n"
        "kind: Secret\napiVersion: v1\nmetadata: {name: b}\n---\n"
        "kind: Namespace\napiVersion: v1\nmetadata: {name: shop}\n"
    )
    docs = manifests.parse(manifests.read_sources((path,)))
    assert manifests.assign_namespace(docs, "") == "shop"
    assert [d.namespace for d in docs] == ["shop", "shop", ""]


def test_namespace_input_conflicting_with_a_manifest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("kind: ConfigMap\napiVersion: v1\nmetadata: {name: a, namespace: shop}\n")
    docs = manifests.parse(manifests.read_sources((path,)), tmp_path)
    with pytest.raises(
        InputError, match=r"^m.yaml:1: configmap/a names namespace 'shop' but the namespace input"
    ):
        manifests.assign_namespace(docs, "prod", tmp_path)


def test_apply_order_puts_config_before_services_before_workloads(app: dict[Path, str]) -> None:
    docs = manifests.parse(app)
    assert [d.kind for d in manifests.apply_order(docs)] == ["ConfigMap", "Service", "Deployment"]


def test_config_references_cover_env_from_value_from_and_volumes(
    app: dict[Path, str], tmp_path: Path
) -> None:
    docs = manifests.parse(app, tmp_path)
    manifests.assign_namespace(docs, "")
    refs = [
        (r.kind, r.name, r.optional, r.used_by) for r in manifests.config_references(docs, tmp_path)
    ]
    assert refs == [
        ("ConfigMap", "app-config", False, "deployment/web container `app` envFrom"),
        ("Secret", "app-secrets", False, "deployment/web container `app` envFrom"),
        ("Secret", "extra", True, "deployment/web container `app` env OPTIONAL"),
        ("ConfigMap", "static-files", False, "deployment/web volume static"),
    ]


def test_render_output_is_one_valid_multi_document_stream(app: dict[Path, str]) -> None:
    text = manifests.to_yaml(manifests.render(app, "<IMAGE>", "x/y:z"))
    assert [d["kind"] for d in yaml.safe_load_all(text) if d] == [
        "Service",
        "Deployment",
        "ConfigMap",
    ]


def test_the_secret_checksum_rolls_exactly_the_workloads_that_use_the_secret(
    tmp_path: Path,
) -> None:
    from deployer.envfile import secret_manifest
    from deployer.plan import SECRET_CHECKSUM_ANNOTATION
    from deployer.stamps import stamp_checksum

    def stamped(values: tuple[tuple[str, str], ...]) -> dict[str, str | None]:
        path = tmp_path / "m.yaml"
        path.write_text(
            APP
            + "---\n"
            + APP.split("---\n")[1]
            .replace("name: web", "name: other", 1)
            .replace("app-secrets", "unrelated")
        )
        docs = manifests.parse(manifests.read_sources((path,)))
        manifests.assign_namespace(docs, "shop")
        users = stamp_checksum(
            docs,
            {("Secret", "shop", "app-secrets"): secret_manifest("app-secrets", "shop", values)},
            SECRET_CHECKSUM_ANNOTATION,
        )
        assert users == ["deployment/web"]
        return {
            d.name: (manifests.pod_template(d) or {})
            .get("metadata", {})
            .get("annotations", {})
            .get(SECRET_CHECKSUM_ANNOTATION)
            for d in docs
            if d.kind == "Deployment"
        }

    first = stamped((("SECRET_KEY", "one"),))
    assert first["other"] is None
    assert str(first["web"]).startswith("sha256:")
    assert stamped((("SECRET_KEY", "one"),)) == first
    assert stamped((("SECRET_KEY", "two"),))["web"] != first["web"]
