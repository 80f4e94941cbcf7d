"""A small HTTPS API server for the transport's and the kubeconfig reader's tests: a test CA made
with the openssl CLI, a server certificate for `localhost` and `api.test` only (so 127.0.0.1 needs
tls-server-name), a client certificate, and a handler that serves one finished Deployment (get,
list, watch) and records who asked what."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.unit.fake_cluster import NS, deployment, replicaset


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # signs nothing here: a CA the server's certificate does not chain to

    def b64(self, path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()


def make_pki(directory: Path) -> Pki:
    def run(*argv: str) -> None:
        subprocess.run(["openssl", *argv], check=True, capture_output=True, cwd=directory)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        run("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
            "-subj", f"/CN={ca}")  # fmt: skip
    leaves = {
        "server": ("/CN=api", "subjectAltName=DNS:localhost,DNS:api.test"),
        "client": ("/CN=djk-test/O=testers", "extendedKeyUsage=clientAuth"),
    }
    for leaf, (subject, extension) in leaves.items():
        (directory / f"{leaf}.ext").write_text(extension + "\n")
        run("req", *ec, "-keyout", f"{leaf}.key", "-out", f"{leaf}.csr", "-subj", subject)
        run("x509", "-req", "-in", f"{leaf}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{leaf}.crt", "-days", "2", "-extfile", f"{leaf}.ext")  # fmt: skip
    return Pki(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.crt",
    )


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str
    client_cn: str
    user_agent: str
    body: bytes


@dataclass
class FakeApi:
    port: int
    seen: list[Seen] = field(default_factory=list)
    answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


def _finished() -> dict[str, Any]:
    return deployment("web", updated=2, available=2, total=2)


def _handler(api: FakeApi, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            peer = (
                self.connection.getpeercert()
                if isinstance(self.connection, ssl.SSLSocket)
                else None
            )
            cn = ""
            for rdn in (peer or {}).get("subject", ()):
                for pair in rdn:
                    cn = str(pair[1]) if pair[0] == "commonName" else cn
            api.seen.append(
                Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    self.headers.get("Authorization") or "",
                    cn,
                    self.headers.get("User-Agent") or "",
                    self.rfile.read(length) if length else b"",
                )
            )
            query = parse_qs(parts.query)
            if parts.path in api.answers:
                status, body = api.answers[parts.path]
                return self._json(status, body)
            base = f"/apis/apps/v1/namespaces/{NS}"
            if query.get("watch") == ["true"]:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                stop.wait(float(query.get("timeoutSeconds", ["5"])[0]))
                self.wfile.write(b"0\r\n\r\n")
                return None
            if parts.path == f"{base}/deployments/web":
                return self._json(200, _finished())
            items = {
                f"{base}/deployments": [_finished()],
                f"{base}/replicasets": [replicaset("web", 2)],
                f"/api/v1/namespaces/{NS}/pods": [],
            }.get(parts.path)
            if items is not None:
                return self._json(200, {"metadata": {"resourceVersion": "7"}, "items": items})
            return self._json(404, {"kind": "Status", "message": f"{parts.path} not found"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

    return Handler


def serve(pki: Pki) -> Iterator[FakeApi]:
    """Serve on a free port of 127.0.0.1 until the generator is closed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(cafile=pki.ca)
    context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate is recorded when sent
    stop = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    api = FakeApi(server.server_address[1])
    server.RequestHandlerClass = _handler(api, stop)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
