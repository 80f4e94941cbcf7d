"""The workflows the README and docs/ show are ones a reader can copy: zizmor finds nothing in
them (actionlint runs on them too, in `scripts/lint docs_workflows`), the quick start is the
example app's shape (its files, its Job, its Secret, the one pair of secret names used
everywhere), and every link between the pages lands on a heading that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from deployer.manifests.files import find_files
from tests.unit.scripts import ROOT, load_script

docs_workflows = load_script("docs_workflows")

EXAMPLE = ROOT / "examples" / "antisocial"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE_WORKFLOWS = sorted((EXAMPLE / ".github" / "workflows").glob("*.yml"))
ZIZMOR = ROOT / ".venv" / "bin" / "zizmor"
# The two secret names of the quick start, the example and every page (issue 21: a reader met
# three names for one env file).
SECRET_NAMES = {"DIGITALOCEAN_ACCESS_TOKEN", "APP_ENV"}
# A different secret on purpose: the private package index of the build-secrets example.
OTHER_SECRETS = {"PIP_TOKEN"}


def zizmor(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(ZIZMOR),
            "--offline",
            "--quiet",
            "--config",
            str(ROOT / ".github" / "zizmor.yml"),
            ".",
        ],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_yaml_block_that_runs_an_action_is_checked() -> None:
    checked = 0
    for path in DOCS:
        for block in docs_workflows.yaml_blocks(path):
            text = docs_workflows.workflow_text(block)
            if "uses:" in block.text or "run:" in block.text:
                assert text is not None, f"{block.source}: a workflow block the checks miss"
            if text is not None:
                checked += 1
                assert docs_workflows.is_workflow(text), block.source
    # The quick start, and in docs/behaviour.md: migrations first, kustomize overlays, the
    # preview, watch only.
    assert checked >= 5


def test_the_documented_workflows_and_the_examples_are_clean_for_zizmor(tmp_path: Path) -> None:
    written = docs_workflows.write_workflows(DOCS, tmp_path)
    assert any(block.path.name == "README.md" for block in written.values())
    for workflow in EXAMPLE_WORKFLOWS:
        target = tmp_path / ".github" / "workflows" / f"example-{workflow.name}"
        target.write_text(workflow.read_text())
    result = zizmor(tmp_path)
    assert result.returncode == 0, docs_workflows.annotate(result.stdout + result.stderr, written)


def test_zizmor_on_a_block_finds_what_the_old_quick_start_had(tmp_path: Path) -> None:
    # The old quick start's two mistakes: a step output expanded into a script, and an action
    # pinned by a tag. The same extraction must report both, or the test above proves nothing.
    page = tmp_path / "page.md"
    page.write_text(
        "```yaml\n"
        "      - id: deploy\n"
        "        uses: org/django-k8s-deploy@v1\n"
        '      - run: echo "deployed ${{ steps.deploy.outputs.image }}"\n'
        "```\n"
    )
    work = tmp_path / "work"
    written = docs_workflows.write_workflows([page], work)
    assert list(written) == ["page-L1.yml"]
    result = zizmor(work)
    assert result.returncode != 0
    assert "template-injection" in result.stdout
    assert "unpinned-uses" in result.stdout


def test_the_quick_start_is_the_example_apps_shape() -> None:
    step = docs_workflows.quick_start_step()
    inputs = step["with"]
    assert isinstance(inputs, dict)
    # manifests: the glob matches every object file of the example's deploy/ (and not the
    # kustomization, which a glob skips).
    problems: list[tuple[str, str, str]] = []
    found = find_files(inputs["manifests"], EXAMPLE, lambda *problem: problems.append(problem))
    assert not problems
    matched = {p.name for p in found}
    assert matched == {"configmap.yaml", "service.yaml", "migrate.yaml", "deployment.yaml"}
    objects = [
        doc
        for name in matched
        for doc in yaml.safe_load_all((EXAMPLE / "deploy" / name).read_text())
        if doc
    ]
    jobs = {o["metadata"]["name"] for o in objects if o["kind"] == "Job"}
    assert inputs["run-first"] in jobs
    secret_refs = {
        ref["secretRef"]["name"]
        for o in objects
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
        for ref in c.get("envFrom", [])
        if "secretRef" in ref
    }
    assert secret_refs == {inputs["secret-name"]}
    assert inputs["secrets"] == "${{ secrets.APP_ENV }}"
    assert inputs["digitalocean-token"] == "${{ secrets.DIGITALOCEAN_ACCESS_TOKEN }}"
    # The namespace the "Before you start" checklist creates.
    readme = (ROOT / "README.md").read_text()
    assert f"kubectl create namespace {inputs['namespace']}" in readme


def test_one_pair_of_secret_names_everywhere() -> None:
    for path in [*DOCS, *EXAMPLE_WORKFLOWS, EXAMPLE / "README.md"]:
        used = set(re.findall(r"\$\{\{\s*secrets\.(\w+)", path.read_text()))
        extra = used - SECRET_NAMES - OTHER_SECRETS
        assert not extra, f"{path.relative_to(ROOT)}: {sorted(extra)}"


def test_no_page_says_migrate_runs_in_the_init_containers() -> None:
    # The example runs migrate as a run-first Job; only its deploy/alternative/ layout uses init
    # containers, and a page may name that layout as such.
    for path in DOCS:
        text = " ".join(path.read_text().split())
        for stale in (
            "initContainers running `migrate`",
            "run `migrate` in an init container, and",
            "worker (with `migrate`, `collectstatic`, `compress` init containers)",
        ):
            assert stale not in text, f"{path.relative_to(ROOT)}: {stale}"


def headings(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file (outside code blocks)."""
    found: set[str] = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_every_link_between_the_pages_resolves() -> None:
    broken = []
    for path in DOCS:
        for link in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+:", link):
                continue
            target, _, anchor = link.partition("#")
            resolved = (path.parent / target).resolve() if target else path
            if not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)}: {link} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in headings(resolved):
                broken.append(f"{path.relative_to(ROOT)}: {link} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_readme_links_every_reference_page() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in readme, page.name
