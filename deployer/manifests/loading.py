"""Loading: untrusted YAML into Documents that remember file:line.

A SafeLoader without aliases (a "billion laughs" needs them) or merge keys, nested at most
MAX_DEPTH deep, at most MAX_DOCUMENTS documents, duplicate keys refused (YAML would keep the last
one); it records the line of every mapping and list, so a message about a part names its line.
Each document is then shape-checked (`shapes`) before anything reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from deployer.errors import InputError
from deployer.manifests.documents import Document
from deployer.manifests.files import display_path
from deployer.manifests.names import shown
from deployer.manifests.origins import relocate
from deployer.manifests.shapes import check_object, check_unique

MAX_DOCUMENTS = 1000
MAX_DEPTH = 64  # nesting of mappings and lists; real manifests stay below 20


class _Refused(yaml.YAMLError):
    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _Loader(yaml.SafeLoader):
    """SafeLoader without aliases, with a depth limit and duplicate keys refused; records the line
    of every mapping and list it builds."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.lines: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _Refused(
                "YAML aliases (*name) are not accepted; write the value out", event.start_mark
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused("merge keys (<<) are not accepted", key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise _Refused("a mapping key must be a plain value", key_node.start_mark) from None
            if key in seen:
                raise _Refused(
                    f"duplicate key {shown(key)} (first at line {seen[key]}); YAML would keep only "
                    "the last one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        mapping = super().construct_mapping(node, deep=deep)
        self.lines[id(mapping)] = node.start_mark.line + 1
        return mapping

    def construct_sequence(self, node: Any, deep: bool = False) -> list[Any]:
        sequence = super().construct_sequence(node, deep=deep)
        self.lines[id(sequence)] = node.start_mark.line + 1
        return sequence


def _deep_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    return loader.construct_mapping(node, deep=True)


def _deep_sequence(loader: _Loader, node: yaml.SequenceNode) -> list[Any]:
    return loader.construct_sequence(node, deep=True)


# Build mappings and lists whole (deep), so `lines` holds the very objects the document keeps.
_Loader.add_constructor("tag:yaml.org,2002:map", _deep_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _deep_sequence)


def load_yaml(text: str) -> list[tuple[int, Any, Mapping[int, int]]]:
    """(line, value, lines) for each document of untrusted YAML, by the rules above."""
    loader = _Loader(text)
    documents: list[tuple[int, Any, Mapping[int, int]]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            loader.lines = {}
            value = loader.construct_document(node)
            documents.append((node.start_mark.line + 1, value, loader.lines))
            if len(documents) > MAX_DOCUMENTS:
                raise _Refused(f"more than {MAX_DOCUMENTS} documents", node.start_mark)
    finally:
        loader.dispose()
    return documents


def parse(sources: dict[Path, str], root: Path | None = None) -> list[Document]:
    """Parse every document; errors name file:line. Empty documents are skipped."""
    documents: list[Document] = []
    origins: dict[Path, Any] = {}  # source files of kustomize builds, loaded once
    for path, text in sources.items():
        where = display_path(path, root)
        built = path.is_dir()  # a kustomization: `text` is what kustomize printed
        try:
            loaded = load_yaml(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = mark.line + 1 if mark is not None else None
            position = getattr(exc, "position", None)  # a ReaderError (e.g. a NUL) has only this
            if line is None and isinstance(position, int):
                line = text[:position].count("\n") + 1
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise InputError(
                f"invalid YAML: {problem}",
                file=where,
                line=line,
                hint="Fix the YAML (indentation, quoting, tabs)."
                if not isinstance(exc, _Refused)
                else "",
            ) from exc
        except RecursionError as exc:  # a parser stack we did not reach with MAX_DEPTH
            raise InputError(
                "invalid YAML: nested too deeply", file=where, hint="Flatten the document."
            ) from exc
        for line, body, lines in loaded:
            if body is None:
                continue
            if not isinstance(body, dict):
                raise InputError(
                    "a manifest document must be a mapping (a Kubernetes object)",
                    file=where,
                    line=line,
                    hint="Check for a stray list or scalar.",
                )
            if built:
                # Named by the file and line it came from; the origin annotation is dropped.
                source, at, parts = relocate(body, path, root, origins)
                document = Document(path=source, line=at, body=body, lines=parts)
                check_object(document, display_path(source, root))
            else:
                document = Document(path=path, line=line, body=body, lines=lines)
                check_object(document, where)
            documents.append(document)
            if len(documents) > MAX_DOCUMENTS:
                raise InputError(
                    f"the manifests hold more than {MAX_DOCUMENTS} objects",
                    file=where,
                    line=line,
                    hint="Deploy fewer objects at once.",
                )
    if not documents:
        raise InputError(
            "the manifests hold no Kubernetes objects",
            where="manifests",
            hint="Check the manifests input.",
        )
    check_unique(documents, root)
    return documents
