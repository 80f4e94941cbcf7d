"""Kustomize: a `manifests` entry that is a directory holding a kustomization, built by the
`kustomize` binary into the objects to apply, each still knowing the file:line it came from.

The kustomization tree is the user's, so it is read as hostile before kustomize runs: every
kustomization reachable from the directory is loaded by our YAML rules, its fields must be
kustomize's own (an unknown one is named at its line), and every path it names must resolve,
every symlink followed, to a place inside the workspace, exist, and be local (a URL or a git
reference is refused: the build never reaches the network). Helm charts are refused (they need
helm and a download). Only then does kustomize run, with `--load-restrictor
LoadRestrictionsRootOnly`, no network (proxies pointed at a closed loopback port), an environment
of its own, a time limit and a limit on what it may print.

It builds a private overlay that names the user's directory and asks for
`buildMetadata: [originAnnotations]`, so the user's files are never written. Each object then
carries `config.kubernetes.io/origin` (the file it was read from, or the kustomization whose
generator made it); `origins.relocate` turns that into the source file and the line of the object in it
(found by loading that file with our loader) and strips the annotation before anything else
reads the object, so it is never applied. The placeholder is rendered after the build, on
kustomize's output (see `rendering.prepare`): `<IMAGE>` written in a base reaches every overlay.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from deployer.errors import InputError
from deployer.manifests.files import (
    KUSTOMIZATION_FILES,
    MAX_FILE_BYTES,
    MAX_TOTAL_BYTES,
    display_path,
)
from deployer.manifests.names import shown

# Pinned: scripts/build-binaries builds this version, the Dockerfile copies it from
# registry.k8s.io/kustomize/kustomize at this tag, docs/behaviour.md names it (a unit test checks all).
KUSTOMIZE_VERSION = "v5.8.2"
ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
BUILD_TIMEOUT_S = 60
MAX_OUTPUT_BYTES = MAX_TOTAL_BYTES  # what the build may print, as for plain files together
MAX_KUSTOMIZATIONS = 100  # kustomizations one build may reach
# Where scripts/build-binaries leaves it, when it is not on PATH (a laptop with the stack).
CACHE_BIN = Path.home() / ".cache" / "django-k8s-deploy" / "bin"

# The fields of kustomize's Kustomization (and Component) type, v5.8.
KNOWN_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "metadata",
        "openapi",
        "namePrefix",
        "nameSuffix",
        "namespace",
        "commonLabels",
        "labels",
        "commonAnnotations",
        "patchesStrategicMerge",
        "patchesJson6902",
        "patches",
        "images",
        "imageTags",
        "replacements",
        "replicas",
        "vars",
        "sortOptions",
        "resources",
        "components",
        "crds",
        "bases",
        "configMapGenerator",
        "secretGenerator",
        "helmGlobals",
        "helmCharts",
        "helmChartInflationGenerator",
        "generatorOptions",
        "configurations",
        "generators",
        "transformers",
        "validators",
        "buildMetadata",
    }
)
# Fields naming other kustomizations (directories) or files; generators/transformers/validators
# may also hold inline YAML (a string with a line break), which names no path.
_TREE_FIELDS = ("resources", "bases", "components", "generators", "transformers", "validators")
_FILE_FIELDS = ("crds", "configurations", "patchesStrategicMerge")
_REFUSED_FIELDS = ("helmCharts", "helmGlobals", "helmChartInflationGenerator")
_OVERLAY_LAYERS = re.compile(
    r"^accumulating resources: accumulation err='accumulating resources from '[^']*': "
    r"'[^']*' must resolve to a file': "
    r"(?:recursed accumulation of path '[^']*': |couldn't make target for path '[^']*': )?"
)
_REMOTE_PREFIXES = ("http://", "https://", "git@", "git::", "ssh://", "github.com/", "gitlab.com/")


def kustomization_file(directory: Path) -> Path | None:
    """The kustomization file of a directory, if it has one."""
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def is_kustomization(path: Path) -> bool:
    return path.is_dir() and kustomization_file(path) is not None


# -- the tree, read as hostile before kustomize sees it -----------------------------------------


class _Tree:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.seen: set[Path] = set()

    def where(self, path: Path) -> str:
        return display_path(Path(os.path.normpath(path)), self.root)

    def check(self, directory: Path) -> None:
        pending = [directory]
        while pending:
            current = pending.pop()
            resolved = current.resolve()  # checked by `_local` (or find_files) already
            if resolved in self.seen:
                continue
            self.seen.add(resolved)
            if len(self.seen) > MAX_KUSTOMIZATIONS:
                raise InputError(
                    f"reaches more than {MAX_KUSTOMIZATIONS} kustomizations",
                    file=self.where(directory),
                    hint="Check for a loop of bases.",
                )
            pending.extend(self._kustomization(current))

    def _kustomization(self, directory: Path) -> list[Path]:
        """Check one kustomization; return the directories it names (to check next)."""
        from deployer.manifests.loading import load_yaml

        file = kustomization_file(directory)
        if file is None:
            raise InputError(
                "is a directory without a kustomization.yaml",
                file=self.where(directory),
                hint="Name manifest files, or a directory holding a kustomization.yaml.",
            )
        where = self.where(file)
        self._inside(file, where)
        text = read_text(file, where)
        try:
            loaded = load_yaml(text)
        except (yaml.YAMLError, RecursionError) as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise InputError(
                f"invalid YAML: {problem}",
                file=where,
                line=mark.line + 1 if mark is not None else None,
                hint="Fix the kustomization.",
            ) from exc
        bodies = [(line, body, lines) for line, body, lines in loaded if body is not None]
        if len(bodies) != 1 or not isinstance(bodies[0][1], dict):
            raise InputError(
                "a kustomization must be one YAML mapping",
                file=where,
                line=bodies[1][0] if len(bodies) > 1 else 1,
                hint="Write one Kustomization document.",
            )
        line, body, lines = bodies[0]
        at = _Lines(where, body, lines, line, text)
        for key in body:
            if key not in KNOWN_FIELDS:
                raise InputError(
                    f"unknown field {shown(key)} in the kustomization",
                    file=where,
                    line=at.key(key),
                    hint="Check the spelling against kustomize's Kustomization fields.",
                )
        for key in _REFUSED_FIELDS:
            if key in body:
                raise InputError(
                    f"{key} is not supported: a Helm chart needs helm and a download",
                    file=where,
                    line=at.key(key),
                    hint="Render the chart into the repository, or apply it with helm and "
                    "watch it with apply: false.",
                )
        directories: list[Path] = []
        for key, entry, entry_line in _paths(body, at):
            if "\n" in entry or (key == "patchesStrategicMerge" and ":" in entry):
                continue  # inline YAML, not a path
            target = self._local(directory, entry, where, entry_line)
            if target.is_dir():
                if key in _TREE_FIELDS and kustomization_file(target) is None:
                    raise InputError(
                        f"{key} names {shown(entry)}, a directory without a kustomization.yaml",
                        file=where,
                        line=entry_line,
                        hint="Add one there, or name the files it should hold.",
                    )
                if key not in _TREE_FIELDS:
                    raise InputError(
                        f"{key} names {shown(entry)}, a directory",
                        file=where,
                        line=entry_line,
                        hint="Name a file there.",
                    )
                directories.append(target)
        return directories

    def _local(self, directory: Path, entry: str, where: str, line: int) -> Path:
        if entry.startswith(_REMOTE_PREFIXES) or "://" in entry or "?ref=" in entry:
            raise InputError(
                f"{shown(entry)} is remote: the deploy builds only what the repository holds",
                file=where,
                line=line,
                hint="Vendor the remote base into the repository and name it by a relative path.",
            )
        if os.path.isabs(entry):
            raise InputError(
                f"{shown(entry)} is an absolute path",
                file=where,
                line=line,
                hint="Name it relative to the kustomization.",
            )
        target = directory / entry
        self._inside(target, where, entry=entry, line=line)
        if not target.exists():
            raise InputError(
                f"{shown(entry)} does not exist",
                file=where,
                line=line,
                hint="Check the path (relative to the kustomization's directory).",
            )
        return target

    def _inside(
        self, target: Path, where: str, *, entry: str | None = None, line: int | None = None
    ) -> None:
        try:
            resolved = target.resolve()
        except (RuntimeError, OSError) as exc:  # a symlink loop
            raise InputError(
                f"{shown(entry or self.where(target))} cannot be resolved (a symlink loop?)",
                file=where,
                line=line,
                hint="Name a real file or directory.",
            ) from exc
        if resolved != self.root and self.root not in resolved.parents:
            raise InputError(
                f"{shown(entry or self.where(target))} resolves to a place outside the workspace",
                file=where,
                line=line,
                hint="A kustomization may name only files and directories inside the "
                "repository (no '..' above it, no symlinks out of it).",
            )


class _Lines:
    """A kustomization file and the lines our loader recorded for its parts."""

    def __init__(
        self, where: str, body: dict[str, Any], lines: Mapping[int, int], line: int, text: str
    ) -> None:
        self.where, self.body, self.lines, self.line = where, body, lines, line
        self.text = text.splitlines()

    def of(self, part: object) -> int:
        return self.lines.get(id(part), self.line)

    def key(self, key: str) -> int:
        """The line of a top-level key (the loader records values' lines, not keys')."""
        for number, text in enumerate(self.text, 1):
            if text.startswith((f"{key}:", f'"{key}":', f"'{key}':")):
                return number
        value = self.body.get(key)
        return self.of(value) if isinstance(value, (dict, list)) else self.line

    def entry(self, key: str, entry: str) -> int:
        """The line of a list entry (a path), searched from its list's first line."""
        value = self.body.get(key)
        start = self.of(value) if isinstance(value, list) else self.key(key)
        for number in range(start, len(self.text) + 1):
            if entry in self.text[number - 1]:
                return number
        return start


def _paths(body: dict[str, Any], at: _Lines) -> Iterator[tuple[str, str, int]]:
    """(field, path, line) for every local path a kustomization names."""
    for key in (*_TREE_FIELDS, *_FILE_FIELDS):
        for entry in _strings(body.get(key), key, at):
            yield key, entry, at.entry(key, entry)
    for key in ("patches", "patchesJson6902", "replacements"):
        for item in _list(body.get(key), key, at):
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                yield key, item["path"], at.of(item)
    for key in ("configMapGenerator", "secretGenerator"):
        for item in _list(body.get(key), key, at):
            if not isinstance(item, dict):
                continue
            for file in _strings(item.get("files"), f"{key} files", at):
                yield key, file.split("=", 1)[1] if "=" in file else file, at.of(item)
            for env in _strings(item.get("envs"), f"{key} envs", at):
                yield key, env, at.of(item)
            if isinstance(item.get("env"), str):
                yield key, item["env"], at.of(item)
    openapi = body.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield "openapi", openapi["path"], at.of(openapi)


def _list(value: object, key: str, at: _Lines) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(
            f"{key} must be a list", file=at.where, line=at.line, hint="Write it as a YAML list."
        )
    return value


def _strings(value: object, key: str, at: _Lines) -> list[str]:
    items = _list(value, key, at)
    for item in items:
        if not isinstance(item, str):
            raise InputError(
                f"{key} must list paths (strings), not {shown(item)}",
                file=at.where,
                line=at.of(items),
                hint="Write one path per list item.",
            )
    return items


def read_text(path: Path, where: str) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or type(exc).__name__}", file=where) from exc
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"is larger than {MAX_FILE_BYTES // 1024} KiB", file=where)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("is not UTF-8 text", file=where) from exc


# -- the build ------------------------------------------------------------------------------------


def find_binary() -> Path:
    """kustomize on PATH (the action image has it in /usr/local/bin), else the one
    scripts/build-binaries left in the stack's cache."""
    on_path = shutil.which("kustomize")
    if on_path:
        return Path(on_path)
    for candidate in sorted(CACHE_BIN.glob(f"kustomize-{KUSTOMIZE_VERSION}-*/kustomize")):
        if os.access(candidate, os.X_OK):
            return candidate
    raise InputError(
        "manifests names a kustomization but no kustomize binary was found (not on PATH, not in "
        f"{CACHE_BIN})",
        where="manifests",
        hint=f"Install kustomize {KUSTOMIZE_VERSION}, or run `scripts/build-binaries kustomize`.",
    )


def build(directory: Path, root: Path | None) -> str:
    """The objects of the kustomization in `directory`, as kustomize prints them, each with its
    origin annotation (stripped by `relocate`)."""
    workspace = (root or Path.cwd()).resolve()
    tree = _Tree(workspace)
    tree._inside(directory, "manifests")
    tree.check(directory)
    binary = find_binary()
    file = kustomization_file(directory)
    where = display_path(file or directory, workspace)
    with tempfile.TemporaryDirectory(prefix="djk-kustomize-", dir=private_parent()) as private:
        overlay = Path(private) / "overlay"
        home = Path(private) / "home"
        overlay.mkdir(mode=0o700)
        home.mkdir(mode=0o700)
        (overlay / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\n"
            "kind: Kustomization\n"
            # kustomize refuses an absolute path as a base: name it relative to the overlay.
            f"resources:\n- {_quoted(os.path.relpath(directory.resolve(), overlay))}\n"
            "buildMetadata:\n- originAnnotations\n"
        )
        closed = "http://127.0.0.1:9"  # the discard port: nothing listens, nothing leaves
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home),
            "HTTP_PROXY": closed,
            "HTTPS_PROXY": closed,
            "http_proxy": closed,
            "https_proxy": closed,
            "NO_PROXY": "",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": "file",
        }
        command = [
            str(binary),
            "build",
            "--load-restrictor",
            "LoadRestrictionsRootOnly",
            str(overlay),
        ]
        code, out, err = _run(command, env, cwd=overlay)
        if code != 0:
            raise InputError(
                f"kustomize could not build it: {_first_error(err, workspace, overlay)}",
                file=where,
                hint="Run `kustomize build` on that directory to see the whole message.",
            )
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("kustomize printed text that is not UTF-8", file=where) from exc


def private_parent() -> Path:
    """Where the private overlay's directory is made: the temporary directory, every symlink
    resolved, as kustomize sees it (origins are relative to the overlay's real path)."""
    return Path(tempfile.gettempdir()).resolve()


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _run(command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, bytes, bytes]:
    """Run with a time limit and a limit on what it prints; the process group is killed on
    either."""
    where = "manifests"
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        deadline = time.monotonic() + BUILD_TIMEOUT_S
        problem = ""
        while process.poll() is None:
            if time.monotonic() > deadline:
                problem = f"kustomize took longer than {BUILD_TIMEOUT_S} s"
            elif os.fstat(out.fileno()).st_size > MAX_OUTPUT_BYTES:
                problem = f"kustomize printed more than {MAX_OUTPUT_BYTES // (1024 * 1024)} MiB"
            if problem:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise InputError(problem, where=where, hint="Check the kustomization.")
            time.sleep(0.02)
        if os.fstat(out.fileno()).st_size > MAX_OUTPUT_BYTES:
            raise InputError(
                f"kustomize printed more than {MAX_OUTPUT_BYTES // (1024 * 1024)} MiB",
                where=where,
                hint="Deploy fewer objects at once.",
            )
        out.seek(0)
        err.seek(0)
        return process.returncode, out.read(), err.read(64 * 1024)


def _first_error(err: bytes, workspace: Path, overlay: Path) -> str:
    """kustomize's error as one short line, paths shown relative to the workspace."""
    text = err.decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    message = next((line for line in lines if line.startswith("Error:")), lines[0] if lines else "")
    message = message.removeprefix("Error:").strip() or "it failed without a message"
    # Our private overlay's own layer of the chain ("accumulating resources from '<the user's
    # directory>': … must resolve to a file': couldn't make target for path …: ") says nothing
    # the file name does not: the cause follows it.
    message = _OVERLAY_LAYERS.sub("", message)
    for path, shown_as in ((str(overlay), "<overlay>"), (str(workspace) + "/", "")):
        message = message.replace(path, shown_as)
    # kustomize nests its causes ("accumulating resources: accumulation err='…': …"): the last
    # cause is the one that names the problem.
    if len(message) > 300:
        message = "…" + message[-300:]
    return "".join(c if c.isprintable() else " " for c in message)
