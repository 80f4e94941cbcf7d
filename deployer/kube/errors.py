"""Our own Kubernetes API errors, so the rest of the deployer never sees an HTTP status.

Each class names what happened (`Forbidden`, `Conflict`...), keeps the HTTP status and the
API server's Status body, and chains the transport's `Answer` (or, from the discovery, the
`kubernetes` client's ApiException) as its cause. They sit in the deployer's error tree by what
the user must do: change input (credentials, rights, manifests) or wait for the service;
`cli.exit_code` turns that into an exit code, in one place.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from typing import Any, Protocol

from deployer.errors import InputError, ServiceError
from deployer.objects import subject

SERVICE = "Kubernetes API"


class KubeError(Exception):
    """Marker base of every error the kube package raises; `status` is the HTTP status, if any,
    and `body` the API server's Status object (empty when there was none)."""

    status: int | None = None
    body: Mapping[str, Any] = {}


class Unauthorized(InputError, KubeError):
    status = 401


class Forbidden(InputError, KubeError):
    status = 403


class NotFound(InputError, KubeError):
    status = 404


class Conflict(InputError, KubeError):
    status = 409

    def __init__(self, message: str, *, hint: str = "", fields: str = "") -> None:
        super().__init__(message, hint=hint)
        self.fields = fields  # for apply conflicts: "<field> (owned by <manager>); ..."


class Invalid(InputError, KubeError):
    """The API server refused an object (400/422): the manifest must change."""

    status = 422


class Rejected(Invalid):
    """The dry run before apply: the API server refused document `index` for its content.
    `webhook` names the admission webhook that denied it ("" when the API server itself did:
    schema validation, a built-in admission plugin, a ValidatingAdmissionPolicy)."""

    def __init__(
        self,
        message: str,
        *,
        index: int,
        kind: str,
        name: str,
        namespace: str | None,
        webhook: str = "",
    ) -> None:
        hint = "Fix the manifest; nothing was applied."
        if webhook:
            hint = (
                f'Change the manifest (or the image) so the admission webhook "{webhook}" '
                "admits it; nothing was applied."
            )
        super().__init__(message, hint=hint)
        self.index, self.kind, self.name, self.namespace = index, kind, name, namespace
        self.webhook = webhook

    @property
    def subject(self) -> str:
        return subject(self.kind, self.name)


class ApiUnavailable(ServiceError, KubeError):
    def __init__(self, message: str, *, hint: str = "", status: int | None = None) -> None:
        super().__init__(SERVICE, message, hint=hint)
        self.status = status


class Expired(ServiceError, KubeError):
    """A watch's resourceVersion is gone from the API server's history (HTTP 410): the watcher
    lists again. Anywhere else it is the service failing."""

    status = 410

    def __init__(self, message: str) -> None:
        super().__init__(SERVICE, message)


def from_status(
    status: int,
    body: Mapping[str, Any],
    what: str,
    *,
    verb: str = "",
    resource: str = "",
    namespace: str | None = None,
) -> KubeError:
    """The error for an API answer with HTTP `status` and Status `body`, trying to `what`."""
    server = short(body.get("message") or body.get("reason") or f"HTTP {status}")
    where = f' in namespace "{namespace}"' if namespace else " (cluster-wide)"
    error: KubeError
    refused_by_admission = (400 <= status < 500 and bool(denying_webhook(body))) or (
        status == 403 and admission_refusal(body)
    )
    if refused_by_admission:
        # A webhook denies with the code it likes (Gatekeeper: 403), and admission inside the API
        # server answers 403 too (a ValidatingAdmissionPolicy, a quota, a LimitRange, Pod
        # Security): it is the object that is refused, not the credentials or the identity's rights.
        error = Invalid(f"the API server rejected {what}: {server}")
    elif status == 401:
        error = Unauthorized(
            f"the cluster rejected the credentials (401 Unauthorized) trying to {what}",
            hint="The kubeconfig's token is invalid or has expired; fetch a fresh one.",
        )
    elif status == 403:
        error = Forbidden(
            f'the cluster identity may not "{verb}" {resource}{where}: {server}',
            hint=f'Grant the identity "{verb}" on {resource}{where} (a Role and RoleBinding), '
            "or use credentials that have it.",
        )
    elif status == 404:
        error = NotFound(f"not found while trying to {what}: {server}")
    elif status == 409:
        error = Conflict(f"conflict while trying to {what}: {server}")
    elif status in (400, 422) or (status == 500 and _TYPED_PATCH in server):
        # Server-side apply answers 500 when a field has the wrong type (`replicas: "two"`, a
        # name that is a mapping): the manifest's fault, like a 422.
        error = Invalid(f"the API server rejected {what}: {_without_typed_prefix(server)}")
    elif status == 410:
        error = Expired(server)
    elif status == 0:
        error = ApiUnavailable(f"cannot {what}: {server}")
    else:
        error = ApiUnavailable(
            f"{what} failed with HTTP {status}: {server}",
            hint="The cluster's API server is unwell; try again later.",
            status=status,
        )
    error.body = dict(body)
    return error


_TYPED_PATCH = "failed to create typed patch object"

# The authorizer's 403 reads `<resource> "<name>" is forbidden: User "<user>" cannot <verb> ...`
# (k8s.io/apiserver responsewriters.ForbiddenStatusError); admission's reads `... is forbidden:
# <why>` with anything else after the colon.
_ADMISSION_FORBIDDEN = re.compile(r' is forbidden: (?!User ")\S')


def admission_refusal(body: Mapping[str, Any]) -> bool:
    """True when a 403's Status says admission refused the object (a policy, a quota, a limit, a
    terminating namespace), not that the identity lacks a right."""
    message = body.get("message")
    return isinstance(message, str) and _ADMISSION_FORBIDDEN.search(message) is not None


# How the API server words a webhook's denial (k8s.io/apiserver webhookerrors.ToStatusErr), at the
# start of its message; what follows is the webhook's own text. A name is a DNS subdomain.
_WEBHOOK_DENIAL = re.compile(
    r'admission webhook "([a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?)" denied the request\b'
)


def denying_webhook(body: Mapping[str, Any]) -> str:
    """The name of the admission webhook that denied the request, from the API server's Status
    `body`; "" when anything else refused it (schema validation, a built-in admission plugin, a
    ValidatingAdmissionPolicy: those run inside the API server and cannot look at a registry).
    Only the server's own prefix counts: the webhook's text after it, or a policy's message that
    quotes the phrase, is never read as a denial by a webhook."""
    message = body.get("message")
    if not isinstance(message, str):
        return ""
    match = _WEBHOOK_DENIAL.match(message)
    return match.group(1) if match else ""


def _without_typed_prefix(message: str) -> str:
    """`failed to create typed patch object (ns/name; apps/v1, Kind=Deployment): .spec.replicas:
    expected …` → `.spec.replicas: expected …` (the object is named by the caller)."""
    if message.startswith(_TYPED_PATCH):
        _, sep, rest = message.partition("): ")
        if sep:
            return rest
    return message


class Answered(Protocol):
    """An API server's answer outside 2xx as an exception: `kube.transport.Answer`, or the
    `kubernetes` client's ApiException (from the discovery). Status 0: no HTTP answer (TLS)."""

    status: Any
    reason: Any
    body: Any


def from_api_exception(
    exc: Answered, what: str, *, verb: str, resource: str, namespace: str | None
) -> KubeError:
    return from_status(
        int(exc.status or 0),
        status_body(exc),
        what,
        verb=verb,
        resource=resource,
        namespace=namespace,
    )


def apply_conflict(error: Conflict, kind: str, name: str, namespace: str | None) -> Conflict:
    """A server-side apply conflict, naming each field and the manager that owns it."""
    causes = (error.body.get("details") or {}).get("causes") or []
    owned: list[str] = []
    for cause in causes:
        field = cause.get("field") or "?"
        manager = str(cause.get("message") or "").removeprefix("conflict with ")
        owned.append(f"{field} (owned by {manager})")
    where = f' in namespace "{namespace}"' if namespace else ""
    fields = "; ".join(owned) or short(error.body.get("message") or "")
    conflict = Conflict(
        f"{kind}/{name}{where}: server-side apply conflicts with other field managers: {fields}",
        hint="Another tool (kubectl edit/scale, an HPA, a previous client-side apply) set "
        "these fields. Remove them from the manifest to leave them to it, or deploy with "
        "force-conflicts to take them over (what `kubectl apply --server-side "
        "--force-conflicts` does).",
        fields=fields,
    )
    conflict.body = error.body
    return conflict


def status_body(exc: Answered) -> dict[str, Any]:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str) and body.strip().startswith("{"):
        with contextlib.suppress(ValueError):
            data = json.loads(body)
            if isinstance(data, dict):
                return data
    return {"message": str(body or exc.reason or "")}


def short(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 400 else text[:399] + "…"
