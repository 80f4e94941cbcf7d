"""`manifests` naming a kustomization directory: built by the real kustomize (the pinned binary
from scripts/build-binaries, first on PATH through the `kustomize` fixture), the placeholder
rendered after the build, every object named by its source file:line, the origin annotation
never applied, and a broken kustomization one line naming its file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deployer import manifests
from deployer.errors import InputError
from deployer.manifests import kustomize as kz

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "antisocial"
REF, REPOSITORY = "reg.example/team/app:abc", "reg.example/team/app"
RENDER = [sys.executable, "-m", "deployer", "render", "--manifest", "deploy/overlays/staging"]

BASE = """\
# the web tier
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: <IMAGE>
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def tree(tmp_path: Path, overlay: str, base: str = BASE, **extra: str) -> Path:
    return write(
        tmp_path / "ws",
        {
            "deploy/base/app.yaml": base,
            "deploy/base/kustomization.yaml": "resources:\n- app.yaml\n",
            "deploy/overlays/staging/kustomization.yaml": overlay,
            **extra,
        },
    )


def prepared(ws: Path, entry: str = "deploy/overlays/staging") -> manifests.Prepared:
    problems: list[tuple[str, str, str]] = []
    paths = manifests.find_files(entry, ws, lambda *p: problems.append(p))
    assert problems == []
    return manifests.prepare(
        manifests.read_sources(paths, ws),
        placeholder="<IMAGE>",
        image_ref=REF,
        repository=REPOSITORY,
        namespace="",
        root=ws,
    )


def refusal(ws: Path, entry: str = "deploy/overlays/staging") -> InputError:
    with pytest.raises(InputError) as info:
        prepared(ws, entry)
    assert "\n" not in str(info.value)
    return info.value


OVERLAY = """\
resources:
- ../../base
replicas:
- name: web
  count: 3
configMapGenerator:
- name: settings
  literals: [LOG_LEVEL=DEBUG]
"""


def test_an_overlay_is_built_rendered_and_each_object_named_by_its_source_line(
    tmp_path: Path, kustomize: Path
) -> None:
    ws = tree(tmp_path, OVERLAY)
    result = prepared(ws)
    where = {d.subject: d.where(ws) for d in result.documents}
    assert where["deployment/web"] == "deploy/base/app.yaml:2"
    assert where["service/web"] == "deploy/base/app.yaml:18"
    # A generated object is named by the generator's entry in the kustomization.
    [config] = [d for d in result.documents if d.kind == "ConfigMap"]
    assert config.where(ws) == "deploy/overlays/staging/kustomization.yaml:7"
    [web] = [d for d in result.documents if d.kind == "Deployment"]
    assert web.body["spec"]["replicas"] == 3  # the overlay's
    [container] = web.body["spec"]["template"]["spec"]["containers"]
    assert container["image"] == REF  # <IMAGE> in the base, rendered after the build
    assert web.line_of(container) == 15  # a part of it: its line in the base file
    assert [u.ours for u in result.uses] == [True]
    for d in result.documents:  # the origin annotation is never applied
        assert kz.ORIGIN_ANNOTATION not in (d.body["metadata"].get("annotations") or {})
        assert "annotations" not in d.body["metadata"]


def test_an_image_problem_in_a_base_is_named_at_the_base_file_and_line(
    tmp_path: Path, kustomize: Path
) -> None:
    ws = tree(tmp_path, OVERLAY, base=BASE.replace("<IMAGE>", "reg.example/team/app:old"))
    error = refusal(ws)
    assert str(error).startswith("deploy/base/app.yaml:15: deployment/web container `app` runs")


def test_user_annotations_survive_and_only_the_origin_is_stripped(
    tmp_path: Path, kustomize: Path
) -> None:
    base = BASE.replace(
        "  name: web\nspec:\n  replicas", "  name: web\n  annotations: {a: b}\nspec:\n  replicas"
    )
    result = prepared(tree(tmp_path, OVERLAY, base=base))
    [web] = [d for d in result.documents if d.kind == "Deployment"]
    assert web.body["metadata"]["annotations"] == {"a": "b"}


def test_plain_files_and_a_kustomization_can_be_named_together(
    tmp_path: Path, kustomize: Path
) -> None:
    ws = tree(
        tmp_path,
        "resources:\n- ../../base\n",
        **{"deploy/extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n"},
    )
    result = prepared(ws, "deploy/extra.yaml\ndeploy/overlays/staging")
    assert sorted(d.where(ws) for d in result.documents) == [
        "deploy/base/app.yaml:18",
        "deploy/base/app.yaml:2",
        "deploy/extra.yaml:1",
    ]


BROKEN = {
    "unknown field": (
        "resources:\n- ../../base\nreplica:\n- name: web\n  count: 2\n",
        "deploy/overlays/staging/kustomization.yaml:3: unknown field 'replica'",
    ),
    "missing base": (
        "resources:\n- ../../bsae\n",
        "deploy/overlays/staging/kustomization.yaml:2: '../../bsae' does not exist",
    ),
    "not a mapping": (
        "- ../../base\n",
        "deploy/overlays/staging/kustomization.yaml:1: a kustomization must be one YAML mapping",
    ),
    "invalid YAML": (
        "resources: [../../base\n",
        "deploy/overlays/staging/kustomization.yaml:2: invalid YAML",
    ),
    "a patch whose target is not there": (
        "resources:\n- ../../base\npatches:\n- path: p.yaml\n",
        "deploy/overlays/staging/kustomization.yaml: kustomize could not build it:",
    ),
    "a base directory without a kustomization": (
        "resources:\n- ../../empty\n",
        "deploy/overlays/staging/kustomization.yaml:2: resources names '../../empty', a "
        "directory without a kustomization.yaml",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_kustomization_is_one_line_naming_its_file(
    tmp_path: Path, kustomize: Path, case: str
) -> None:
    overlay, message = BROKEN[case]
    ws = tree(
        tmp_path,
        overlay,
        **{
            "deploy/overlays/staging/p.yaml": "apiVersion: apps/v1\nkind: Deployment\n"
            "metadata: {name: nope}\nspec: {replicas: 2}\n",
            "deploy/empty/.keep": "",
        },
    )
    assert str(refusal(ws)).startswith(message)


def test_kustomizes_own_error_shows_no_temporary_or_absolute_path(
    tmp_path: Path, kustomize: Path
) -> None:
    ws = tree(tmp_path, "resources:\n- ../../base\npatches:\n- path: p.yaml\n")
    (ws / "deploy/overlays/staging/p.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: nope}\nspec: {replicas: 2}\n"
    )
    text = str(refusal(ws))
    assert "nope" in text  # kustomize's own reason
    assert str(ws) not in text and "djk-kustomize-" not in text
    # Our private overlay's layer of kustomize's chain is left out: the cause comes first.
    assert "kustomize could not build it: no resource matches strategic merge patch" in text
    assert "must resolve to a file" not in text


def test_a_directory_without_a_kustomization_matches_nothing(tmp_path: Path) -> None:
    ws = write(tmp_path / "ws", {"deploy/app.yaml": BASE})
    problems: list[tuple[str, str, str]] = []
    assert manifests.find_files("deploy", ws, lambda *p: problems.append(p)) == ()
    assert problems[0][0] == "manifests" and "matches no file" in problems[0][1]


def test_without_a_kustomize_binary_it_is_one_line_naming_the_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tree(tmp_path, OVERLAY)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(kz, "CACHE_BIN", tmp_path / "no-cache")
    error = refusal(ws)
    assert str(error).startswith("manifests: manifests names a kustomization but no kustomize")
    assert "scripts/build-binaries kustomize" in str(error)


def test_a_build_that_prints_too_much_is_stopped(
    tmp_path: Path, kustomize: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kz, "MAX_OUTPUT_BYTES", 100)
    error = refusal(tree(tmp_path, OVERLAY))
    assert "kustomize printed more than" in str(error)


def test_a_build_that_takes_too_long_is_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = tmp_path / "bin" / "kustomize"
    slow.parent.mkdir()
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    monkeypatch.setenv("PATH", str(slow.parent))
    monkeypatch.setattr(kz, "BUILD_TIMEOUT_S", 0.5)
    error = refusal(tree(tmp_path, OVERLAY))
    assert "kustomize took longer than 0.5 s" in str(error)


def test_the_example_overlays_build_over_the_plain_files(kustomize: Path) -> None:
    staging, production = (
        prepared(EXAMPLE, f"overlays/{env}") for env in ("staging", "production")
    )
    plain = prepared(
        EXAMPLE,
        "deploy/configmap.yaml\ndeploy/service.yaml\ndeploy/migrate.yaml\ndeploy/deployment.yaml",
    )

    def replicas(p: manifests.Prepared) -> dict[str, int]:
        return {d.name: d.body["spec"]["replicas"] for d in p.documents if d.kind == "Deployment"}

    def config(p: manifests.Prepared) -> dict[str, str]:
        [c] = [d for d in p.documents if d.kind == "ConfigMap"]
        return dict(c.body["data"])

    assert replicas(plain) == {"antisocial-web": 2, "antisocial-worker": 1, "antisocial-beat": 1}
    assert replicas(staging)["antisocial-web"] == 1
    assert replicas(production) == {
        "antisocial-web": 3,
        "antisocial-worker": 2,
        "antisocial-beat": 1,
    }
    assert config(staging)["ALLOWED_HOSTS"] == "staging.antisocial.example.com"
    assert "www.antisocial.example.com" in config(production)["ALLOWED_HOSTS"]
    assert config(plain)["ALLOWED_HOSTS"] == "antisocial.example.com"
    assert "PodDisruptionBudget" not in {d.kind for d in staging.documents}
    # The same objects at the same lines as the plain layout, where the overlay did not add them.
    plain_where = {d.subject: d.where(EXAMPLE) for d in plain.documents}
    for p in (staging, production):
        for d in p.documents:
            assert d.where(EXAMPLE) == plain_where[d.subject]
        assert all(u.ours for u in p.uses)


def test_the_pinned_version_is_the_same_everywhere() -> None:
    version = kz.KUSTOMIZE_VERSION
    script = (ROOT / "scripts" / "build-binaries").read_text()
    assert re.search(
        rf"^KUSTOMIZE_VERSION=\$\{{KUSTOMIZE_VERSION:-{re.escape(version)}\}}$", script, re.M
    )
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG KUSTOMIZE_IMAGE=registry.k8s.io/kustomize/kustomize:{version}\n" in dockerfile
    assert "COPY --from=kustomize /app/kustomize /usr/local/bin/kustomize" in dockerfile
    assert f"kustomize {version}" in (ROOT / "docs" / "behaviour.md").read_text()


def test_a_glob_over_a_kustomize_base_matches_the_manifests_not_the_kustomization() -> None:
    problems: list[tuple[str, str, str]] = []
    found = manifests.find_files("deploy/*.yaml", EXAMPLE, lambda *p: problems.append(p))
    assert problems == []
    assert sorted(p.name for p in found) == [
        "configmap.yaml",
        "deployment.yaml",
        "migrate.yaml",
        "service.yaml",
    ]


def test_naming_the_kustomization_file_itself_says_to_name_its_directory(tmp_path: Path) -> None:
    ws = tree(tmp_path, OVERLAY)
    problems: list[tuple[str, str, str]] = []
    entry = "deploy/overlays/staging/kustomization.yaml"
    assert manifests.find_files(entry, ws, lambda *p: problems.append(p)) == ()
    [(name, message, hint)] = problems
    assert name == "manifests" and "is a kustomization" in message
    assert "'deploy/overlays/staging'" in hint


def test_the_cli_renders_an_overlay_as_it_would_be_applied(tmp_path: Path, kustomize: Path) -> None:
    ws = tree(tmp_path, OVERLAY)
    done = subprocess.run(
        [*RENDER, "--image", REF],
        cwd=ws,
        env={"PATH": f"{kustomize.parent}:/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    documents = {d["kind"]: d for d in yaml.safe_load_all(done.stdout)}
    assert documents["Deployment"]["spec"]["replicas"] == 3
    assert documents["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == REF
    assert kz.ORIGIN_ANNOTATION not in done.stdout


def test_the_cli_names_a_missing_kustomize_in_one_line(tmp_path: Path) -> None:
    ws = tree(tmp_path, OVERLAY)
    done = subprocess.run(
        [*RENDER, "--image", REF],
        cwd=ws,
        # HOME elsewhere too: the stack's cache under the real home must not be found.
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert "no kustomize binary was found" in done.stderr


def test_a_prefixed_object_is_found_by_its_own_name_not_a_shorter_one(
    tmp_path: Path, kustomize: Path
) -> None:
    two = BASE.split("---\n", maxsplit=1)[0]
    worker = two.replace("name: web", "name: web-worker").replace("app: web", "app: worker")
    ws = tree(
        tmp_path, "resources:\n- ../../base\nnamePrefix: staging-\n", base=two + "---\n" + worker
    )
    where = {d.subject: d.where(ws) for d in prepared(ws).documents}
    assert where == {
        "deployment/staging-web": "deploy/base/app.yaml:2",
        "deployment/staging-web-worker": "deploy/base/app.yaml:19",
    }


def test_a_workspace_reached_through_a_symlink_is_still_shown_relative(
    tmp_path: Path, kustomize: Path
) -> None:
    real = tree(tmp_path, OVERLAY)
    link = tmp_path / "link"
    link.symlink_to(real)
    result = prepared(link)
    assert {d.where(link) for d in result.documents} == {
        "deploy/base/app.yaml:2",
        "deploy/base/app.yaml:18",
        "deploy/overlays/staging/kustomization.yaml:7",
    }
