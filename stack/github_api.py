"""A GitHub REST API stand-in: the issue-comment calls the preview comment makes
(tests/spec/github-openapi).

Standard library only, like the DigitalOcean stand-in it is modelled on (stack/digitalocean.py).

    python3 stack/github_api.py --port-file F --token-file T [--read-only]

binds 127.0.0.1 (port 0 unless --port), writes the port to F once it listens, logs one line per
request to stderr and stops on SIGTERM/SIGINT. In-process (unit and e2e tests):
`FakeGitHub(token)` as a context manager; `fake.url` is the API root to give the client.

Behaviour, as the real API where we know it:
- `Authorization: Bearer <token>` (or `token <token>`) or 401 `{"message": "Bad credentials"}`.
- `GET /repos/{owner}/{repo}/issues/{n}/comments?per_page=&page=`: oldest first, `per_page`
  1-100 (default 30), `page` from 1; a `Link` header with absolute `first`/`prev`/`next`/`last`
  URLs as GitHub writes them (no header when one page holds everything). Out-of-range values get
  422 here (GitHub clamps), so a client bug shows up.
- `POST .../issues/{n}/comments` `{"body"}` -> 201 with the comment and `Location`;
  `PATCH .../issues/comments/{id}` `{"body"}` -> 200; an unknown comment -> 404. A body over
  65536 characters -> 422 "body is too long (maximum is 65536 characters)".
- Read-only token (a fork's pull request): POST and PATCH -> 403
  `{"message": "Resource not accessible by integration"}`; listing still works. A locked
  conversation: POST -> 403 "Unable to create comment because issue is locked."
- `x-ratelimit-*` and `x-github-request-id` on every response.

Control endpoints on the same server (no auth; never logged as API requests):
- `POST /_fake/faults` JSON, any of: `"reset": true` (forget comments, faults, read-only and the
  request log; applied first), `"read_only": bool`, `"locked": bool`, `"faults": [{"status", "count", "method",
  "path", "retry_after"}]` (the next `count` requests matching `method`/`path` substring get
  `status`), `"comments": [{"repository", "number", "body", "login"}]` (seed comments, e.g.
  someone else's, or many to force pages).
- `GET /_fake/requests` - the API requests so far (Authorization redacted, with response bodies);
  `GET /_fake/comments` - every comment held.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BODY_LIMIT = 65536
RATE_LIMIT = 5000
_LIST = re.compile(r"^/repos/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)/issues/([0-9]+)/comments$")
_ONE = re.compile(r"^/repos/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)/issues/comments/([0-9]+)$")
DOCS = "https://docs.github.com/rest/issues/comments"
BOT_LOGIN = "github-actions[bot]"


@dataclass
class FaultRule:
    status: int
    count: int = 1
    method: str = ""
    path: str = ""
    retry_after: int | None = None

    def matches(self, method: str, path: str) -> bool:
        return (not self.method or self.method == method) and self.path in path


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"


def _json(status: int, body: object, **headers: str) -> _Reply:
    return _Reply(status, json.dumps(body).encode(), dict(headers))


def _message(status: int, message: str, docs: str = DOCS) -> _Reply:
    return _json(status, {"message": message, "documentation_url": docs, "status": str(status)})


class FakeGitHub:
    """The stand-in. Thread-safe; `start()`/`stop()` or use it as a context manager."""

    def __init__(
        self,
        token: str,
        *,
        read_only: bool = False,
        port: int = 0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.token = token
        self.log = log or (lambda line: None)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self.link_base: str | None = None  # tests point next-page links elsewhere with it
        self._reset()
        self.read_only = read_only

    def _reset(self) -> None:
        self.comments: list[dict[str, Any]] = []
        self.faults: list[FaultRule] = []
        self.requests: list[dict[str, Any]] = []
        self.read_only = False
        self.locked = False
        self.next_id = 1000
        self.link_base = None

    # -- lifecycle

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeGitHub:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state

    def add_comment(
        self, repository: str, number: int, body: str, login: str = BOT_LOGIN
    ) -> dict[str, Any]:
        with self._lock:
            self.next_id += 1
            cid = self.next_id
        owner, repo = repository.split("/")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        comment = {
            "id": cid,
            "node_id": f"IC_fake{cid}",
            "url": f"{self.url}/repos/{owner}/{repo}/issues/comments/{cid}",
            "html_url": f"https://github.com/{owner}/{repo}/pull/{number}#issuecomment-{cid}",
            "body": body,
            "user": _user(login),
            "created_at": now,
            "updated_at": now,
            "issue_url": f"{self.url}/repos/{owner}/{repo}/issues/{number}",
            "author_association": "NONE" if login == BOT_LOGIN else "CONTRIBUTOR",
            "performed_via_github_app": None,
            "_repository": repository,
            "_number": number,
        }
        with self._lock:
            self.comments.append(comment)
        return comment

    def comments_on(self, repository: str, number: int) -> list[dict[str, Any]]:
        with self._lock:
            return [
                _public(c)
                for c in self.comments
                if (c["_repository"], c["_number"]) == (repository, number)
            ]

    def control(self, method: str, path: str, body: bytes) -> _Reply:
        if method == "GET" and path == "/_fake/requests":
            with self._lock:
                return _json(200, list(self.requests))
        if method == "GET" and path == "/_fake/comments":
            with self._lock:
                return _json(200, [_public(c) for c in self.comments])
        if method == "POST" and path == "/_fake/faults":
            try:
                asked = json.loads(body or b"{}")
                if asked.get("reset"):
                    with self._lock:
                        self._reset()
                if "read_only" in asked:
                    self.read_only = bool(asked["read_only"])
                if "locked" in asked:
                    self.locked = bool(asked["locked"])
                for rule in asked.get("faults", []):
                    with self._lock:
                        self.faults.append(FaultRule(**rule))
                for seed in asked.get("comments", []):
                    self.add_comment(
                        seed["repository"],
                        int(seed["number"]),
                        seed["body"],
                        seed.get("login", BOT_LOGIN),
                    )
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                return _json(400, {"error": str(exc)})
            return _json(200, {"read_only": self.read_only, "faults": len(self.faults)})
        return _json(404, {"error": "no such control endpoint"})

    # -- requests

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> _Reply:
        parts = urlsplit(target)
        request_id = uuid.uuid4().hex[:16].upper()
        rule = self._next_fault(method, parts.path)
        auth = headers.get("authorization", "")
        auth_ok = auth in (f"Bearer {self.token}", f"token {self.token}")
        if rule is not None:
            reply = _message(rule.status, "fault injected by the stand-in")
            if rule.retry_after is not None:
                reply.headers["retry-after"] = str(rule.retry_after)
        elif not auth_ok:
            reply = _message(401, "Bad credentials", "https://docs.github.com/rest")
        else:
            reply = self._route(method, parts.path, parts.query, body)
        reply.headers.update(
            {
                "x-ratelimit-limit": str(RATE_LIMIT),
                "x-ratelimit-remaining": str(RATE_LIMIT - 1),
                "x-ratelimit-reset": str(int(time.time()) + 3600),
                "x-github-request-id": request_id,
            }
        )
        entry = {
            "time": time.time(),
            "method": method,
            "path": parts.path,
            "query": parts.query,
            "headers": {
                k: ("<redacted>" if k == "authorization" else v) for k, v in headers.items()
            },
            "body": body.decode(errors="replace"),
            "auth": "ok" if auth_ok else ("wrong" if auth else "missing"),
            "status": reply.status,
            "fault": rule is not None,
            "response_headers": {"content-type": reply.content_type, **reply.headers},
            "response_body": reply.body.decode(),
        }
        with self._lock:
            self.requests.append(entry)
        return reply

    def _next_fault(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.faults:
                if rule.matches(method, path):
                    rule.count -= 1
                    if rule.count <= 0:
                        self.faults.remove(rule)
                    return rule
        return None

    def _route(self, method: str, path: str, query: str, body: bytes) -> _Reply:
        listing, one = _LIST.match(path), _ONE.match(path)
        if listing and method == "GET":
            repository = f"{listing.group(1)}/{listing.group(2)}"
            return self._list(repository, int(listing.group(3)), path, query)
        if listing and method == "POST":
            text = _body_text(body)
            if isinstance(text, _Reply):
                return text
            if self.read_only:
                return _message(
                    403, "Resource not accessible by integration", f"{DOCS}#create-an-issue-comment"
                )
            if self.locked:
                return _message(403, "Unable to create comment because issue is locked.")
            comment = self.add_comment(
                f"{listing.group(1)}/{listing.group(2)}", int(listing.group(3)), text
            )
            return _json(201, _public(comment), location=comment["url"])
        if one and method == "PATCH":
            text = _body_text(body)
            if isinstance(text, _Reply):
                return text
            if self.read_only:
                return _message(
                    403, "Resource not accessible by integration", f"{DOCS}#update-an-issue-comment"
                )
            repository, cid = f"{one.group(1)}/{one.group(2)}", int(one.group(3))
            with self._lock:
                found = next(
                    (c for c in self.comments if c["id"] == cid and c["_repository"] == repository),
                    None,
                )
                if found is None:
                    return _message(404, "Not Found")
                found["body"] = text
                found["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                return _json(200, _public(found))
        if listing or one:
            return _message(404, "Not Found")  # GitHub answers an unrouted method 404 too
        return _message(404, "Not Found")

    def _list(self, repository: str, number: int, path: str, query: str) -> _Reply:
        params = dict(parse_qsl(query, keep_blank_values=True))
        try:
            per_page = int(params.get("per_page", "30"))
            page = int(params.get("page", "1"))
        except ValueError:
            return _invalid("per_page and page must be integers")
        if not 1 <= per_page <= 100 or page < 1:
            return _invalid("per_page must be 1-100 and page at least 1")
        held = self.comments_on(repository, number)
        last = max(1, -(-len(held) // per_page))
        chunk = held[(page - 1) * per_page : page * per_page]
        reply = _json(200, chunk)
        if last > 1:
            base = f"{self.link_base or self.url}{path}"

            def link(n: int, rel: str) -> str:
                return f'<{base}?per_page={per_page}&page={n}>; rel="{rel}"'

            rels = []
            if page > 1:
                rels += [link(page - 1, "prev")]
            if page < last:
                rels += [link(page + 1, "next"), link(last, "last")]
            if page > 1:
                rels += [link(1, "first")]
            reply.headers["link"] = ", ".join(rels)
        return reply


def _invalid(message: str) -> _Reply:
    return _json(
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": "IssueComment", "code": "invalid", "message": message}],
            "documentation_url": DOCS,
        },
    )


def _body_text(body: bytes) -> str | _Reply:
    try:
        data = json.loads(body or b"")
    except ValueError:
        return _message(400, "Problems parsing JSON")
    text = data.get("body") if isinstance(data, dict) else None
    if not isinstance(text, str):
        return _json(
            422,
            {
                "message": 'Invalid request.\n\n"body" wasn\'t supplied.',
                "documentation_url": DOCS,
                "status": "422",
            },
        )
    if len(text) > BODY_LIMIT:
        return _json(
            422,
            {
                "message": "Validation Failed",
                "errors": [
                    {
                        "resource": "IssueComment",
                        "code": "custom",
                        "field": "body",
                        "message": f"body is too long (maximum is {BODY_LIMIT} characters)",
                    }
                ],
                "documentation_url": f"{DOCS}#create-an-issue-comment",
                "status": "422",
            },
        )
    return text


def _user(login: str) -> dict[str, Any]:
    base = f"https://api.github.com/users/{login}"
    return {
        "login": login,
        "id": 41898282 if login == BOT_LOGIN else 1,
        "node_id": "MDM6Qm90NDE4OTgyODI=",
        "avatar_url": "https://avatars.githubusercontent.com/in/15368?v=4",
        "gravatar_id": "",
        "url": base,
        "html_url": f"https://github.com/apps/{login}",
        "followers_url": f"{base}/followers",
        "following_url": f"{base}/following{{/other_user}}",
        "gists_url": f"{base}/gists{{/gist_id}}",
        "starred_url": f"{base}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{base}/subscriptions",
        "organizations_url": f"{base}/orgs",
        "repos_url": f"{base}/repos",
        "events_url": f"{base}/events{{/privacy}}",
        "received_events_url": f"{base}/received_events",
        "type": "Bot" if login.endswith("[bot]") else "User",
        "site_admin": False,
    }


def _public(comment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in comment.items() if not k.startswith("_")}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-github/1"

    def _serve(self) -> None:
        fake: FakeGitHub = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        if path.startswith("/_fake/"):
            reply = fake.control(self.command, path, body)
        else:
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = fake.handle(self.command, self.path, headers, body)
            fake.log(f"{self.command} {path} -> {reply.status}")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per API request is logged by _serve, without headers


def _stderr(line: str) -> None:
    print(f"fake-github: {line}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _running(args: argparse.Namespace) -> Iterator[FakeGitHub]:
    token = args.token_file.read_text().strip()
    fake = FakeGitHub(token, read_only=args.read_only, port=args.port, log=_stderr)
    try:
        yield fake
    finally:
        fake._httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token-file", type=Path, required=True, help="a file holding the token")
    parser.add_argument("--read-only", action="store_true", help="refuse writes (a fork's token)")
    args = parser.parse_args(argv)
    try:
        with _running(args) as fake:
            tmp = args.port_file.with_name(args.port_file.name + ".tmp")
            tmp.write_text(f"{fake.port}\n")
            os.replace(tmp, args.port_file)
            _stderr(f"listening on {fake.url}")

            def stop(signum: int, frame: object) -> None:
                threading.Thread(target=fake._httpd.shutdown, daemon=True).start()

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            fake._httpd.serve_forever()
            _stderr("stopped")
    except (OSError, ValueError) as exc:
        _stderr(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
