"""Names from the user's files: the forms Kubernetes accepts, and how to show any value in a message.

Every module of the package checks a name here before a message shows it, and shows what it
refuses through `shown` (quoted, escaped, shortened), so a manifest cannot write into our log.
"""

from __future__ import annotations

import re

DNS_SUBDOMAIN = re.compile(
    r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
)
DNS_LABEL = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
# RBAC objects and custom resources allow more (`system:controller:x`); still no blanks, no breaks.
PATH_SEGMENT = re.compile(r"^[A-Za-z0-9:._@+=-]+$")
ENV_NAME = re.compile(r"^[!-<>-~]{1,253}$")  # printable ASCII, no blank, no '='
# The characters of a Docker reference ([host[:port]/]path[:tag][@algo:hex]); the server checks form.
IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$")
KIND = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")
API_VERSION = re.compile(
    r"^(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$"
)


def is_name(value: object) -> bool:
    """A DNS-1123 subdomain: the name of a Deployment, ConfigMap, Secret, …"""
    return isinstance(value, str) and len(value) <= 253 and bool(DNS_SUBDOMAIN.match(value))


def is_namespace(value: object) -> bool:
    return isinstance(value, str) and bool(DNS_LABEL.match(value))


def shown(value: object, limit: int = 60) -> str:
    """A value from the user's files, safe to put in a message: quoted, escaped, shortened."""
    text = repr(value) if isinstance(value, str) else repr(str(value))
    return text if len(text) <= limit else text[: limit - 4] + "…" + text[-1]
