"""Contract checks against DigitalOcean's own OpenAPI spec (the subset of every endpoint we call).

`check_exchange(entry)` validates one request/response pair, as logged by the stand-in
(stack/digitalocean.py), with openapi-core: the request's path, query, body and security
against the operation, the response's status, headers and body against its responses. A path
outside the subset fails: there is no list of exceptions any more.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

_REPO = Path(__file__).resolve().parents[1]
# The vendored subset (Apache-2.0; tests/spec/digitalocean-openapi/README.md says how it was cut);
# DJK_DO_OPENAPI points at another copy, e.g. a newer cut.
SPEC_PATH = Path(
    os.environ.get("DJK_DO_OPENAPI") or _REPO / "tests/spec/digitalocean-openapi/subset.yaml"
)
# The spec's only server; the stand-in's loopback address is mapped onto it.
SPEC_SERVER = "https://api.digitalocean.com"


@functools.cache
def spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_PATH))


def as_request(entry: dict[str, Any]) -> MockRequest:
    query = parse_qs(entry["query"], keep_blank_values=True)
    body = entry.get("body") or ""
    return MockRequest(
        SPEC_SERVER,
        entry["method"],
        entry["path"],
        args={k: v[0] if len(v) == 1 else v for k, v in query.items()},
        headers=entry["headers"],
        data=body.encode() if body else None,
        content_type=entry["headers"].get("content-type", "application/json").split(";")[0],
    )


def as_response(entry: dict[str, Any]) -> MockResponse:
    headers = entry["response_headers"]
    return MockResponse(
        entry["response_body"].encode(),
        status_code=entry["status"],
        headers=headers,
        content_type=headers.get("content-type", "").split(";")[0] or None,
    )


def check_request(entry: dict[str, Any]) -> None:
    """Raise if the logged request breaks the spec (path, parameters, body, bearer auth)."""
    spec().validate_request(as_request(entry))


def check_exchange(entry: dict[str, Any]) -> None:
    """Raise if the logged request or the stand-in's response to it breaks the spec."""
    request = as_request(entry)
    spec().validate_request(request)
    spec().validate_response(request, as_response(entry))


# -- GitHub (tests/spec/github-openapi: the issue-comment calls of the preview comment) ----------

GITHUB_SPEC_PATH = Path(
    os.environ.get("DJK_GITHUB_OPENAPI") or _REPO / "tests/spec/github-openapi/subset.yaml"
)
GITHUB_SPEC_SERVER = "https://api.github.com"


@functools.cache
def github_spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(GITHUB_SPEC_PATH))


def _github_request(entry: dict[str, Any]) -> MockRequest:
    query = parse_qs(entry["query"], keep_blank_values=True)
    body = entry.get("body") or ""
    return MockRequest(
        GITHUB_SPEC_SERVER,
        entry["method"].lower(),
        entry["path"],
        args={k: v[0] if len(v) == 1 else v for k, v in query.items()},
        headers=entry["headers"],
        data=body.encode() if body else None,
        content_type=entry["headers"].get("content-type", "application/json").split(";")[0],
    )


def check_github_request(entry: dict[str, Any]) -> None:
    """Raise if a request logged by the GitHub stand-in (stack/github_api.py) breaks the spec."""
    github_spec().validate_request(_github_request(entry))


def check_github_exchange(entry: dict[str, Any]) -> None:
    """Raise if the request or the stand-in's response to it breaks GitHub's description."""
    request = _github_request(entry)
    github_spec().validate_request(request)
    github_spec().validate_response(request, as_response(entry))
