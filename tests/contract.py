"""Contract checks against DigitalOcean's own OpenAPI spec (our four-endpoint subset).

`check_exchange(entry)` validates one request/response pair, as logged by the stand-in
(tests/fakes/digitalocean.py), with openapi-core: the request's path, query and security
against the operation's parameters, the response's status, headers and body against its
responses. Paths outside the subset are refused unless listed in `OUTSIDE_SPEC`.
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
_SPEC_CANDIDATES = [
    *([Path(os.environ["DJK_DO_OPENAPI"])] if os.environ.get("DJK_DO_OPENAPI") else []),
    _REPO
    / "tests/spec/digitalocean-openapi/kubernetes-subset.yaml",  # vendored copy (Apache-2.0, see README)
    _REPO.parent / "shared/digitalocean-openapi/kubernetes-subset.yaml",  # next to the checkout
]
SPEC_PATH = next((p for p in _SPEC_CANDIDATES if p.is_file()), _SPEC_CANDIDATES[-1])
# The spec's only server; the stand-in's loopback address is mapped onto it.
SPEC_SERVER = "https://api.digitalocean.com"
# Called by the client but not in our subset of the spec (checked by hand in the tests).
OUTSIDE_SPEC = frozenset({"/v2/registry/docker-credentials"})


@functools.cache
def spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPEC_PATH))


def as_request(entry: dict[str, Any]) -> MockRequest:
    query = parse_qs(entry["query"], keep_blank_values=True)
    return MockRequest(
        SPEC_SERVER,
        entry["method"],
        entry["path"],
        args={k: v[0] if len(v) == 1 else v for k, v in query.items()},
        headers=entry["headers"],
    )


def as_response(entry: dict[str, Any]) -> MockResponse:
    headers = entry["response_headers"]
    return MockResponse(
        entry["response_body"].encode(),
        status_code=entry["status"],
        headers=headers,
        content_type=headers["content-type"].split(";")[0],
    )


def check_request(entry: dict[str, Any]) -> None:
    """Raise if the logged request breaks the spec (path, parameters, bearer auth)."""
    if entry["path"] in OUTSIDE_SPEC:
        return
    spec().validate_request(as_request(entry))


def check_exchange(entry: dict[str, Any]) -> None:
    """Raise if the logged request or the stand-in's response to it breaks the spec."""
    if entry["path"] in OUTSIDE_SPEC:
        return
    request = as_request(entry)
    spec().validate_request(request)
    spec().validate_response(request, as_response(entry))
