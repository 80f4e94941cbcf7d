"""Origins: each object kustomize built named by the file and line it came from.

kustomize writes `config.kubernetes.io/origin` on every object when asked (`kustomize.build`
asks): `path` for an object read from a file, `configuredIn` for one a generator made, both
relative to the private overlay `build` wrote. `relocate` strips the annotation (it is never
applied), finds the object in its source file by loading that file with our loader, and gives
the parts of the built object the lines of the same parts there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from deployer.errors import InputError
from deployer.manifests.kustomize import (
    ORIGIN_ANNOTATION,
    kustomization_file,
    private_parent,
    read_text,
)


def relocate(
    body: dict[str, Any], built_from: Path, root: Path | None, sources: dict[Path, Any]
) -> tuple[Path, int, Mapping[int, int]]:
    """The source file and line of one object kustomize printed (from its origin annotation,
    which is stripped), and the lines of its parts found in that file's object where they are
    the same path. `sources` caches each source file's loaded documents."""
    workspace = (root or Path.cwd()).resolve()
    metadata = body.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    origin_text = (
        annotations.pop(ORIGIN_ANNOTATION, None) if isinstance(annotations, dict) else None
    )
    if isinstance(annotations, dict) and not annotations and isinstance(metadata, dict):
        del metadata["annotations"]
    kustomization = kustomization_file(built_from) or built_from
    fallback: tuple[Path, int, Mapping[int, int]] = (kustomization, 1, {})
    if not isinstance(origin_text, str):
        return fallback
    try:
        origin = yaml.safe_load(origin_text)
    except yaml.YAMLError:
        return fallback
    if not isinstance(origin, dict):
        return fallback
    # An object read from a file names that file (`path`); one a generator made names the
    # kustomization that configured it (`configuredIn`).
    generated = isinstance(origin.get("configuredIn"), str)
    raw = origin["configuredIn"] if generated else origin.get("path")
    if not isinstance(raw, str):
        return fallback
    source = _resolve_origin(raw)
    if not source.is_file():
        return fallback
    resolved = source.resolve()
    if resolved != workspace and workspace not in resolved.parents:
        return fallback
    # Named under the workspace as given (kustomize printed the real path), so messages show
    # it relative to the repository.
    source = (root or Path.cwd()) / resolved.relative_to(workspace)
    if generated:
        return source, _generator_line(source, body, sources), {}
    loaded = _loaded(source, sources)
    match = _same_object(body, loaded)
    if match is None:
        return source, 1, {}
    line, source_body, lines = match
    mapped: dict[int, int] = {}
    _map_lines(body, source_body, lines, mapped)
    return source, line, mapped


def _resolve_origin(raw: str) -> Path:
    """An origin path as kustomize wrote it: relative to our private overlay,
    <tempdir>/djk-kustomize-<random>/overlay, gone by now. The user's directory is outside that
    temporary directory, so the path climbs out of both levels and the random name never counts."""
    return Path(os.path.normpath(private_parent() / "_" / "overlay" / raw))


def _loaded(path: Path, sources: dict[Path, Any]) -> list[tuple[int, Any, Mapping[int, int]]]:
    from deployer.manifests.loading import load_yaml

    if path not in sources:
        try:
            sources[path] = load_yaml(read_text(path, str(path)))
        except (InputError, yaml.YAMLError, RecursionError):
            sources[path] = []
    loaded: list[tuple[int, Any, Mapping[int, int]]] = sources[path]
    return loaded


def _same_object(
    body: dict[str, Any], loaded: list[tuple[int, Any, Mapping[int, int]]]
) -> tuple[int, dict[str, Any], Mapping[int, int]] | None:
    """The document of a source file that is this object: same kind and original name (kustomize
    may have added a prefix or suffix: the longest name of that kind it contains); else the only
    one of that kind."""
    kind = body.get("kind")
    name = (body.get("metadata") or {}).get("name")
    same_kind = [
        (line, value, lines)
        for line, value, lines in loaded
        if isinstance(value, dict) and value.get("kind") == kind
    ]

    def source_name(entry: tuple[int, Any, Mapping[int, int]]) -> str:
        value = (entry[1].get("metadata") or {}).get("name")
        return value if isinstance(value, str) else ""

    if isinstance(name, str):
        named = [e for e in same_kind if source_name(e) and source_name(e) in name]
        if named:
            return max(named, key=lambda e: (source_name(e) == name, len(source_name(e))))
    return same_kind[0] if len(same_kind) == 1 else None


def _map_lines(
    built: object, source: object, lines: Mapping[int, int], out: dict[int, int]
) -> None:
    """Give each part of the built object the line of the same part of the source object:
    mapping keys alike, list items by `name` where they have one, else by position."""
    if isinstance(built, dict) and isinstance(source, dict):
        if id(source) in lines:
            out[id(built)] = lines[id(source)]
        for key, value in built.items():
            if key in source:
                _map_lines(value, source[key], lines, out)
    elif isinstance(built, list) and isinstance(source, list):
        if id(source) in lines:
            out[id(built)] = lines[id(source)]
        named = {
            item.get("name"): item
            for item in source
            if isinstance(item, dict) and isinstance(item.get("name"), str)
        }
        for index, item in enumerate(built):
            if isinstance(item, dict) and isinstance(item.get("name"), str) and named:
                if item["name"] in named:
                    _map_lines(item, named[item["name"]], lines, out)
            elif index < len(source):
                _map_lines(item, source[index], lines, out)


def _generator_line(kustomization: Path, body: dict[str, Any], sources: dict[Path, Any]) -> int:
    """The line of the generator entry that made a ConfigMap or Secret (its name, kustomize adds
    a hash suffix), else the kustomization's first line."""
    name = (body.get("metadata") or {}).get("name")
    key = {"ConfigMap": "configMapGenerator", "Secret": "secretGenerator"}.get(
        str(body.get("kind"))
    )
    for line, value, lines in _loaded(kustomization, sources):
        if not isinstance(value, dict) or key is None:
            return 1
        entries = value.get(key)
        if not isinstance(entries, list):
            return line
        for entry in entries:
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("name"), str)
                and isinstance(name, str)
                and name.startswith(entry["name"])
            ):
                return lines.get(id(entry), line)
        return lines.get(id(entries), line)
    return 1
