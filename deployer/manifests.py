"""Manifests: parse with file:line, render the placeholder, and answer questions about them.

Rendering is a plain text substitution on the file as written, so everything but the placeholder
stays exactly as the user wrote it (comments, quoting, key order). Parsing happens on the rendered
text, and every document remembers the file and line it came from for error messages.

The files are the user's, so they are read as hostile: found only inside the workspace (no
absolute paths, `..` or symlinks out, globs that never follow a link), size- and depth-bounded,
aliases refused (a "billion laughs" needs them), duplicate keys and duplicate objects refused
(YAML and `kubectl apply` silently keep the last one), names checked as Kubernetes names before
any message shows them, and every shape our code reads checked before it reads it. After
rendering, `verify_images` checks the structure, not the text: the placeholder in a comment or a
key does not count, only containers that will run the image being deployed.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployer.errors import InputError

# Limits (README "Limits"). A Kubernetes object is at most ~1.5 MB in etcd; a manifest file ten
# times the size of a large app's whole deploy directory is still far below these.
MAX_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024
MAX_FILES = 200
MAX_DOCUMENTS = 1000
MAX_DEPTH = 64  # nesting of mappings and lists; real manifests stay below 20
MAX_GLOB_ENTRIES = 100_000  # directory entries one glob may look at

_DNS_SUBDOMAIN = re.compile(
    r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
)
_DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
# RBAC objects and custom resources allow more (`system:controller:x`); still no blanks, no breaks.
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9:._@+=-]+$")
_ENV_NAME = re.compile(r"^[!-<>-~]{1,253}$")  # printable ASCII, no blank, no '='
# The characters of a Docker reference ([host[:port]/]path[:tag][@algo:hex]); the server checks form.
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$")
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")
_API_VERSION = re.compile(
    r"^(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$"
)
_STRICT_NAME_KINDS = frozenset(
    {
        "ConfigMap",
        "Secret",
        "Service",
        "ServiceAccount",
        "Namespace",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
        "Pod",
        "Ingress",
        "PersistentVolumeClaim",
        "PersistentVolume",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
    }
)

# Kinds that live outside namespaces (the ones a Django app's manifests plausibly hold).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "RuntimeClass",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "APIService",
        "Node",
        "ClusterIssuer",
    }
)

# Apply order: what others depend on first, workloads after their config, then what routes to them.
_APPLY_ORDER = (
    "Namespace",
    "CustomResourceDefinition",
    "PriorityClass",
    "StorageClass",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ResourceQuota",
    "LimitRange",
    "NetworkPolicy",
    "ConfigMap",
    "Secret",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Service",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Ingress",
)
# Kinds that change no running pod by themselves; everything the workloads may need.
APPLIED_BEFORE_WORKLOADS = frozenset(_APPLY_ORDER[: _APPLY_ORDER.index("Deployment")])
_WORKLOAD_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"}
)


@dataclass(frozen=True)
class Document:
    """One YAML document of a manifest file."""

    path: Path
    line: int  # 1-based line where the document starts
    body: dict[str, Any]
    # id() of each mapping and list in `body` -> its 1-based line, for messages about a part of it.
    lines: Mapping[int, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, part: object) -> int:
        return self.lines.get(id(part), self.line)

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str((self.body.get("metadata") or {}).get("namespace") or "")

    def where(self, root: Path | None = None) -> str:
        return f"{display_path(self.path, root)}:{self.line}"


@dataclass(frozen=True)
class ConfigReference:
    """A pod spec's reference to a ConfigMap or Secret."""

    kind: str  # ConfigMap or Secret
    name: str
    namespace: str
    optional: bool
    used_by: str  # e.g. deployment/web container `app` envFrom
    where: str  # file:line of the workload document


def display_path(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return str(path)


def is_name(value: object) -> bool:
    """A DNS-1123 subdomain: the name of a Deployment, ConfigMap, Secret, …"""
    return isinstance(value, str) and len(value) <= 253 and bool(_DNS_SUBDOMAIN.match(value))


def is_namespace(value: object) -> bool:
    return isinstance(value, str) and bool(_DNS_LABEL.match(value))


def shown(value: object, limit: int = 60) -> str:
    """A value from the user's files, safe to put in a message: quoted, escaped, shortened."""
    text = repr(value) if isinstance(value, str) else repr(str(value))
    return text if len(text) <= limit else text[: limit - 4] + "…" + text[-1]


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
                "Check the path (relative to the repository root) and that the repository is checked out.",
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
    path = root / entry
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
    sources: dict[Path, str] = {}
    total = 0
    for path in paths:
        where = display_path(path, root)
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


def check_placeholder(sources: dict[Path, str], placeholder: str, root: Path | None = None) -> int:
    """How often the placeholder occurs in the text (for the log only: `verify_images` judges)."""
    return sum(text.count(placeholder) for text in sources.values())


def render(sources: dict[Path, str], placeholder: str, image_ref: str) -> dict[Path, str]:
    return {path: text.replace(placeholder, image_ref) for path, text in sources.items()}


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
    for path, text in sources.items():
        where = display_path(path, root)
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
            document = Document(path=path, line=line, body=body, lines=lines)
            _check_object(document, where)
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


def _check_object(document: Document, where: str) -> None:
    """The fields our code reads, checked for type and form before anything reads or shows them."""
    body = document.body

    def refuse(message: str, part: object = None, hint: str = "") -> None:
        raise InputError(
            message,
            file=where,
            line=document.line_of(part) if part is not None else document.line,
            hint=hint,
        )

    missing = [k for k in ("apiVersion", "kind") if body.get(k) in (None, "")]
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        refuse("metadata must be a mapping", hint="Write metadata: {name: ...}.")
    name = (metadata or {}).get("name")
    if name in (None, ""):
        missing.append("metadata.name")
    if missing:
        refuse(
            f"object lacks {', '.join(missing)}",
            hint="Every Kubernetes object needs apiVersion, kind and metadata.name.",
        )
    kind, api_version = body["kind"], body["apiVersion"]
    if not isinstance(kind, str) or not _KIND.match(kind):
        refuse(f"kind {shown(kind)} is not a Kubernetes kind", hint="E.g. kind: Deployment.")
    if not isinstance(api_version, str) or not _API_VERSION.match(api_version):
        refuse(
            f"apiVersion {shown(api_version)} is not an API version",
            hint="E.g. apiVersion: apps/v1.",
        )
    if kind == "List":
        refuse(
            "kind: List is not supported",
            hint="Write the items as separate documents separated by '---'.",
        )
    strict = kind in _STRICT_NAME_KINDS
    if (
        not isinstance(name, str)
        or len(name) > 253
        or not (_DNS_SUBDOMAIN if strict else _PATH_SEGMENT).match(name)
    ):
        refuse(
            f"metadata.name {shown(name)} is not a valid Kubernetes name",
            metadata,
            "Use at most 253 lower-case letters, digits, '-' and '.', starting and ending with a "
            "letter or digit.",
        )
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    if namespace not in (None, "") and (
        not isinstance(namespace, str) or not _DNS_LABEL.match(namespace)
    ):
        refuse(
            f"metadata.namespace {shown(namespace)} is not a valid namespace name",
            metadata,
            "Use at most 63 lower-case letters, digits and '-'.",
        )
    for key in ("labels", "annotations"):
        value = (metadata or {}).get(key)
        if value is not None and not isinstance(value, dict):
            refuse(f"metadata.{key} must be a mapping", metadata)
    _check_pod_shapes(document, refuse)


def _check_pod_shapes(document: Document, refuse: Callable[..., None]) -> None:
    kind = document.kind
    if kind not in _WORKLOAD_KINDS:
        return
    spec = document.body.get("spec")
    path = "spec"
    if spec is not None and not isinstance(spec, dict):
        refuse(f"{path} must be a mapping")
    if kind == "CronJob":
        for step in ("jobTemplate", "spec"):
            spec = (spec or {}).get(step)
            path += f".{step}"
            if spec is not None and not isinstance(spec, dict):
                refuse(f"{path} must be a mapping")
    if kind != "Pod":
        template = (spec or {}).get("template")
        path += ".template"
        if template is not None and not isinstance(template, dict):
            refuse(f"{path} must be a mapping", spec)
        for step in ("metadata", "spec"):
            part = (template or {}).get(step)
            if part is not None and not isinstance(part, dict):
                refuse(f"{path}.{step} must be a mapping", template)
        meta = (template or {}).get("metadata") or {}
        annotations = meta.get("annotations")
        if annotations is not None and not isinstance(annotations, dict):
            refuse(f"{path}.metadata.annotations must be a mapping", meta)
        spec = (template or {}).get("spec")
        path += ".spec"
    if spec is None:
        return
    for key in ("containers", "initContainers", "volumes", "imagePullSecrets"):
        entries = spec.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            refuse(f"{path}.{key} must be a list", spec)
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                refuse(f"{path}.{key}[{i}] must be a mapping", entries)
            if key in ("containers", "initContainers"):
                _check_container(entry, f"{path}.{key}[{i}]", refuse)
            elif key == "volumes":
                if not isinstance(entry.get("name"), str) or not _DNS_LABEL.match(entry["name"]):
                    refuse(
                        f"{path}.{key}[{i}].name {shown(entry.get('name'))} is not a valid volume "
                        "name",
                        entry,
                    )
                for source in ("configMap", "secret"):
                    if entry.get(source) is not None and not isinstance(entry[source], dict):
                        refuse(f"{path}.{key}[{i}].{source} must be a mapping", entry)


def _check_container(container: dict[str, Any], path: str, refuse: Callable[..., None]) -> None:
    name = container.get("name")
    if name is None:
        refuse(f"{path} has no name", container, "Every container needs a name.")
    if not isinstance(name, str) or not _DNS_LABEL.match(name):
        refuse(
            f"{path}.name {shown(name)} is not a valid container name",
            container,
            "Use at most 63 lower-case letters, digits and '-'.",
        )
    image = container.get("image")
    if image is not None and not isinstance(image, str):
        refuse(f"{path}.image must be a string", container)
    for key in ("env", "envFrom"):
        entries = container.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            refuse(f"{path}.{key} must be a list", container)
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                refuse(f"{path}.{key}[{i}] must be a mapping", entries)
            if key == "env" and (
                not isinstance(entry.get("name"), str) or not _ENV_NAME.match(entry["name"])
            ):
                refuse(
                    f"{path}.{key}[{i}].name {shown(entry.get('name'))} is not a valid variable name",
                    entry,
                )
            for ref in ("valueFrom", "configMapRef", "secretRef"):
                value = entry.get(ref)
                if value is not None and not isinstance(value, dict):
                    refuse(f"{path}.{key}[{i}].{ref} must be a mapping", entry)
                for inner in ("configMapKeyRef", "secretKeyRef"):
                    if (
                        isinstance(value, dict)
                        and value.get(inner) is not None
                        and not isinstance(value[inner], dict)
                    ):
                        refuse(f"{path}.{key}[{i}].{ref}.{inner} must be a mapping", value)


def check_unique(documents: list[Document], root: Path | None = None) -> None:
    """Two documents for one object: `kubectl apply` and we would silently keep the later one."""
    seen: dict[tuple[str, str, str, str], Document] = {}
    for d in documents:
        group = d.api_version.rpartition("/")[0]
        key = (group, d.kind, d.namespace, d.name)
        first = seen.setdefault(key, d)
        if first is not d:
            raise InputError(
                f"{d.kind.lower()}/{d.name}"
                + (f" in namespace {d.namespace}" if d.namespace else "")
                + f" is defined twice (first at {first.where(root)}); only one would be applied",
                file=display_path(d.path, root),
                line=d.line,
                hint="Remove or rename one of them.",
            )


@dataclass(frozen=True)
class ImageUse:
    """One container and the image it will run after rendering."""

    document: Document
    label: str
    image: str
    ours: bool

    @property
    def subject(self) -> str:
        return f"{self.document.kind.lower()}/{self.document.name} {self.label}"


def repository_of(image: str) -> str:
    """`reg:5000/team/app:tag@sha256:…` → `reg:5000/team/app`."""
    name = image.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > last_slash else name


def verify_images(
    documents: list[Document],
    image_ref: str,
    repository: str,
    placeholder: str,
    root: Path | None = None,
) -> list[ImageUse]:
    """After rendering: every container runs `image_ref` or an image of another repository that
    the user wrote out; when there are workloads, at least one runs ours. A rendered placeholder
    inside a longer image, or our repository at another tag, is a mistake, not a choice."""
    uses: list[ImageUse] = []
    workloads: list[Document] = []
    for d in documents:
        spec = pod_spec(d)
        if spec is None:
            continue
        workloads.append(d)
        for container, label in _containers(spec):
            image = container.get("image")
            where = {"file": display_path(d.path, root), "line": d.line_of(container)}
            subject = f"{d.kind.lower()}/{d.name} {label}"
            if not image:
                raise InputError(
                    f"{subject} has no image",
                    hint=f"Write `image: {placeholder}` for the image being deployed.",
                    **where,  # type: ignore[arg-type]
                )
            ours = image == image_ref
            if not ours and not _IMAGE.match(image):
                raise InputError(
                    f"{subject} image {shown(image)} is not an image reference",
                    hint="Write registry/repository:tag or @sha256:digest, without blanks.",
                    **where,  # type: ignore[arg-type]
                )
            if not ours and image_ref in image:
                raise InputError(
                    f"{subject} would run {shown(image, 120)}: the placeholder is part of a longer "
                    "image reference",
                    hint=f"Write exactly `image: {placeholder}`.",
                    **where,  # type: ignore[arg-type]
                )
            if not ours and repository_of(image) == repository:
                raise InputError(
                    f"{subject} runs {shown(image, 120)}, the repository being deployed at another "
                    "tag: it would not get the image built now",
                    hint=f"Write `image: {placeholder}` there.",
                    **where,  # type: ignore[arg-type]
                )
            uses.append(ImageUse(d, label, image, ours))
    if workloads and not any(u.ours for u in uses):
        first = workloads[0]
        raise InputError(
            f"no container runs the image being deployed ({image_ref}): the placeholder "
            f"{shown(placeholder)} is in no container's image field",
            file=display_path(first.path, root),
            line=first.line,
            hint=f"Write `image: {placeholder}` for every container to deploy (a placeholder in "
            "a comment, a key or another field does not count), or set the placeholder input.",
        )
    return uses


def assign_namespace(documents: list[Document], namespace: str, root: Path | None = None) -> str:
    """Fill in the namespace of namespaced objects that name none; return the default used.

    Default: the namespace input; else the one namespace the manifests name; else `default`.
    """
    named = {d.namespace for d in documents if d.namespace and d.kind not in CLUSTER_SCOPED_KINDS}
    if namespace:
        for d in documents:
            if d.namespace and d.namespace != namespace and d.kind not in CLUSTER_SCOPED_KINDS:
                raise InputError(
                    f"{d.kind.lower()}/{d.name} names namespace {d.namespace!r} but the namespace input is "
                    f"{namespace!r}",
                    file=display_path(d.path, root),
                    line=d.line,
                    hint="Remove metadata.namespace from the manifest or change the namespace input.",
                )
        default = namespace
    elif len(named) == 1:
        default = next(iter(named))
    else:
        default = "default"
    for d in documents:
        if d.kind not in CLUSTER_SCOPED_KINDS and not d.namespace:
            d.body.setdefault("metadata", {})["namespace"] = default
    check_unique(documents, root)  # `web` and `web` in `default` are one object
    return default


def apply_order(documents: list[Document]) -> list[Document]:
    """Stable sort by kind priority; unknown kinds go after the workloads, in file order."""
    rank = {kind: i for i, kind in enumerate(_APPLY_ORDER)}
    return sorted(documents, key=lambda d: rank.get(d.kind, len(_APPLY_ORDER)))


def deployments(documents: list[Document]) -> list[Document]:
    return [d for d in documents if d.kind == "Deployment"]


def pod_template(document: Document) -> dict[str, Any] | None:
    """The pod template (metadata + spec) of a workload; None for other kinds and bare Pods."""
    spec = document.body.get("spec") or {}
    if document.kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    elif document.kind not in _WORKLOAD_KINDS or document.kind == "Pod":
        return None
    template = spec.get("template") if isinstance(spec, dict) else None
    return template if isinstance(template, dict) else None


def pod_spec(document: Document) -> dict[str, Any] | None:
    if document.kind == "Pod":
        spec = document.body.get("spec")
    else:
        template = pod_template(document)
        spec = template.get("spec") if template else None
    return spec if isinstance(spec, dict) else None


def config_references(documents: list[Document], root: Path | None = None) -> list[ConfigReference]:
    """Every ConfigMap/Secret a workload's pods need: envFrom, env valueFrom, volumes, pull secrets."""
    refs: list[ConfigReference] = []
    for d in documents:
        spec = pod_spec(d)
        if spec is None:
            continue
        # (kind, the reference object, the key holding the name, what uses it)
        found: list[tuple[str, dict[str, Any], str, str]] = []
        for container, label in _containers(spec):
            for source in container.get("envFrom") or []:
                found.append(
                    ("ConfigMap", source.get("configMapRef") or {}, "name", f"{label} envFrom")
                )
                found.append(("Secret", source.get("secretRef") or {}, "name", f"{label} envFrom"))
            for var in container.get("env") or []:
                value_from = var.get("valueFrom") or {}
                used_by = f"{label} env {var.get('name')}"
                found.append(
                    ("ConfigMap", value_from.get("configMapKeyRef") or {}, "name", used_by)
                )
                found.append(("Secret", value_from.get("secretKeyRef") or {}, "name", used_by))
        for volume in spec.get("volumes") or []:
            used_by = f"volume {volume.get('name')}"
            found.append(("ConfigMap", volume.get("configMap") or {}, "name", used_by))
            found.append(("Secret", volume.get("secret") or {}, "secretName", used_by))
            projected = volume.get("projected")
            sources = projected.get("sources") if isinstance(projected, dict) else None
            for source in sources if isinstance(sources, list) else []:
                if isinstance(source, dict):
                    found.append(("ConfigMap", source.get("configMap") or {}, "name", used_by))
                    found.append(("Secret", source.get("secret") or {}, "name", used_by))
        for pull in spec.get("imagePullSecrets") or []:
            # Never optional: the kubelet cannot pull without it.
            found.append(("Secret", {"name": pull.get("name")}, "name", "imagePullSecrets"))
        owner = f"{d.kind.lower()}/{d.name}"
        for kind, ref, key, used_by in found:
            name = ref.get(key)
            if not name:
                continue
            if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name):
                raise InputError(
                    f"{owner} {used_by}: {shown(name)} is not a valid {kind} name",
                    file=display_path(d.path, root),
                    line=d.line_of(ref),
                    hint="Use lower-case letters, digits, '-' and '.'.",
                )
            refs.append(
                ConfigReference(
                    kind,
                    name,
                    d.namespace,
                    bool(ref.get("optional")),
                    f"{owner} {used_by}",
                    d.where(root),
                )
            )
    return refs


def images(documents: list[Document]) -> Iterator[tuple[Document, str, str]]:
    """(document, container label, image) for every container and init container."""
    for d in documents:
        spec = pod_spec(d)
        if spec is None:
            continue
        for container, label in _containers(spec):
            yield d, label, str(container.get("image", ""))


def _containers(spec: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    for c in spec.get("initContainers") or []:
        yield c, f"init container `{c.get('name')}`"
    for c in spec.get("containers") or []:
        yield c, f"container `{c.get('name')}`"


def to_yaml(sources: dict[Path, str]) -> str:
    """Rendered files joined as one multi-document stream (for `render` on stdout)."""
    parts = []
    for text in sources.values():
        body = text if text.endswith("\n") else text + "\n"
        if not body.lstrip().startswith("---"):
            body = "---\n" + body
        parts.append(body)
    return "".join(parts)
