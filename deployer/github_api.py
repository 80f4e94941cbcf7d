"""GitHub's REST API: the only module that speaks HTTP to GitHub (deployer/github.py writes
workflow commands, it calls no API).

What it does: the few calls that keep one preview comment on a pull request (`dry-run` with
`github-token`): list the pull request's comments, page by page (`Link: rel="next"`, followed
only to the API's own origin: the session carries the token), create one, update one. Every
pull request is an issue; its conversation is served by the issue-comment endpoints. The calls
and their answers are the ones in tests/spec/github-openapi/subset.yaml, cut from GitHub's
published description.

Retries: one `requests.Session` with the DigitalOcean client's bounded `urllib3.Retry` (each
wait and their sum capped, `retry-after` honoured), retrying reads and the update (a PATCH sets
the same body again) on 429/500/502/503/504 and connection errors; a create is retried only when
it could not connect, so a comment is never posted twice. A 429 or 403 with
`x-ratelimit-remaining: 0` waits until `x-ratelimit-reset`, within the same caps.

Errors are our own: a refused token names the `github-token` input and the permission it needs
(`ReadOnlyToken` for GitHub's "Resource not accessible by integration", which the caller turns
into a notice for a fork's pull request), anything else still failing after the retries is a
`ServiceError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from urllib3.response import BaseHTTPResponse

from deployer import __version__
from deployer.endpoints import api_root, bearer_token, origin
from deployer.errors import InputError, ReadOnlyToken, ServiceError
from deployer.http_client import CappedRetry, RetryPolicy, SessionClient, retrying_session

SERVICE = "GitHub API"
DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
USER_AGENT = f"django-k8s-deploy/{__version__}"
PER_PAGE = 100  # GitHub's maximum for this list
MAX_PAGES = 100  # 10,000 comments: past that, something loops
PERMISSION = "pull-requests: write"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
READ_ONLY_MESSAGE = "Resource not accessible by integration"


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    html_url: str


class _GitHubRetry(CappedRetry):
    """Retries as the DigitalOcean client does, reading GitHub's rate-limit headers instead."""

    # A 403 with retry-after is GitHub's secondary rate limit; without it, a refusal (final).
    RETRY_AFTER_STATUS_CODES = frozenset([403, 429, 503])
    reset_header = "x-ratelimit-reset"
    limited_statuses = frozenset([403, 429])

    def rate_limited(self, response: BaseHTTPResponse) -> bool:
        limited = response.headers.get("x-ratelimit-remaining") == "0"
        return super().rate_limited(response) and limited


class GitHubApi(SessionClient):
    """A client for the issue-comment calls the pull request preview needs."""

    def __init__(
        self,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        token = bearer_token(
            token, where="github-token", empty="is empty; pass ${{ github.token }}"
        )
        self.api_url = api_root(
            api_url,
            where="GITHUB_API_URL",
            hint=f"The runner sets it; outside Actions leave it unset ({DEFAULT_API_URL}).",
        )
        self.timeout = timeout
        self._session, self._retry = retrying_session(
            retry or RetryPolicy(),
            methods=["GET", "PATCH"],
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": USER_AGENT,
            },
            retry=_GitHubRetry,
        )

    # -- issue comments ---------------------------------------------------------------------

    def comments(self, repository: str, number: int) -> Iterator[Comment]:
        """The pull request's comments, oldest first, page after page as they are consumed."""
        url: str | None = f"{self._repo_url(repository)}/issues/{int(number)}/comments"
        params: dict[str, Any] | None = {"per_page": PER_PAGE}
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) >= MAX_PAGES:
                raise ServiceError(SERVICE, f"comment list pagination does not end ({url})")
            seen.add(url)
            response = self._call("GET", url, "list the pull request's comments", params=params)
            params = None  # the next link already carries the query
            body = _json(response)
            if not isinstance(body, list):
                raise ServiceError(SERVICE, "the comment list is not a JSON array")
            for item in body:
                yield _comment(item)
            url = self._next_page(response)

    def create_comment(self, repository: str, number: int, body: str) -> Comment:
        url = f"{self._repo_url(repository)}/issues/{int(number)}/comments"
        response = self._call("POST", url, "comment on the pull request", json={"body": body})
        return _comment(_json(response))

    def update_comment(self, repository: str, comment_id: int, body: str) -> Comment | None:
        """The comment with its new body; None when it is gone (deleted since it was listed)."""
        url = f"{self._repo_url(repository)}/issues/comments/{int(comment_id)}"
        response = self._call(
            "PATCH", url, "update the preview comment", json={"body": body}, gone=True
        )
        return None if response.status_code == 404 else _comment(_json(response))

    # -- HTTP -------------------------------------------------------------------------------

    def _repo_url(self, repository: str) -> str:
        if not _REPOSITORY.match(repository):
            raise InputError(
                f"`{repository}` is not owner/name",
                where="GITHUB_REPOSITORY",
                hint="Run in Actions.",
            )
        owner, name = repository.split("/")
        return f"{self.api_url}/repos/{quote(owner)}/{quote(name)}"

    def _call(
        self,
        method: str,
        url: str,
        action: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        gone: bool = False,
    ) -> requests.Response:
        """The answer of a call that succeeded (or, with `gone`, found nothing: 404)."""
        try:
            response = self._session.request(
                method, url, params=params, json=json, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise ServiceError(
                SERVICE,
                f"could not {action}: {_reason(exc)} (after retries)",
                hint=f"Check that {self.api_url} is reachable from this runner.",
            ) from None
        if response.ok or (gone and response.status_code == 404):
            return response
        raise _http_error(response, action)

    def _next_page(self, response: requests.Response) -> str | None:
        nxt = response.links.get("next", {}).get("url")
        if not nxt:
            return None
        if origin(nxt) != origin(self.api_url):
            raise ServiceError(SERVICE, f"next-page link points elsewhere: {nxt!r}")
        return str(nxt)


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ServiceError(
            SERVICE,
            f"expected JSON from {urlsplit(response.url).path}, got "
            f"{response.headers.get('content-type', 'no content type')}",
        ) from None


def _comment(item: object) -> Comment:
    if not isinstance(item, dict):
        raise ServiceError(SERVICE, "a comment is not a JSON object")
    cid, body, url = item.get("id"), item.get("body"), item.get("html_url")
    if isinstance(cid, bool) or not isinstance(cid, int) or not isinstance(url, str):
        raise ServiceError(SERVICE, "a comment has no integer `id` or no `html_url`")
    return Comment(cid, body if isinstance(body, str) else "", url)


def _http_error(response: requests.Response, action: str) -> InputError | ServiceError:
    try:
        body: object = response.json()
    except ValueError:
        body = None
    message = str(body.get("message") or "").strip() if isinstance(body, dict) else ""
    message = message or response.text.strip()[:200]
    status = response.status_code
    detail = f"HTTP {status}" + (f' "{message[:300]}"' if message else "")
    request_id = response.headers.get("x-github-request-id")
    detail += f", request id {request_id}" if request_id else ""
    if status == 401:
        return InputError(
            f"GitHub rejected the token as invalid or expired ({detail})",
            where="github-token",
            hint="Pass github-token: ${{ github.token }} (or a token that can write pull requests).",
        )
    attempts = _attempts(response)
    if status in (403, 429) and response.headers.get("x-ratelimit-remaining") == "0":
        return ServiceError(
            SERVICE,
            f"rate limited while trying to {action}: {detail}{attempts}",
            hint="Other jobs may share the token's rate limit; retry later.",
        )
    if status == 403 and READ_ONLY_MESSAGE.lower() in message.lower():
        return ReadOnlyToken(
            f"the token may not {action} ({detail})",
            where="github-token",
            hint=f"Give the job `permissions: {PERMISSION}`.",
        )
    if status == 403:  # e.g. a locked conversation, or a token without access to the repository
        return InputError(
            f"GitHub refused to {action} ({detail})",
            where="github-token",
            hint="Check that the pull request's conversation is not locked and that the token "
            f"can write to this repository's pull requests ({PERMISSION}).",
        )
    if status == 404:
        return InputError(
            f"GitHub does not show this token the pull request ({detail}) while trying to {action}",
            where="github-token",
            hint="Pass the job's own ${{ github.token }}, or a token with access to this repository.",
        )
    if status == 410:
        return InputError(
            f"GitHub says the conversation is gone ({detail}) while trying to {action}",
            where="github-token",
            hint="Issues may be disabled for this repository; remove github-token from the step.",
        )
    return ServiceError(SERVICE, f"could not {action}: {detail}{attempts}")


def _attempts(response: requests.Response) -> str:
    retries = getattr(response.raw, "retries", None)
    history = getattr(retries, "history", ())
    return f" (after {len(history) + 1} attempts)" if history else ""


def _reason(exc: requests.RequestException) -> str:
    """One short line: requests' messages repeat the pool, the URL and the exception chain."""
    cause: object = exc.args[0] if exc.args else exc
    cause = getattr(cause, "reason", None) or cause  # urllib3's MaxRetryError wraps the cause
    return re.sub(r"^(<[^>]+>|\w+\(host=[^)]*\)): ", "", str(cause))[:300]
