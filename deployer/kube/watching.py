"""Watch streams: one connection per kind and namespace, read line by line as events."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import urllib3

from deployer.kube.connection import Connection, collection_path
from deployer.kube.errors import ApiUnavailable, Expired, from_status, short
from deployer.kube.values import WatchEvent
from deployer.status import Collection


class EventStream:
    """One watch connection: iterate for events; `close()` from any thread ends it promptly."""

    def __init__(self, response: Any, what: str) -> None:
        self._response = response
        self._what = what
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent]:
        try:
            for line in iter_resp_lines(self._response):
                if self._closed.is_set():
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = str(event.get("type"))
                obj = event.get("object") or {}
                if kind == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        raise Expired(obj.get("message") or "resource version too old")
                    raise from_status(int(code or 500), obj, f"watch {self._what}")
                yield WatchEvent(kind, obj)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if self._closed.is_set():
                return
            raise ApiUnavailable(f"the watch of {self._what} broke: {short(exc)}") from exc
        finally:
            self._release()

    def close(self) -> None:
        self._closed.set()
        # shutdown() unblocks a read in another thread; close() alone may wait for the server.
        with contextlib.suppress(Exception):
            self._response.shutdown()
        with contextlib.suppress(Exception):
            self._response.close()

    def _release(self) -> None:
        # A stream we cut is closed, not handed back to the pool half shut.
        with contextlib.suppress(Exception):
            if self._closed.is_set():
                self._response.close()
            else:
                self._response.release_conn()


def iter_resp_lines(response: Any) -> Iterator[str]:
    """The lines of a streamed response as they arrive (invalid UTF-8 replaced), as the client's
    watch reads them."""
    buffer = bytearray()
    for segment in response.stream(amt=None, decode_content=False):
        buffer.extend(segment if isinstance(segment, bytes) else str(segment).encode("utf-8"))
        newline = buffer.find(b"\n")
        while newline != -1:
            yield buffer[:newline].decode("utf-8", errors="replace")
            del buffer[: newline + 1]
            newline = buffer.find(b"\n")


def open_watch(
    connection: Connection,
    collection: Collection,
    namespace: str,
    resource_version: str,
    *,
    timeout_s: int,
) -> EventStream:
    """Changes after `resource_version`; the server ends the stream after `timeout_s`."""
    plural = collection.plural
    query = [
        ("watch", "true"),
        ("resourceVersion", resource_version),
        ("allowWatchBookmarks", "true"),
        ("timeoutSeconds", str(timeout_s)),
    ]
    response = connection.call(
        "GET",
        collection_path(collection, namespace),
        query,
        what=f"watch {plural} in {namespace}",
        verb="watch",
        resource=plural,
        namespace=namespace,
        api=connection.stream_api,
        timeout=(10.0, timeout_s + 15.0),
    )
    return EventStream(response, f"{plural} in {namespace}")
