"""Pure checks of what an HTTP API client is handed (DigitalOcean's, GitHub's): its root URL, its
bearer token, and where a link points. Light: no HTTP library is imported here."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from deployer.errors import InputError

_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: anything else breaks the header


def bearer_token(token: str, *, where: str, empty: str) -> str:
    """The token, stripped; an InputError at `where` (`empty`: what to say when there is none)
    when it cannot be one header value. Never echoed: requests would put the whole header value
    into its exception."""
    token = token.strip()
    if not token:
        raise InputError(empty, where=where)
    if not _TOKEN_CHARS.match(token):
        raise InputError(
            "contains spaces, line breaks or non-ASCII characters; paste the token alone",
            where=where,
        )
    return token


def api_root(api_url: str, *, where: str, hint: str) -> str:
    """An API's root URL without a trailing slash; an InputError at `where` unless http(s) with
    a host and no query or fragment."""
    url = api_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise InputError(f"`{api_url}` is not an http(s) URL", where=where, hint=hint)
    return url


def origin(url: str) -> tuple[str, str]:
    """Scheme and host of `url`: a next-page link must stay where the API is."""
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()
