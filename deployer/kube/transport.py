"""HTTP to one API server: a urllib3 pool with the cluster's TLS settings, our own and small, so
reaching a cluster does not import the `kubernetes` client (a third of a second).

TLS: one SSL context per connection, the CA loaded from the kubeconfig's data in memory or from
its file (the system's roots when it names none), `insecure-skip-tls-verify` and `tls-server-name`
honoured. A client certificate and key given as data go through files in the connection's private
0700 directory only while the context loads them; the bearer token is a header, in memory.

Proxies: as kubectl (Go's ProxyFromEnvironment), HTTPS_PROXY/https_proxy for an https server
(HTTP_PROXY for http), never for a loopback address or a host NO_PROXY matches. A cluster's
`proxy-url` is not read (nor was it by the client's loader before).

The server's clock: every answer over a verified TLS connection carries the API server's `Date`,
so `server_clock_ahead` is a lower bound of (its clock - ours) that a man in the middle cannot
move (the settle window uses it to credit pods that were up long before: workloads.ContainerClock).

A non-2xx answer raises `Answer` (the status, reason and body), an SSL failure an `Answer` with
status 0, as the client did, so `kube.errors` maps them to the same errors; other urllib3 failures
(after the retries) propagate.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import ipaddress
import json
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.util.retry import Retry

from deployer import __version__
from deployer.kube.endpoint import Endpoint

USER_AGENT = f"django-k8s-deploy/{__version__}"


class Answer(Exception):
    """The API server answered with a status outside 2xx (0: the TLS handshake failed)."""

    def __init__(self, status: int, reason: str, body: bytes | None = None) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason
        self.body = body


class Transport:
    """Requests to one API server. Thread-safe; `close()` drops the pooled connections."""

    def __init__(
        self,
        endpoint: Endpoint,
        private_dir: str,
        *,
        env: Mapping[str, str] | None = None,
        maxsize: int = 32,
    ) -> None:
        self.server = endpoint.server
        self._authorization = endpoint.authorization
        # Only an answer from the server whose certificate we checked tells its time.
        self._dated = self.server.startswith("https://") and not endpoint.insecure
        self._clock_lock = threading.Lock()
        self._server_ahead: float | None = None
        options: dict[str, Any] = {"num_pools": 4, "maxsize": maxsize}
        if self.server.startswith("https://"):
            options["ssl_context"] = ssl_context(endpoint, private_dir)
            if endpoint.tls_server_name:
                options["server_hostname"] = endpoint.tls_server_name
        proxy = proxy_for(self.server, os.environ if env is None else env)
        self._pool: urllib3.PoolManager
        if proxy:
            try:
                auth = urllib3.util.parse_url(proxy).auth
                headers = urllib3.util.make_headers(proxy_basic_auth=auth) if auth else None
                self._pool = urllib3.ProxyManager(proxy, proxy_headers=headers, **options)
            except ValueError:  # its text may hold the proxy's password: never quoted
                variable = "HTTPS_PROXY" if self.server.startswith("https://") else "HTTP_PROXY"
                raise ValueError(f"{variable} is not an http(s) proxy URL") from None
        else:
            self._pool = urllib3.PoolManager(**options)

    def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        *,
        headers: Mapping[str, str],
        body: Any = None,
        timeout: tuple[float, float],
        retries: Retry,
    ) -> urllib3.BaseHTTPResponse:
        """The response, its body not read yet (`.data` reads it, `.stream()` streams it)."""
        url = self.server + path + ("?" + urlencode(query) if query else "")
        sent = {"User-Agent": USER_AGENT, **headers}
        authorization = self._authorization()
        if authorization:
            sent["Authorization"] = authorization
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body, default=_iso).encode()
            sent.setdefault("Content-Type", "application/json")
        try:
            response = self._pool.request(
                method,
                url,
                body=data,
                headers=sent,
                timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                retries=retries,
                preload_content=False,
            )
        except urllib3.exceptions.SSLError as exc:
            raise Answer(0, f"{type(exc).__name__}\n{exc}") from exc
        if not 200 <= response.status <= 299:
            try:
                raise Answer(response.status, str(response.reason or ""), response.data)
            finally:
                response.release_conn()
        if self._dated:
            self._note_date(response.headers.get("Date"), time.time())
        return response

    @property
    def server_clock_ahead(self) -> float | None:
        """A lower bound of (the API server's clock - this machine's), in seconds, from the
        `Date` of its answers (none yet, or not over verified TLS: None)."""
        with self._clock_lock:
            return self._server_ahead

    def _note_date(self, date: str | None, received: float) -> None:
        # The server stamped its answer before we received it, truncated to the second: at
        # `received` its clock read at least `date`.
        try:
            stamped = email.utils.parsedate_to_datetime(date or "").timestamp()
        except (TypeError, ValueError):
            return
        with self._clock_lock:
            bound = stamped - received
            if self._server_ahead is None or bound > self._server_ahead:
                self._server_ahead = bound

    def close(self) -> None:
        self._pool.clear()


def ssl_context(endpoint: Endpoint, private_dir: str) -> ssl.SSLContext:
    """The TLS settings of `endpoint`; raises ValueError (never quoting key material) when its
    CA, certificate or key cannot be loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if endpoint.ca_data:
            data = endpoint.ca_data
            context.load_verify_locations(
                cadata=data.decode("ascii") if data.lstrip().startswith(b"-----") else data
            )
        elif endpoint.ca_file:
            context.load_verify_locations(cafile=endpoint.ca_file)
        else:
            context.load_default_certs()
    except (ssl.SSLError, OSError, UnicodeDecodeError) as exc:
        raise ValueError("its certificate authority is not a PEM or DER certificate") from exc
    if endpoint.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if endpoint.cert_data or endpoint.cert_file:
        try:
            _load_client_certificate(context, endpoint, private_dir)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError("its client certificate and key do not load together") from exc
    return context


def _load_client_certificate(context: ssl.SSLContext, endpoint: Endpoint, private_dir: str) -> None:
    """The ssl module reads a certificate and key from files only: data goes through files in the
    private directory (0600 in a 0700 directory), removed as soon as the context holds them."""
    written: list[str] = []
    try:
        cert_file, key_file = endpoint.cert_file, endpoint.key_file
        if endpoint.cert_data:
            cert_file = _private_file(private_dir, endpoint.cert_data, written)
        if endpoint.key_data:
            key_file = _private_file(private_dir, endpoint.key_data, written)
        context.load_cert_chain(str(cert_file), key_file)
    finally:
        for path in written:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _private_file(private_dir: str, data: bytes, written: list[str]) -> str:
    fd, path = tempfile.mkstemp(dir=private_dir)  # 0600
    written.append(path)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def proxy_for(server: str, env: Mapping[str, str]) -> str | None:
    """The proxy kubectl would use for `server`, from the environment; None for none."""
    parts = urlsplit(server)
    host = (parts.hostname or "").lower()
    if host == "localhost" or _is_loopback(host):
        return None
    if parts.scheme == "https":
        proxy = env.get("HTTPS_PROXY") or env.get("https_proxy")
    else:
        proxy = env.get("HTTP_PROXY") or env.get("http_proxy")
    if not proxy:
        return None
    if _bypassed(host, parts.port, env.get("NO_PROXY") or env.get("no_proxy") or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """NO_PROXY as Go reads it: `*`; an IP or CIDR; a domain, matching its subdomains too (a
    leading `.` or `*.` is the same); each optionally with `:port`."""
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        with contextlib.suppress(ValueError):
            if "/" in entry:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
                continue
        name, _, entry_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
        if entry_port and str(port or "") != entry_port:
            continue
        name = name.strip("[]").removeprefix("*").removeprefix(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def _has_port(entry: str) -> bool:
    head, sep, tail = entry.rpartition(":")
    return bool(sep) and tail.isdigit() and (entry.count(":") == 1 or head.endswith("]"))


def _iso(value: object) -> str:
    """Dates in a body (YAML reads `2024-01-01` as one) as the client serialised them."""
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot be sent as JSON")
