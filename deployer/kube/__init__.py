"""The Kubernetes API, and the only package that imports the `kubernetes` package (for the API
discovery and credential plugins only; requests go through our own urllib3 transport).

Everything leaves it as plain dicts (the JSON the API server sent, camelCase keys), so
`status.py` can judge them and tests can fake them. Every API failure leaves it as one of our
own error classes (`kube.errors`), chained to the transport's exception:

* `Unauthorized`, `Forbidden`, `NotFound`, `Conflict`, `Invalid` are `InputError`s: the
  credentials, the identity's rights or the manifests must change; the message says which.
* `ApiUnavailable` and `Expired` are `ServiceError`s ("Kubernetes API"): unreachable, or
  429/5xx after urllib3's bounded retries; a watch's 410 is handled by the watcher.

One module per job: `endpoint` (kubeconfig → where and how to connect, as kubectl reads it),
`transport` (urllib3 with the cluster's TLS settings), `connection` (the private directory, the
raw calls), `discovery` (DynamicClient over the transport, for apply), `errors`, `apply`
(server-side apply and its conflict policy), `permissions` (SelfSubjectAccessReview before the
build), `watching` (watch streams), and `cluster`, the one object callers hold. The rollback's planning is pure and lives in `deployer.revisions`.
"""

from typing import TYPE_CHECKING

from deployer.kube.errors import (
    ApiUnavailable,
    Conflict,
    Expired,
    Forbidden,
    Invalid,
    KubeError,
    NotFound,
    Rejected,
    Unauthorized,
    from_status,
)
from deployer.kube.values import (
    FIELD_MANAGER,
    ROLLBACK_FIELD_MANAGER,
    Applied,
    Planned,
    Rollback,
    WatchEvent,
)
from deployer.lazy import lazy_names

if TYPE_CHECKING:
    from deployer.kube.cluster import Cluster
    from deployer.kube.connection import label_selector
    from deployer.kube.watching import EventStream

# These import urllib3 (the `kubernetes` package only where it is still needed: the discovery
# for apply, credential plugins), loaded when first asked for, so a run pays for them when it
# reaches the cluster, not at start-up.
_CLIENT_SIDE = {
    "Cluster": "deployer.kube.cluster",
    "label_selector": "deployer.kube.connection",
    "EventStream": "deployer.kube.watching",
}

__getattr__ = lazy_names(__name__, _CLIENT_SIDE)


__all__ = [
    "FIELD_MANAGER",
    "ROLLBACK_FIELD_MANAGER",
    "ApiUnavailable",
    "Applied",
    "Cluster",
    "Conflict",
    "EventStream",
    "Expired",
    "Forbidden",
    "Invalid",
    "KubeError",
    "NotFound",
    "Planned",
    "Rejected",
    "Rollback",
    "Unauthorized",
    "WatchEvent",
    "from_status",
    "label_selector",
]
