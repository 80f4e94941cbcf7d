"""The DigitalOcean API client: cluster name -> id, a short-lived kubeconfig, DOCR credentials.

The only package that speaks HTTP to DigitalOcean. It returns plain values and raises only
`InputError` (exit 2: the token, its scopes or the cluster input are wrong) and `ServiceError`
(exit 3: the API kept failing); the API token never appears in a message.

The kubeconfig never becomes a file here: callers get a dict and the secret strings to mask.

Two modules: `answers` (constants, the `DoksCluster` and `Kubeconfig` values and the pure checks
of what the API sent; no HTTP stack) and `client` (`DigitalOcean`, its retries and its HTTP
errors; imports `requests` and `urllib3`). The client's names are loaded when first asked for,
so naming a cluster or the default API URL costs no HTTP stack at start-up.
"""

from typing import TYPE_CHECKING

from deployer.digitalocean.answers import (
    DEFAULT_API_URL,
    HOW_TO_CREATE,
    MAX_PAGES,
    NAMES_SHOWN,
    PER_PAGE,
    SCOPE_ACCESS,
    SCOPE_READ,
    SCOPE_REGISTRY_DELETE,
    SCOPE_REGISTRY_READ,
    SCOPE_REGISTRY_UPDATE,
    SCOPES_LINK,
    SCOPES_PUSH,
    SERVICE,
    SEVEN_DAYS,
    USER_AGENT,
    DoksCluster,
    Kubeconfig,
)
from deployer.lazy import lazy_names

if TYPE_CHECKING:
    from deployer.digitalocean.client import DigitalOcean
    from deployer.http_client import RetryPolicy

# These import `requests` and `urllib3` (about 0.05 s): loaded when first asked for, so a run
# pays for them when it calls the API, not at start-up.
_CLIENT_SIDE = {
    "DigitalOcean": "deployer.digitalocean.client",
    "RetryPolicy": "deployer.http_client",
}

__getattr__ = lazy_names(__name__, _CLIENT_SIDE)


__all__ = [
    "DEFAULT_API_URL",
    "HOW_TO_CREATE",
    "MAX_PAGES",
    "NAMES_SHOWN",
    "PER_PAGE",
    "SCOPES_LINK",
    "SCOPES_PUSH",
    "SCOPE_ACCESS",
    "SCOPE_READ",
    "SCOPE_REGISTRY_DELETE",
    "SCOPE_REGISTRY_READ",
    "SCOPE_REGISTRY_UPDATE",
    "SERVICE",
    "SEVEN_DAYS",
    "USER_AGENT",
    "DigitalOcean",
    "DoksCluster",
    "Kubeconfig",
    "RetryPolicy",
]
