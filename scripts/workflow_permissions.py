#!/usr/bin/env python3
"""Every job of a called workflow asks for no permission its caller does not grant.

    python3 scripts/workflow_permissions.py [WORKFLOW.yml ...]   (default: .github/workflows/*.yml)

GitHub lets a called workflow (`jobs.<id>.uses: ./.github/workflows/x.yml`) only keep or narrow
the GITHUB_TOKEN permissions of the job that calls it; if one of its jobs asks for more, the whole
run is refused before any job starts ("The nested job … is requesting …, but is only allowed …").
actionlint does not check this, and nothing else runs here before GitHub does, so this gate does.

What a job asks for: its own `permissions:`, else its workflow's, else whatever it is given.
What a caller job grants: its own `permissions:`, else its workflow's; neither is a finding, since
the default then depends on a repository setting nobody can read from here. `read-all`,
`write-all`, `{}` and per-scope levels (none < read < write) are understood; a scope left out of
a mapping is `none`. Called workflows that call others are followed, each level narrowing the
grant. Workflows in other repositories (`owner/repo/…@ref`) cannot be read offline and are named
as not checked. Exit 1 with one line per finding, 2 on a file that cannot be read.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

LEVELS = {"none": 0, "read": 1, "write": 2}
# GITHUB_TOKEN scopes (docs: "Permissions for the GITHUB_TOKEN"); read-all/write-all set them all.
SCOPES = (
    "actions",
    "attestations",
    "checks",
    "contents",
    "deployments",
    "discussions",
    "id-token",
    "issues",
    "models",
    "packages",
    "pages",
    "pull-requests",
    "repository-projects",
    "security-events",
    "statuses",
)
LOCAL_CALL = re.compile(r"^\./\.github/workflows/[^/@]+\.ya?ml$")

Permissions = dict[str, int]


class WorkflowError(Exception):
    """A workflow that cannot be read or whose permissions cannot be understood."""


@dataclass(frozen=True)
class Finding:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def parse(value: Any, where: str) -> Permissions:
    """A `permissions:` value as {scope: level}; every known scope present."""
    if value == "read-all":
        return dict.fromkeys(SCOPES, LEVELS["read"])
    if value == "write-all":
        return dict.fromkeys(SCOPES, LEVELS["write"])
    if value is None or value == {}:
        return dict.fromkeys(SCOPES, 0)
    if not isinstance(value, Mapping):
        raise WorkflowError(f"{where}: permissions must be read-all, write-all or a mapping")
    parsed = dict.fromkeys(SCOPES, 0)
    for scope, level in value.items():
        if level not in LEVELS:
            raise WorkflowError(f"{where}: permissions.{scope}: {level!r} is not none/read/write")
        parsed[str(scope)] = LEVELS[level]
    return parsed


def show(permissions: Mapping[str, int]) -> str:
    names = {v: k for k, v in LEVELS.items()}
    granted = [f"{scope}: {names[level]}" for scope, level in sorted(permissions.items()) if level]
    return "{" + ", ".join(granted) + "}"


def excess(asked: Mapping[str, int], granted: Mapping[str, int]) -> Permissions:
    """The scopes `asked` wants above what `granted` allows."""
    return {s: level for s, level in asked.items() if level > granted.get(s, 0)}


def load(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise WorkflowError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        raise WorkflowError(f"{path}: not a workflow (no jobs mapping)")
    return data


def job_line(path: Path, job: str) -> str:
    """`path:line` of a job's key, for annotations; `path` alone if it cannot be found."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return str(path)
    pattern = re.compile(rf"^\s+['\"]?{re.escape(job)}['\"]?:\s*(#.*)?$")
    for number, line in enumerate(lines, 1):
        if pattern.match(line):
            return f"{path}:{number}"
    return str(path)


def repository_root(workflow: Path) -> Path:
    """`./.github/workflows/x.yml` is relative to the repository holding the calling workflow."""
    resolved = workflow.resolve()
    if resolved.parent.name == "workflows" and resolved.parent.parent.name == ".github":
        return resolved.parent.parent.parent
    raise WorkflowError(f"{workflow}: not under .github/workflows/, cannot resolve local calls")


def check_called(
    called: Path,
    granted: Permissions,
    caller: str,
    seen: tuple[Path, ...] = (),
) -> list[Finding]:
    """Each job of `called`, given `granted` by `caller`, must ask for no more."""
    if called.resolve() in seen:
        return [Finding(caller, f"calls {called} again (a cycle)")]
    if not called.is_file():
        return [Finding(caller, f"calls {called}, which does not exist")]
    workflow = load(called)
    has_top = "permissions" in workflow
    top = workflow.get("permissions")
    findings: list[Finding] = []
    if has_top:
        over = excess(parse(top, str(called)), granted)
        if over:
            findings.append(
                Finding(
                    str(called),
                    f"workflow permissions ask for {show(over)}, but {caller} grants only "
                    f"{show(granted)}; GitHub refuses the whole run",
                )
            )
    for name, job in workflow["jobs"].items():
        if not isinstance(job, dict):
            continue
        where = job_line(called, str(name))
        if "permissions" in job:
            asked = parse(job["permissions"], where)
        elif has_top:
            asked = parse(top, str(called))
        else:
            asked = dict(granted)
        over = excess(asked, granted)
        if over:
            findings.append(
                Finding(
                    where,
                    f"job '{name}' asks for {show(over)}, but {caller} grants only "
                    f"{show(granted)}; GitHub refuses the whole run",
                )
            )
        uses = job.get("uses")
        if isinstance(uses, str):
            # A nested call: this job grants at most what it was granted and what it asks for.
            narrowed = {s: min(asked.get(s, 0), granted.get(s, 0)) for s in SCOPES}
            findings += follow(
                uses, called, narrowed, f"{where} (job '{name}')", (*seen, called.resolve())
            )
    return findings


def follow(
    uses: str, workflow: Path, granted: Permissions, caller: str, seen: tuple[Path, ...]
) -> list[Finding]:
    if LOCAL_CALL.match(uses):
        called = repository_root(workflow) / uses
        with contextlib.suppress(ValueError):  # shown relative to where the check runs
            called = called.relative_to(Path.cwd())
        return check_called(called, granted, caller, seen)
    if uses.startswith("./"):
        return [Finding(caller, f"uses {uses!r}: not a workflow under ./.github/workflows/")]
    print(f"{caller}: {uses} is in another repository; its permissions are not checked")
    return []


def check_workflow(path: Path) -> list[Finding]:
    """Every job of `path` that calls a workflow, against what that workflow's jobs ask for."""
    workflow = load(path)
    findings: list[Finding] = []
    for name, job in workflow["jobs"].items():
        if not isinstance(job, dict) or not isinstance(job.get("uses"), str):
            continue
        where = job_line(path, str(name))
        if "permissions" in job:
            granted = parse(job["permissions"], where)
        elif "permissions" in workflow:
            granted = parse(workflow["permissions"], str(path))
        else:
            findings.append(
                Finding(
                    where,
                    f"job '{name}' calls {job['uses']} without `permissions:` (nor any on the "
                    "workflow): it then grants the repository's default, which this check cannot "
                    "know; grant what the called jobs need",
                )
            )
            continue
        findings += follow(job["uses"], path, granted, f"{where} (job '{name}')", ())
    return findings


def check(paths: Iterable[Path]) -> list[Finding]:
    findings: list[Finding] = []
    for path in paths:
        findings += check_workflow(path)
    return findings


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv[1:]] or sorted(Path(".github/workflows").glob("*.y*ml"))
    try:
        findings = check(paths)
    except WorkflowError as exc:
        print(f"workflow-permissions: {exc}", file=sys.stderr)
        return 2
    for finding in findings:
        print(finding)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
