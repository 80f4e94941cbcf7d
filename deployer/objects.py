"""One way to read a Kubernetes object (a plain dict, as the API server or a manifest has it).

Every module that looks inside an object asks here: its name and namespace, the `kind/name`
subject our messages start with, its controller, labels and annotations, and its containers
with their states (`containers`: the one walk over a pod's container statuses). Nothing here
judges; `status.py`, `workloads.py` and `diagnose.py` do, from what these return. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]

_MAX_DETAIL = 300


def get(obj: object, *path: str) -> Any:
    """The value at `path`, or None where any step is missing or not a mapping."""
    cur: Any = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def mapping(obj: object, *path: str) -> Obj | None:
    """The mapping at `path`, or None (also when something else is there)."""
    value = get(obj, *path)
    return value if isinstance(value, Mapping) else None


def name(obj: object, default: str = "?") -> str:
    return str(get(obj, "metadata", "name") or default)


def labels(obj: object) -> Obj:
    return mapping(obj, "metadata", "labels") or {}


def annotations_of(obj: object) -> Obj:
    return mapping(obj, "metadata", "annotations") or {}


def subject(kind: str, object_name: str) -> str:
    """How our messages name an object: `deployment/web`."""
    return f"{kind.lower()}/{object_name}"


def controller_uid(obj: object) -> str | None:
    """The uid of the object's controller (its owner reference with `controller: true`)."""
    for ref in get(obj, "metadata", "ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller"):
            uid = ref.get("uid")
            return str(uid) if uid is not None else None
    return None


def condition(status: object, kind: str) -> Obj | None:
    """The condition of type `kind`, if the status has one (whatever shape the API server
    answered: anything but a mapping with a list of mappings has none)."""
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    for cond in conditions if isinstance(conditions, list) else []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return dict(cond)
    return None


def true_condition(status: object, kind: str) -> Obj | None:
    """The condition of type `kind` when its status is "True"."""
    cond = condition(status, kind)
    return cond if cond is not None and cond.get("status") == "True" else None


def one_line(text: object) -> str:
    """Text from outside (a message, an event) as one line of bounded length."""
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 1] + "…"


def exit_code(terminated: Obj | None) -> int | None:
    code = (terminated or {}).get("exitCode")
    return int(code) if code is not None else None


# --- containers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    """One container of a pod: its status entry (`{}` before the kubelet reported one) and its
    spec entry, read the same way wherever a container's state matters."""

    pod: str
    name: str
    init: bool
    status: Obj
    spec: Obj = field(default_factory=dict, compare=False)  # its pod spec entry ({}: unknown)
    restart_policy: str = "Always"  # the pod's (init containers never restart on their own)

    @property
    def label(self) -> str:
        kind = "init container" if self.init else "container"
        return f"{kind} `{self.name}`"

    @property
    def restarts(self) -> int:
        return int(self.status.get("restartCount") or 0)

    @property
    def ready(self) -> bool:
        return bool(self.status.get("ready"))

    def waiting(self) -> Obj | None:
        return mapping(self.status, "state", "waiting")

    def running(self) -> Obj | None:
        return mapping(self.status, "state", "running")

    def terminated(self) -> Obj | None:
        return mapping(self.status, "state", "terminated")

    def last_terminated(self) -> Obj | None:
        return mapping(self.status, "lastState", "terminated")

    def reason(self) -> str | None:
        """The reason of its waiting or terminated state; NotReady when running but not ready."""
        for state in (self.waiting(), self.terminated()):
            if state and state.get("reason"):
                return str(state["reason"])
        if self.running() is not None and not self.ready:
            return "NotReady"
        return None

    def last_exit(self) -> int | None:
        """The exit code of its current run if it ended, else of its last run."""
        for state in (self.terminated(), self.last_terminated()):
            if state and state.get("exitCode") is not None:
                return int(state["exitCode"])
        return None

    def memory_limit(self) -> str | None:
        limit = get(self.spec, "resources", "limits", "memory")
        return str(limit) if limit is not None else None

    def restarts_after_exit(self) -> bool:
        """Will the kubelet start this (app) container again after it ends? Always: whatever
        the exit; OnFailure: after a non-zero exit; Never: not at all (a Job's pod)."""
        return self.restart_policy in ("Always", "OnFailure")


def containers(pod: object) -> Iterator[Container]:
    """Init containers first (in spec order), then app containers: the order things happen.
    Only containers the kubelet reported a status for."""
    pod_name = name(pod)
    status = mapping(pod, "status") or {}
    spec = mapping(pod, "spec") or {}
    for init, spec_key, status_key in (
        (True, "initContainers", "initContainerStatuses"),
        (False, "containers", "containerStatuses"),
    ):
        specs = {c.get("name"): c for c in spec.get(spec_key) or [] if isinstance(c, Mapping)}
        by_name = {s.get("name"): s for s in status.get(status_key) or [] if isinstance(s, Mapping)}
        order = list(specs) or list(by_name)
        for cname in order:
            if cname in by_name:
                yield Container(
                    pod_name,
                    str(cname),
                    init,
                    by_name[cname],
                    specs.get(cname, {}),
                    str(spec.get("restartPolicy") or "Always"),
                )


def container(pod: object, container_name: str, init: bool) -> Container:
    """The named container of `pod` (an empty status when the kubelet has reported none)."""
    for c in containers(pod):
        if c.name == container_name and c.init == init:
            return c
    return Container(name(pod), container_name, init, {})


def spec_containers(pod_spec: Obj) -> Iterator[tuple[Obj, str]]:
    """The containers a pod spec declares, init containers first, each with the label our
    messages use for it (`init container `migrate``), for checks of what the manifests ask."""
    for key, kind in (("initContainers", "init container"), ("containers", "container")):
        for c in pod_spec.get(key) or []:
            if isinstance(c, Mapping):
                yield c, f"{kind} `{c.get('name')}`"
