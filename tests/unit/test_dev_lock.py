"""requirements-dev.txt locks every development tool, with hashes, at versions pyproject allows.

scripts/bootstrap installs only from the lock (`--require-hashes --no-deps`), so a tool the lock
misses would make bootstrap fail, and a pin outside the group's range means the lock is stale.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for each `name==version` entry of a hashed lock."""
    found: dict[str, tuple[str, int]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", path.read_text()):
        match = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)", entry)
        if match:
            found[canonicalize_name(match[1])] = (match[2], entry.count("--hash=sha256:"))
    return found


def group(name: str, groups: dict[str, list[object]]) -> list[Requirement]:
    out: list[Requirement] = []
    for item in groups[name]:
        if isinstance(item, dict):
            out += group(item["include-group"], groups)
        else:
            out.append(Requirement(str(item)))
    return out


def test_every_dev_tool_and_runtime_dependency_is_pinned_with_hashes_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = group("dev", project["dependency-groups"]) + [
        Requirement(r) for r in project["project"]["dependencies"]
    ]
    locked = pins(ROOT / "requirements-dev.txt")

    for req in wanted:
        version, hashes = locked[canonicalize_name(req.name)]
        assert req.specifier.contains(version, prereleases=True), f"{req.name}=={version}"
        assert hashes >= 1, req.name
    assert all(hashes >= 1 for _, hashes in locked.values())


def test_the_dev_lock_agrees_with_the_runtime_lock() -> None:
    runtime = pins(ROOT / "requirements.lock")
    dev = pins(ROOT / "requirements-dev.txt")
    differ = {n: (v, dev[n][0]) for n, (v, _) in runtime.items() if n in dev and dev[n][0] != v}
    assert differ == {}


def test_bootstrap_installs_from_the_lock_only() -> None:
    script = (ROOT / "scripts/bootstrap").read_text()
    assert "--require-hashes --no-deps -r requirements-dev.txt" in script
    assert "--group" not in script
