"""What a deploy would change, object by object (pure; for `dry-run: true`).

The pipeline asks the API server for a server-side dry-run apply of every object (admission,
defaulting and validation run; nothing is stored) and reads the live object; this module compares
the two and writes a readable diff. Both sides come from the same server with the same defaults,
so only real changes show. Fields the server owns (status, resourceVersion, managedFields,
generation, uid, timestamps) are left out.

Secret values are never shown, in either direction: a changed key reads "(value changed)".

What a reviewer reads first: one line per workload saying whether its pods will roll and why
(image, config, spec), from the pod templates live and planned. In the fields, our own stamps
(config checksums, change cause) are one short line each, never a hash; a new object lists the
fields that were sent (the server's defaults, e.g. a Job's completionMode or its random
controller-uid selector, are noise there), and container images, commands and args in full.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from deployer.plan import SECRET_CHECKSUM_ANNOTATION
from deployer.stamps import CHANGE_CAUSE_ANNOTATION, CONFIG_CHECKSUM_ANNOTATION

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
_SHORT_MAPPING = 80  # a new object's mapping shown on one line when its JSON is this short
MAX_LINES_PER_OBJECT = 40
# Our own stamps (stamps.py, plan.py): what each is, shown instead of its value.
_CHECKSUMS = {
    CONFIG_CHECKSUM_ANNOTATION: "config checksum (the manifests' ConfigMaps/Secrets it uses)",
    SECRET_CHECKSUM_ANNOTATION: "secrets checksum (the Secret from the secrets input)",
}
_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})


@dataclass(frozen=True)
class Change:
    op: str  # "+" added, "-" removed, "~" changed
    path: str
    old: str = ""
    new: str = ""
    full: bool = field(default=False, compare=False)  # an image, command or args: never cut

    def line(self) -> str:
        stamp = self.path.rpartition(".annotations.")[2] if ".annotations." in self.path else ""
        if stamp in _CHECKSUMS:
            verb = {"~": "changed", "+": "added", "-": "removed"}[self.op]
            return f"  {self.op} {_CHECKSUMS[stamp]}: {verb}"
        if stamp == CHANGE_CAUSE_ANNOTATION:
            old, new = _plain(self.old), _plain(self.new)
            shown = {"~": f"{old} → {new}", "+": new, "-": old}[self.op]
            return f"  {self.op} change cause: {shown}"
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
    pods: str = ""  # for a workload: whether its pods roll, and why

    def pods_line(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.subject}{where}: {self.pods}"

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
        """The headline and the changes; past `limit` only images, commands and args."""
        kept = [c for i, c in enumerate(self.changes) if i < limit or c.full]
        shown = [c.line() for c in kept]
        if len(self.changes) > len(kept):
            shown.append(f"  … and {len(self.changes) - len(kept)} more")
        return [self.headline(), *shown]


def summary(diffs: list[ObjectDiff]) -> list[str]:
    """First what a reviewer asks: which workloads' pods roll, and why."""
    return [d.pods_line() for d in diffs if d.pods]


def diff(
    live: Mapping[str, Any] | None,
    planned: Mapping[str, Any],
    sent: Mapping[str, Any] | None = None,
) -> ObjectDiff:
    """Compare the live object (None: it does not exist) with the dry-run result. A new object
    lists what was `sent` (when given) rather than the server's defaults."""
    kind = str(planned.get("kind") or "")
    metadata = planned.get("metadata") or {}
    subject = f"{kind.lower()}/{metadata.get('name')}"
    namespace = str(metadata.get("namespace") or "")
    secret = kind == "Secret"
    pods = _pods(kind, live, planned)
    if live is None:
        changes = tuple(_added_paths(_comparable(sent or planned), secret))
        return ObjectDiff(subject, namespace, True, changes, pods)
    changes = tuple(_walk(_comparable(live), _comparable(planned), "", secret))
    return ObjectDiff(subject, namespace, False, changes, pods)


def _template(kind: str, obj: Mapping[str, Any]) -> Any:
    spec = obj.get("spec") or {}
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return spec.get("template") if isinstance(spec, Mapping) else None


def _pods(kind: str, live: Mapping[str, Any] | None, planned: Mapping[str, Any]) -> str:
    """Whether a workload's pods roll (its pod template changes), and why: image, config (our
    checksums), spec (anything else in the template)."""
    if kind not in _TEMPLATE_KINDS and kind != "CronJob":
        return ""
    if live is None:
        return {"Job": "new: will run", "CronJob": "new: runs on its schedule"}.get(
            kind, "new: its pods will start"
        )
    old, new = _template(kind, live), _template(kind, planned)
    if old == new:
        return "pods stay: the pod template is unchanged"
    reasons = [
        reason
        for reason, part in (("image", _images), ("config", _checksums), ("spec", _rest))
        if part(old) != part(new)
    ]
    why = f" ({', '.join(reasons)})" if reasons else ""
    if kind == "CronJob":
        return f"its next runs change{why}"
    return f"pods will roll{why}"


def _containers(template: Any) -> list[Mapping[str, Any]]:
    spec = template.get("spec") if isinstance(template, Mapping) else None
    if not isinstance(spec, Mapping):
        return []
    out: list[Mapping[str, Any]] = []
    for name in ("initContainers", "containers"):
        out += [c for c in spec.get(name) or [] if isinstance(c, Mapping)]
    return out


def _images(template: Any) -> list[tuple[str, str]]:
    return sorted((str(c.get("name")), str(c.get("image"))) for c in _containers(template))


def _checksums(template: Any) -> dict[str, Any]:
    metadata = template.get("metadata") if isinstance(template, Mapping) else None
    annotations = (metadata or {}).get("annotations") or {}
    return {k: v for k, v in annotations.items() if k in _CHECKSUMS}


def _rest(template: Any) -> Any:
    """The template without its images and our checksums: what else changed."""
    if not isinstance(template, Mapping):
        return template
    rest = json.loads(json.dumps(template, default=str))
    for container in _containers(rest):
        container.pop("image", None)  # type: ignore[attr-defined]
    annotations = (rest.get("metadata") or {}).get("annotations") or {}
    for key in _CHECKSUMS:
        annotations.pop(key, None)
    return rest


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
            if (key not in old or key not in new) and _holds_a_stamp(
                old.get(key, new.get(key)), key
            ):
                # key by key, so that our stamps are summarised wherever the mapping is new
                yield from _walk(old.get(key, {}), new.get(key, {}), sub, secret)
            elif key not in new:
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
        full = path.endswith((".image", ".command", ".args"))
        yield Change(
            "~",
            path,
            old=_show(old, secret, path, full=full),
            new=_show(new, secret, path, full=full),
            full=full,
        )


def _holds_a_stamp(value: Any, key: str) -> bool:
    """Is one of our stamps in `value` (found under `key`), e.g. a new template's metadata?"""
    if not isinstance(value, Mapping):
        return False
    if key == "annotations":
        return any(k in _CHECKSUMS or k == CHANGE_CAUSE_ANNOTATION for k in value)
    return any(_holds_a_stamp(v, str(k)) for k, v in value.items())


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
    """A new object: its spec field by field (short mappings on one line, containers by name,
    images, commands and args in full), its data keys, and Secret keys without values."""
    if secret:
        for part in sorted(_SECRET_VALUE_FIELDS):
            for key in sorted(obj.get(part) or {}, key=str):
                yield Change("+", f"{part}.{key}", new="(hidden)")
        return
    value = obj.get("spec")
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            yield from _fields(value[key], f"spec.{key}")
    for part in ("data", "binaryData"):
        value = obj.get(part)
        if isinstance(value, Mapping):
            for key in sorted(value, key=str):
                yield Change("+", f"{part}.{key}", new=_show(value[key], secret, part))


def _fields(value: Any, path: str) -> Iterator[Change]:
    full = path.endswith((".image", ".command", ".args"))
    if (
        isinstance(value, Mapping)
        and value
        and (len(_json(value)) > _SHORT_MAPPING or path.endswith(".annotations"))
    ):
        for key in sorted(value, key=str):
            yield from _fields(value[key], f"{path}.{key}")
        return
    named = _by_name(value) if isinstance(value, list) else None
    if named is not None and len(_json(value)) > _SHORT_MAPPING:
        for name, item in named.items():
            yield from _fields({k: v for k, v in item.items() if k != "name"}, f"{path}[{name}]")
        return
    yield Change("+", path, new=_show(value, False, path, full=full), full=full)


def _json(value: Any) -> str:
    return " ".join(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).split())


def _plain(shown: str) -> str:
    """A shown JSON string without its quotes."""
    return shown[1:-1] if len(shown) >= 2 and shown[0] == shown[-1] == '"' else shown


def _show(value: Any, secret: bool, path: str, *, full: bool = False) -> str:
    if secret and path.split(".", 1)[0].split("[", 1)[0] in _SECRET_VALUE_FIELDS:
        return "(hidden)"
    text = _json(value)
    return text if full or len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"
