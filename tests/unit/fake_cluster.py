"""An in-memory cluster for unit tests: list, watch (resourceVersion history, stream ends, 410
Expired), logs and events, plus builders for Deployments, ReplicaSets, pods and events."""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from deployer.kube import Expired, WatchEvent
from deployer.status import Collection

SNAPSHOTS = Path(__file__).parent / "snapshots" / "status"
NS = "shop"


# --- the fake cluster -----------------------------------------------------------------------


class FakeStream:
    def __init__(self) -> None:
        self.items: queue.Queue[Any] = queue.Queue()
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent]:
        while not self.closed.is_set():
            try:
                item = self.items.get(timeout=0.02)
            except queue.Empty:
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.closed.set()


class FakeCluster:
    """Objects by (kind, namespace, name); a resourceVersion counter and event history like
    the API server's, so a watch started from a list's version misses nothing."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rv = 100
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.history: list[tuple[int, str, str, str, dict[str, Any]]] = []
        self.compacted = 0
        self.streams: list[tuple[str, str, FakeStream]] = []
        self.logs: dict[tuple[str, str, bool], str | Exception] = {}
        self.events: list[dict[str, Any]] = []
        self.list_error: Exception | None = None
        self.lists = 0
        self.watches = 0

    # changing the cluster
    def put(self, obj: dict[str, Any]) -> None:
        obj = copy.deepcopy(obj)
        kind, ns, name = obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]
        with self.lock:
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            key = (kind, ns, name)
            verb = "MODIFIED" if key in self.objects else "ADDED"
            self.objects[key] = obj
            self._emit(self.rv, verb, kind, ns, obj)

    def delete(self, kind: str, name: str) -> None:
        with self.lock:
            obj = self.objects.pop((kind, NS, name))
            self.rv += 1
            self._emit(self.rv, "DELETED", kind, NS, obj)

    def _emit(self, rv: int, verb: str, kind: str, ns: str, obj: dict[str, Any]) -> None:
        self.history.append((rv, verb, kind, ns, obj))
        for skind, sns, stream in self.streams:
            if (skind, sns) == (kind, ns) and not stream.closed.is_set():
                stream.items.put(WatchEvent(verb, copy.deepcopy(obj)))

    def compact_and_expire(self) -> None:
        """etcd compaction: old versions gone, every open watch gets a 410."""
        with self.lock:
            self.compacted = self.rv
            for _, _, stream in self.streams:
                stream.items.put(Expired("too old resource version"))

    def end_streams(self) -> None:
        with self.lock:
            for _, _, stream in self.streams:
                stream.items.put(None)

    # the API
    def list_objects(
        self, collection: Collection, namespace: str
    ) -> tuple[list[dict[str, Any]], str]:
        kind = collection.kind
        if self.list_error is not None:
            raise self.list_error
        with self.lock:
            self.lists += 1
            items = [
                {key: copy.deepcopy(v) for key, v in o.items() if key != "kind"}  # as the API
                for (k, ns, _), o in self.objects.items()
                if (k, ns) == (kind, namespace)
            ]
            return items, str(self.rv)

    def server_clock_ahead(self) -> float | None:
        return None  # the fake's answers carry no Date

    def watch_objects(
        self, collection: Collection, namespace: str, resource_version: str, *, timeout_s: int
    ) -> FakeStream:
        kind = collection.kind
        assert timeout_s > 0
        stream = FakeStream()
        with self.lock:
            self.watches += 1
            if int(resource_version) < self.compacted:
                stream.items.put(Expired("too old resource version"))
            else:
                for rv, verb, k, ns, obj in self.history:
                    if rv > int(resource_version) and (k, ns) == (kind, namespace):
                        stream.items.put(WatchEvent(verb, copy.deepcopy(obj)))
            self.streams.append((kind, namespace, stream))
        return stream

    def _select(self, kind: str, namespace: str, selector: Any) -> list[dict[str, Any]]:
        labels = (selector or {}).get("matchLabels") or {}
        with self.lock:
            return [
                copy.deepcopy(o)
                for (k, ns, _), o in self.objects.items()
                if (k, ns) == (kind, namespace)
                and all(o["metadata"].get("labels", {}).get(a) == b for a, b in labels.items())
            ]

    def list_replicasets(self, namespace: str, selector: Any = None) -> list[dict[str, Any]]:
        return self._select("ReplicaSet", namespace, selector)

    def list_pods(self, namespace: str, selector: Any = None) -> list[dict[str, Any]]:
        return self._select("Pod", namespace, selector)

    def pod_logs(
        self, name: str, namespace: str, container: str, *, tail: int = 50, previous: bool = False
    ) -> str:
        found = self.logs.get((name, container, previous), "")
        if isinstance(found, Exception):
            raise found
        return "\n".join(found.splitlines()[-tail:])

    def events_for(self, kind: str, name: str, namespace: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["involvedObject"]["kind"] == kind and e["involvedObject"]["name"] == name
        ]


# --- object builders ------------------------------------------------------------------------


def deployment(
    name: str,
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int = 2,
    updated: int = 0,
    available: int = 0,
    total: int | None = None,
    revision: int = 2,
    progressing: tuple[str, str, str] = ("True", "ReplicaSetUpdated", "is progressing."),
) -> dict[str, Any]:
    status, reason, text = progressing
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "generation": generation,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
        },
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": []}},
        },
        "status": {
            "observedGeneration": observed,
            "replicas": updated if total is None else total,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": status,
                    "reason": reason,
                    "message": f'ReplicaSet "{name}-r{revision}" {text}',
                }
            ],
        },
    }


def replicaset(deployment_name: str, revision: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{deployment_name}-r{revision}",
            "namespace": NS,
            "uid": f"uid-{deployment_name}-r{revision}",
            "labels": {"app": deployment_name, "pod-template-hash": f"r{revision}"},
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [
                {
                    "kind": "Deployment",
                    "name": deployment_name,
                    "uid": f"uid-{deployment_name}",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "selector": {
                "matchLabels": {"app": deployment_name, "pod-template-hash": f"r{revision}"}
            }
        },
    }


def pod(
    snapshot: str, deployment_name: str, revision: int, suffix: str = "a1b2c"
) -> dict[str, Any]:
    """A real-shaped pod from the status snapshots, re-owned by our fake ReplicaSet."""
    doc = yaml.safe_load((SNAPSHOTS / f"{snapshot}.yaml").read_text())
    name = f"{deployment_name}-r{revision}-{suffix}"
    doc["metadata"].update(
        name=name,
        namespace=NS,
        uid=f"uid-{name}",
        labels={"app": deployment_name, "pod-template-hash": f"r{revision}"},
        ownerReferences=[
            {
                "kind": "ReplicaSet",
                "name": f"{deployment_name}-r{revision}",
                "uid": f"uid-{deployment_name}-r{revision}",
                "controller": True,
            }
        ],
    )
    return doc


def event(
    kind: str, name: str, reason: str, message: str, at: str, *, kind_: str = "Warning"
) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{name}.{reason}", "namespace": NS},
        "involvedObject": {"kind": kind, "name": name, "namespace": NS},
        "reason": reason,
        "message": message,
        "type": kind_,
        "count": 1,
        "lastTimestamp": at,
    }


class Progress:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
