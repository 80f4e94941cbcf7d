#!/usr/bin/env python3
"""The workflows the documentation shows are checked like the repository's own.

    python3 scripts/docs_workflows.py --actionlint PATH [--zizmor PATH] [FILE.md ...]
    (default files: README.md and docs/*.md)

Every fenced ```yaml block of the Markdown files that is a workflow (it has `jobs:` at its top
level) is checked as it stands; a block that is steps (its first line is `- uses:`/`- run:`/`- id:`
/`- name:`, at any indentation) is wrapped into the smallest workflow that holds it (`permissions:
{}`, one job on ubuntu-24.04), since that is how a reader uses it. Other yaml blocks (manifests,
kustomizations) are not workflows and are left alone. Each is written to a private directory as
`.github/workflows/<file>-L<line>.yml` and given to actionlint and zizmor (offline, with the
repository's .github/zizmor.yml); a finding names the Markdown file and the line of its block.
Exit 1 on any finding, 2 when a tool cannot run or no workflow was found at all.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STEP_START = re.compile(r"^\s*- (uses|run|id|name):")
FENCE = re.compile(r"^```(\w*)\s*$")
WRAPPER = """\
# A step snippet from {source}, wrapped into the smallest workflow that runs it.
name: snippet
on: push
permissions: {{}}
jobs:
  snippet:
    runs-on: ubuntu-24.04
    steps:
{steps}"""


@dataclass(frozen=True)
class Block:
    """One ```yaml block: where it starts (the fence's line, 1-based) and its text."""

    path: Path
    line: int
    text: str

    @property
    def source(self) -> str:
        try:
            shown = self.path.resolve().relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}"

    @property
    def file_name(self) -> str:
        return f"{self.path.stem}-L{self.line}.yml"


def yaml_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start: int | None = None
    language = ""
    body: list[str] = []
    for number, line in enumerate(lines, start=1):
        fence = FENCE.match(line)
        if start is None:
            if fence and line.startswith("```") and fence.group(1):
                start, language, body = number, fence.group(1), []
            continue
        if line.rstrip() == "```":
            if language in ("yaml", "yml"):
                blocks.append(Block(path, start, "".join(body)))
            start = None
            continue
        body.append(line)
    return blocks


def is_steps(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    return bool(STEP_START.match(first))


def is_workflow(text: str) -> bool:
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(loaded, dict) and "jobs" in loaded


def workflow_text(block: Block) -> str | None:
    """The workflow a block is, or wraps; None for a block that is no workflow."""
    if is_steps(block.text):
        steps = textwrap.indent(textwrap.dedent(block.text), "      ")
        return WRAPPER.format(source=block.source, steps=steps)
    if is_workflow(block.text):
        return block.text
    return None


QUICK_START = "## Quick start"


def quick_start_step(readme: Path | None = None) -> dict[str, object]:
    """The quick start's step that runs this action (`uses: …django-k8s-deploy@…`): the first
    workflow block after the README's "Quick start" heading. The e2e test runs exactly its `with:`."""
    path = readme or ROOT / "README.md"
    text = path.read_text(encoding="utf-8")
    heading = text.find("\n" + QUICK_START)
    if heading < 0:
        raise ValueError(f"{path}: no {QUICK_START!r} heading")
    line = text.count("\n", 0, heading) + 2
    for block in yaml_blocks(path):
        if block.line > line and is_workflow(block.text):
            workflow = yaml.safe_load(block.text)
            for job in workflow["jobs"].values():
                for step in job.get("steps", []):
                    if "django-k8s-deploy@" in str(step.get("uses", "")):
                        return dict(step)
            raise ValueError(f"{block.source}: the quick start runs no django-k8s-deploy step")
    raise ValueError(f"{path}: no workflow block after {QUICK_START!r}")


def default_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def write_workflows(files: list[Path], into: Path) -> dict[str, Block]:
    """Writes each workflow into `into/.github/workflows/`; returns file name → its block."""
    target = into / ".github" / "workflows"
    target.mkdir(parents=True, exist_ok=True)
    written: dict[str, Block] = {}
    for path in files:
        for block in yaml_blocks(path):
            text = workflow_text(block)
            if text is not None:
                (target / block.file_name).write_text(text, encoding="utf-8")
                written[block.file_name] = block
    return written


def run(argv: list[str], where: Path) -> tuple[int, str]:
    try:
        done = subprocess.run(
            argv, cwd=where, capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return 2, f"{argv[0]}: {error}"
    return done.returncode, done.stdout + done.stderr


def annotate(output: str, written: dict[str, Block]) -> str:
    for name, block in written.items():
        output = output.replace(f".github/workflows/{name}", f"{block.source} (block)")
    return output


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--actionlint", required=True, help="the actionlint binary")
    parser.add_argument("--zizmor", default=str(ROOT / ".venv" / "bin" / "zizmor"))
    parser.add_argument("files", nargs="*", type=Path)
    options = parser.parse_args(args)
    files = options.files or default_files()
    with tempfile.TemporaryDirectory(prefix="docs-workflows-") as tmp:
        where = Path(tmp)
        written = write_workflows(files, where)
        if not written:
            print("docs_workflows: no workflow block in " + ", ".join(map(str, files)))
            return 2
        for name, block in sorted(written.items()):
            print(f"{block.source}: checked as .github/workflows/{name}")
        names = [f".github/workflows/{name}" for name in sorted(written)]
        worst = 0
        for argv in (
            [options.actionlint, *names],
            [
                options.zizmor,
                "--offline",
                "--quiet",
                "--config",
                str(ROOT / ".github" / "zizmor.yml"),
                ".",
            ],
        ):
            code, output = run(argv, where)
            if code != 0:
                print(annotate(output, written).rstrip())
                worst = max(worst, 1 if code != 2 or "zizmor" not in argv[0] else 2)
        return worst


if __name__ == "__main__":
    sys.exit(main())
