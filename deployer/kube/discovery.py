"""API discovery (which path serves a kind, whether it is namespaced): the `kubernetes` package's
DynamicClient, the one place the deployer still uses that package for a token or certificate
kubeconfig. It is imported when a run first asks for a resource (apply, its checks), never by
`wait`; its requests go through our transport like every other."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from urllib3.util.retry import Retry

from deployer.kube.transport import Answer, Transport


class _ApiClient:
    """The part of the client's ApiClient that DynamicClient calls, over our transport: its
    failures become the client's ApiException, which DynamicClient expects and turns into its own
    errors (all ApiExceptions still)."""

    def __init__(self, transport: Transport, retries: Retry, timeout: tuple[float, float]) -> None:
        self.configuration = SimpleNamespace(host=transport.server)
        self._transport = transport
        self._retries = retries
        self._timeout = timeout

    def select_header_accept(self, accepts: list[str]) -> str:
        lowered = [a.lower() for a in accepts]
        return "application/json" if "application/json" in lowered else ", ".join(lowered)

    def select_header_content_type(self, types: list[str]) -> str:
        lowered = [t.lower() for t in types]
        if not lowered or "application/json" in lowered or "*/*" in lowered:
            return "application/json"
        return lowered[0]

    def call_api(
        self,
        resource_path: str,
        method: str,
        path_params: Mapping[str, Any] | None = None,
        query_params: list[tuple[str, Any]] | None = None,
        header_params: Mapping[str, str] | None = None,
        body: Any = None,
        _request_timeout: Any = None,
        **_ignored: Any,
    ) -> Any:
        query = [(str(k), str(v)) for k, v in query_params or []]
        try:
            return self._transport.request(
                method,
                resource_path,
                query,
                headers=dict(header_params or {}),
                body=body,
                timeout=_request_timeout if isinstance(_request_timeout, tuple) else self._timeout,
                retries=self._retries,
            )
        except Answer as answer:
            error = ApiException(status=answer.status, reason=answer.reason)
            error.body = answer.body
            raise error from answer


def dynamic_client(
    transport: Transport, retries: Retry, timeout: tuple[float, float], cache_file: str
) -> DynamicClient:
    """A DynamicClient whose discovery is cached in `cache_file` (the connection's private
    directory) and whose requests go through `transport`."""
    return DynamicClient(_ApiClient(transport, retries, timeout), cache_file=cache_file)
