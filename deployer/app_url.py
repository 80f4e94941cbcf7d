"""The deployed app's address (the `url` output), as plain logic: from an Ingress among the
applied objects (its first host; https when a TLS entry covers it), or from a LoadBalancer
Service's external address as the cluster reports it. No I/O here: the pipeline reads the
Services and passes them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def ingress_url(body: Mapping[str, Any]) -> str:
    """`https://host` (TLS) or `http://host` for the first rule with a concrete host; else ''."""
    spec = _mapping(body.get("spec"))
    tls = [_mapping(entry) for entry in _list(spec.get("tls"))]
    for rule in _list(spec.get("rules")):
        host = _mapping(rule).get("host")
        if not isinstance(host, str) or not host or host.startswith("*"):
            continue
        secure = any(host in _list(t.get("hosts")) or not t.get("hosts") for t in tls)
        return f"{'https' if secure else 'http'}://{host}"
    return ""


def from_ingresses(bodies: Iterable[Mapping[str, Any]]) -> str:
    """The first Ingress with a host; one with TLS before one without."""
    urls = [ingress_url(b) for b in bodies if b.get("kind") == "Ingress"]
    urls = [u for u in urls if u]
    secure = [u for u in urls if u.startswith("https://")]
    return (secure or urls or [""])[0]


def load_balancers(bodies: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(name, namespace or '') of every Service of type LoadBalancer."""
    found = []
    for body in bodies:
        spec = _mapping(body.get("spec"))
        if body.get("kind") == "Service" and spec.get("type") == "LoadBalancer":
            meta = _mapping(body.get("metadata"))
            found.append((str(meta.get("name", "")), str(meta.get("namespace") or "")))
    return found


def service_url(service: Mapping[str, Any]) -> str:
    """The external address the cloud controller wrote into the Service's status, or ''."""
    status = _mapping(_mapping(service.get("status")).get("loadBalancer"))
    for item in _list(status.get("ingress")):
        entry = _mapping(item)
        address = entry.get("hostname") or entry.get("ip")
        if isinstance(address, str) and address:
            if ":" in address:  # IPv6
                address = f"[{address}]"
            ports = [
                _mapping(p).get("port") for p in _list(_mapping(service.get("spec")).get("ports"))
            ]
            port = ports[0] if ports and isinstance(ports[0], int) else 80
            scheme = "https" if port == 443 else "http"
            suffix = "" if port in (80, 443) else f":{port}"
            return f"{scheme}://{address}{suffix}"
    return ""
