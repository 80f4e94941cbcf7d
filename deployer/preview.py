"""What a deploy would change, object by object (pure; for `dry-run: true`).

The pipeline asks the API server for a server-side dry-run apply of every object (admission,
defaulting and validation run; nothing is stored) and reads the live object; this module compares
the two and writes a readable diff. Both sides come from the same server with the same defaults,
so only real changes show. Fields the server owns (status, resourceVersion, managedFields,
generation, uid, timestamps) are left out.

Secret values are never shown, in either direction: a changed key reads "(value changed)".
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_SERVER_OWNED_METADATA = frozenset(
    {
        "managedFields",
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generation",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    }
)
_SERVER_OWNED_ANNOTATIONS = frozenset(
    {
        "deployment.kubernetes.io/revision",
        "kubectl.kubernetes.io/last-applied-configuration",
    }
)
_SECRET_VALUE_FIELDS = frozenset({"data", "stringData"})
_MAX_VALUE = 120
MAX_LINES_PER_OBJECT = 40


@dataclass(frozen=True)
class Change:
    op: str  # "+" added, "-" removed, "~" changed
    path: str
    old: str = ""
    new: str = ""

    def line(self) -> str:
        if self.op == "~":
            return f"  ~ {self.path}: {self.old} → {self.new}"
        if self.op == "+":
            return f"  + {self.path}: {self.new}"
        return f"  - {self.path}: {self.old}"


@dataclass(frozen=True)
class ObjectDiff:
    subject: str  # e.g. deployment/web
    namespace: str
    created: bool
    changes: tuple[Change, ...]

    @property
    def changed(self) -> bool:
        return self.created or bool(self.changes)

    def headline(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        if self.created:
            return f"{self.subject}{where}: would be created"
        if not self.changes:
            return f"{self.subject}{where}: unchanged"
        n = len(self.changes)
        return f"{self.subject}{where}: {n} field{'s' if n != 1 else ''} would change"

    def lines(self, limit: int = MAX_LINES_PER_OBJECT) -> list[str]:
        shown = [c.line() for c in self.changes[:limit]]
        if len(self.changes) > limit:
            shown.append(f"  … and {len(self.changes) - limit} more")
        return [self.headline(), *shown]


def diff(live: Mapping[str, Any] | None, planned: Mapping[str, Any]) -> ObjectDiff:
    """Compare the live object (None: it does not exist) with the dry-run result."""
    kind = str(planned.get("kind") or "")
    metadata = planned.get("metadata") or {}
    subject = f"{kind.lower()}/{metadata.get('name')}"
    namespace = str(metadata.get("namespace") or "")
    secret = kind == "Secret"
    if live is None:
        changes = tuple(_added_paths(_comparable(planned), secret))
        return ObjectDiff(subject, namespace, True, changes)
    changes = tuple(_walk(_comparable(live), _comparable(planned), "", secret))
    return ObjectDiff(subject, namespace, False, changes)


def _comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k not in ("status", "apiVersion", "kind")}
    metadata = dict(out.get("metadata") or {})
    for key in _SERVER_OWNED_METADATA:
        metadata.pop(key, None)
    annotations = {
        k: v
        for k, v in (metadata.get("annotations") or {}).items()
        if k not in _SERVER_OWNED_ANNOTATIONS
    }
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    out["metadata"] = metadata
    return out


def _walk(old: Any, new: Any, path: str, secret: bool) -> Iterator[Change]:
    if secret and _is_secret_values(path):
        yield from _secret_changes(old, new, path)
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                yield Change("-", sub, old=_show(old[key], secret, sub))
            elif key not in old:
                yield Change("+", sub, new=_show(new[key], secret, sub))
            else:
                yield from _walk(old[key], new[key], sub, secret)
        return
    if isinstance(old, list) and isinstance(new, list):
        old_named, new_named = _by_name(old), _by_name(new)
        if old_named is not None and new_named is not None:
            for name in list(dict.fromkeys([*old_named, *new_named])):
                sub = f"{path}[{name}]"
                if name not in new_named:
                    yield Change("-", sub, old=_show(old_named[name], secret, sub))
                elif name not in old_named:
                    yield Change("+", sub, new=_show(new_named[name], secret, sub))
                else:
                    yield from _walk(old_named[name], new_named[name], sub, secret)
            return
        if len(old) == len(new):
            for i, (a, b) in enumerate(zip(old, new, strict=True)):
                yield from _walk(a, b, f"{path}[{i}]", secret)
            return
    if old != new:
        yield Change("~", path, old=_show(old, secret, path), new=_show(new, secret, path))


def _by_name(items: list[Any]) -> dict[str, Any] | None:
    """Lists of named things (containers, env, ports, volumes) compare by name, not position."""
    if not items or not all(
        isinstance(i, Mapping) and isinstance(i.get("name"), str) for i in items
    ):
        return None
    named = {str(i["name"]): i for i in items}
    return named if len(named) == len(items) else None


def _is_secret_values(path: str) -> bool:
    return path in _SECRET_VALUE_FIELDS


def _secret_changes(old: Any, new: Any, path: str) -> Iterator[Change]:
    old_keys = old if isinstance(old, Mapping) else {}
    new_keys = new if isinstance(new, Mapping) else {}
    for key in sorted(set(old_keys) | set(new_keys), key=str):
        sub = f"{path}.{key}"
        if key not in new_keys:
            yield Change("-", sub, old="(hidden)")
        elif key not in old_keys:
            yield Change("+", sub, new="(hidden)")
        elif old_keys[key] != new_keys[key]:
            yield Change("~", sub, old="(hidden)", new="(value changed)")


def _added_paths(obj: Mapping[str, Any], secret: bool) -> Iterator[Change]:
    """A new object: list its top-level spec fields (and Secret keys without values)."""
    if secret:
        for field in sorted(_SECRET_VALUE_FIELDS):
            for key in sorted(obj.get(field) or {}, key=str):
                yield Change("+", f"{field}.{key}", new="(hidden)")
        return
    for field in ("spec", "data", "binaryData"):
        value = obj.get(field)
        if isinstance(value, Mapping):
            for key in sorted(value, key=str):
                yield Change("+", f"{field}.{key}", new=_show(value[key], secret, field))


def _show(value: Any, secret: bool, path: str) -> str:
    if secret and path.split(".", 1)[0].split("[", 1)[0] in _SECRET_VALUE_FIELDS:
        return "(hidden)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"
