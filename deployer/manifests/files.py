"""Manifest files: the `manifests` input found inside the workspace, then read with size limits.

The files are the user's, so they are found as hostile: only inside the workspace (no absolute
paths, `..` or symlinks out), by globs that never follow a symlinked directory and stop after
MAX_GLOB_ENTRIES, at most MAX_FILES of them, each read only up to its limit and as UTF-8.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from pathlib import Path

from deployer.errors import InputError
from deployer.manifests.names import shown

# Limits (docs/security.md, "Limits"). A Kubernetes object is at most ~1.5 MB in etcd; a manifest file ten
# times the size of a large app's whole deploy directory is still far below these.
MAX_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024
MAX_FILES = 200
MAX_GLOB_ENTRIES = 100_000  # directory entries one glob may look at
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def display_path(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return str(path)


def find_files(
    text: str, workspace: Path, problem: Callable[[str, str, str], None]
) -> tuple[Path, ...]:
    """The `manifests` input (files or globs, one per line) as files inside the workspace."""
    root = workspace.resolve()
    paths: list[Path] = []
    for entry in (line.strip() for line in text.splitlines()):
        if not entry or entry.startswith("#"):
            continue
        if os.path.isabs(entry) or entry.startswith("~"):
            problem(
                "manifests",
                f"{shown(entry)} is not relative to the workspace",
                "Give paths relative to the repository root, e.g. deploy/deployment.yaml.",
            )
            continue
        if not glob_magic(entry) and Path(entry).name in KUSTOMIZATION_FILES:
            problem(
                "manifests",
                f"{shown(entry)} is a kustomization, not manifests",
                f"Name its directory ({shown(str(Path(entry).parent))}) to build it with kustomize.",
            )
            continue
        try:
            found = _glob(root, entry) if glob_magic(entry) else _plain(root, entry)
        except _Outside as exc:
            problem(
                "manifests",
                f"{shown(entry)} {exc}",
                "Manifests must be files inside the workspace (no '..', no symlinks out of it).",
            )
            continue
        except _TooMany as exc:
            problem("manifests", f"{shown(entry)} {exc}", "Name the files or a narrower glob.")
            continue
        if not found:
            problem(
                "manifests",
                f"{shown(entry)} matches no file in the workspace",
                "Check the path (relative to the repository root) and that the repository is "
                "checked out; a directory must hold a kustomization.yaml.",
            )
        for f in found:
            if f not in paths:
                paths.append(f)
    if len(paths) > MAX_FILES:
        problem(
            "manifests", f"matches {len(paths)} files, more than {MAX_FILES}", "Name fewer files."
        )
        return ()
    if not paths and not text.strip():
        problem(
            "manifests", "is empty", "List at least one manifest file, e.g. deploy/deployment.yaml."
        )
    return tuple(paths)


class _Outside(Exception):
    pass


class _TooMany(Exception):
    pass


def glob_magic(entry: str) -> bool:
    return any(c in entry for c in "*?[")


def inside_workspace(workspace: Path, path: Path) -> bool:
    """Does `path`, every symlink resolved, stay inside the workspace?"""
    try:
        _inside(workspace.resolve(), path)
    except _Outside:
        return False
    return True


def _inside(root: Path, path: Path) -> Path:
    """`path` with every symlink resolved, if that is inside `root`."""
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        try:
            shown_path = str(path.relative_to(root))
        except ValueError:
            shown_path = str(path)
        raise _Outside(f"({shown(shown_path)}) resolves to a place outside the workspace")
    return resolved


def _plain(root: Path, entry: str) -> list[Path]:
    """A file, or a directory holding a kustomization (built by `kustomize.build`)."""
    from deployer.manifests.kustomize import is_kustomization

    path = root / entry.rstrip("/")
    if path.is_dir():
        resolved = _inside(root, path)
        return [path] if is_kustomization(resolved) else []
    if not path.is_file() and not path.is_symlink():
        return []
    resolved = _inside(root, path)
    return [path] if resolved.is_file() else []


def _glob(root: Path, entry: str) -> list[Path]:
    """A glob evaluated by walking the workspace without following symlinked directories
    (`**` any depth, `*`/`?`/`[..]` within one name; hidden names only when the pattern says so)."""
    parts = [p for p in entry.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _Outside("uses '..'")
    fixed: list[str] = []
    for part in parts:
        if glob_magic(part):
            break
        fixed.append(part)
    base = root.joinpath(*fixed)
    if not base.is_dir() or base.is_symlink():
        return []
    rest = parts[len(fixed) :]
    matches: list[Path] = []
    seen = 0
    for directory, dirnames, filenames in os.walk(base, followlinks=False):
        seen += len(dirnames) + len(filenames)
        if seen > MAX_GLOB_ENTRIES:
            raise _TooMany(f"walks more than {MAX_GLOB_ENTRIES} directory entries")
        dirnames.sort()
        relative = Path(directory).relative_to(base).parts
        for name in sorted(filenames):
            # A kustomization is kustomize's input, never an object: a glob over a kustomize
            # base (deploy/*.yaml) matches the manifests beside it, as before it was one.
            if name in KUSTOMIZATION_FILES:
                continue
            if _match(rest, [*relative, name]):
                path = Path(directory) / name
                if path.is_symlink():
                    _inside(root, path)
                if path.is_file():
                    matches.append(path)
    return matches


def _match(pattern: list[str], names: list[str]) -> bool:
    if not pattern:
        return not names
    head, tail = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(tail, names[i:]) for i in range(len(names) + 1)) and not any(
            n.startswith(".") for n in names[: len(names) - len(tail)]
        )
    if not names:
        return False
    name = names[0]
    if name.startswith(".") and not head.startswith("."):
        return False
    return fnmatch.fnmatchcase(name, head) and _match(tail, names[1:])


def read_sources(paths: tuple[Path, ...], root: Path | None = None) -> dict[Path, str]:
    """The text of each file; for a directory (a kustomization), what kustomize builds from it,
    keyed by the directory (`loading.parse` then finds each object's own file and line)."""
    sources: dict[Path, str] = {}
    total = 0
    for path in paths:
        where = display_path(path, root)
        if path.is_dir():
            from deployer.manifests.kustomize import build

            sources[path] = build(path, root)
            total += len(sources[path].encode())
            if total > MAX_TOTAL_BYTES:
                raise InputError(
                    f"the manifests together are larger than {MAX_TOTAL_BYTES // (1024 * 1024)} MiB",
                    where=where,
                    hint="Deploy fewer objects at once.",
                )
            continue
        try:
            with path.open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise InputError(
                f"cannot read manifest: {exc.strerror or type(exc).__name__}",
                where=where,
                hint="Check the manifests input.",
            ) from exc
        if len(data) > MAX_FILE_BYTES:
            raise InputError(
                f"manifest is larger than {MAX_FILE_BYTES // 1024} KiB",
                where=where,
                hint="Split it, or check that the manifests input names the right file.",
            )
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            raise InputError(
                f"the manifests together are larger than {MAX_TOTAL_BYTES // (1024 * 1024)} MiB",
                where=where,
                hint="Deploy fewer files at once.",
            )
        try:
            sources[path] = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                "is not UTF-8 text",
                file=where,
                line=data[: exc.start].count(b"\n") + 1,
                hint="Save the manifest as UTF-8.",
            ) from exc
    return sources
