"""`manifests.prepare`: render → parse → namespace → verify, the one place that sequence is written
(preflight, the deploy's renders and `deployer render` use it); and the package stays small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from deployer import manifests
from deployer.errors import InputError
from deployer.manifests import rendering

REF, REPOSITORY = "reg.example/team/app:abc", "reg.example/team/app"
ROOT = Path(__file__).resolve().parents[2]

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers: [{name: migrate, image: <IMAGE>}]
      containers:
        - name: app
          image: "<IMAGE>"   # quoted on purpose
        - name: proxy
          image: nginx:1.27
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {IMAGE: <IMAGE>}
"""


def sources_of(tmp_path: Path, text: str, name: str = "deploy.yaml") -> dict[Path, str]:
    path = tmp_path / name
    path.write_text(text)
    return manifests.read_sources((path,), tmp_path)


def prepare(
    sources: dict[Path, str], root: Path | None, namespace: str | None = ""
) -> manifests.Prepared:
    return manifests.prepare(
        sources,
        placeholder="<IMAGE>",
        image_ref=REF,
        repository=REPOSITORY,
        namespace=namespace,
        root=root,
    )


def test_prepare_renders_parses_the_rendered_text_names_the_namespace_and_verifies_images(
    tmp_path: Path,
) -> None:
    sources = sources_of(tmp_path, APP)
    prepared = prepare(sources, tmp_path, namespace="shop")
    assert prepared.rendered == manifests.render(sources, "<IMAGE>", REF)
    assert '"reg.example/team/app:abc"   # quoted on purpose' in next(
        iter(prepared.rendered.values())
    )
    web, config = prepared.documents
    assert web.body["spec"]["template"]["spec"]["containers"][0]["image"] == REF
    assert config.body["data"] == {"IMAGE": REF}  # a text substitution: data gets it too
    assert (prepared.namespace, [d.namespace for d in prepared.documents]) == (
        "shop",
        ["shop", "shop"],
    )
    assert [(u.subject, u.image, u.ours) for u in prepared.uses] == [
        ("deployment/web init container `migrate`", REF, True),
        ("deployment/web container `app`", REF, True),
        ("deployment/web container `proxy`", "nginx:1.27", False),
    ]
    assert prepared.placeholders == 3
    assert [d.where(tmp_path) for d in prepared.documents] == ["deploy.yaml:1", "deploy.yaml:14"]


def test_prepare_without_a_namespace_leaves_the_objects_as_written(tmp_path: Path) -> None:
    prepared = prepare(sources_of(tmp_path, APP), None, namespace=None)
    assert prepared.namespace == ""
    assert all("namespace" not in d.body["metadata"] for d in prepared.documents)
    assert manifests.to_yaml(prepared.rendered).startswith("---\napiVersion: apps/v1\n")


def test_prepare_answers_as_the_steps_it_replaces_on_the_example_app() -> None:
    deploy = ROOT / "examples" / "antisocial" / "deploy"
    files = tuple(sorted(p for p in deploy.glob("*.yaml") if p.name != "kustomization.yaml"))
    sources = manifests.read_sources(files, ROOT)
    prepared = prepare(sources, ROOT, namespace="")
    # The sequence as preflight, plan.render_documents and cli._render wrote it out.
    documents = manifests.parse(manifests.render(sources, "<IMAGE>", REF), ROOT)
    namespace = manifests.assign_namespace(documents, "", ROOT)
    uses = manifests.verify_images(documents, REF, REPOSITORY, "<IMAGE>", ROOT)
    assert prepared.documents == documents and len(documents) > 3
    assert (prepared.namespace, prepared.uses) == (namespace, uses)
    assert [u.subject for u in uses if u.ours]  # the example runs the image being deployed


def test_prepare_refuses_a_namespace_conflict_before_an_image_problem(tmp_path: Path) -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: other}\n"
        "spec: {containers: [{name: a, image: 'reg.example/team/app:old'}]}\n"
    )
    sources = sources_of(tmp_path, text)
    with pytest.raises(InputError) as info:
        prepare(sources, tmp_path, namespace="prod")
    assert str(info.value).startswith(
        "deploy.yaml:1: pod/p names namespace 'other' but the namespace input is 'prod'"
    )
    with pytest.raises(InputError) as info:
        prepare(sources, tmp_path, namespace=None)
    assert str(info.value).startswith(
        "deploy.yaml:4: pod/p container `a` runs 'reg.example/team/app:old', the repository "
        "being deployed at another tag"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "# <IMAGE> in a comment does not count\napiVersion: v1\nkind: Pod\n"
            "metadata: {name: p}\nspec: {containers: [{name: a, image: 'other/app:1'}]}\n",
            "deploy.yaml:2: no container runs the image being deployed (reg.example/team/app:abc)",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
            "spec: {containers: [{name: a, image: '<IMAGE>-debug'}]}\n",
            "deploy.yaml:4: pod/p container `a` would run 'reg.example/team/app:abc-debug': the "
            "placeholder is part of a longer image reference",
        ),
        (  # parsed as rendered: the placeholder made the key `reg.example/team/app:abc` twice
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
            "data: {<IMAGE>: 1, reg.example/team/app:abc: 2}\n",
            "deploy.yaml:4: invalid YAML: duplicate key 'reg.example/team/app:abc'",
        ),
    ],
)
def test_prepare_judges_the_text_as_rendered(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        prepare(sources_of(tmp_path, text), tmp_path)
    assert str(info.value).startswith(message)


def test_prepare_parses_once_through_the_loading_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a test counts parses: `rendering.parse` is the name `prepare` calls."""
    calls: list[int] = []
    real = rendering.parse

    def parse(*args: object, **kwargs: object) -> list[manifests.Document]:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rendering, "parse", parse)
    prepare(sources_of(tmp_path, APP), tmp_path)
    assert calls == [1]


def test_no_manifests_module_over_600_lines_and_no_function_over_80() -> None:
    package = ROOT / "deployer" / "manifests"
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 6
    too_long: list[str] = []
    for module in modules:
        text = module.read_text()
        if len(text.splitlines()) > 600:
            too_long.append(module.name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                if node.end_lineno - node.lineno + 1 > 80:
                    too_long.append(f"{module.name}:{node.name}")
    assert too_long == []


@pytest.mark.parametrize("typo", ["<IMGAE>", "<image>", "< IMAGE >", "<IMAGES>", "IMAGE>"])
def test_a_near_miss_placeholder_gets_did_you_mean(tmp_path: Path, typo: str) -> None:
    text = APP.replace('"<IMAGE>"   # quoted on purpose', f'"{typo}"')
    with pytest.raises(InputError) as info:
        prepare(sources_of(tmp_path, text), tmp_path)
    assert info.value.where == "deploy.yaml:9"  # the container
    assert str(info.value).endswith(
        "is not an image reference. Did you mean `<IMAGE>`? (the placeholder, written exactly)"
    )


@pytest.mark.parametrize("other", ["<APP_IMAGE_TAG_HERE>", "my image", "{{ .Values.image }}"])
def test_an_unrelated_bad_image_gets_no_did_you_mean(tmp_path: Path, other: str) -> None:
    text = APP.replace('"<IMAGE>"   # quoted on purpose', f'"{other}"')
    with pytest.raises(InputError) as info:
        prepare(sources_of(tmp_path, text), tmp_path)
    assert "is not an image reference" in str(info.value)
    assert "Did you mean" not in str(info.value)
