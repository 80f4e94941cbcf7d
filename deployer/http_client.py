"""What the HTTP clients of outside services share (DigitalOcean, GitHub): bounded retries that
honour a service's rate-limit answer, and a `requests` session that retries with them. Each
service's module keeps its own requests, answers and errors; this holds only the transport."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: `total` retries, exponential `backoff_factor`, each wait <= `max_wait`
    seconds and all waits of one request <= `max_total_wait` seconds."""

    total: int = 5
    backoff_factor: float = 1.0
    max_wait: float = 30.0
    max_total_wait: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)


class CappedRetry(Retry):
    """urllib3 Retry with capped waits, an injectable sleep, and a service's own rate-limit reset
    header (`reset_header`: seconds since the epoch) read on `limited_statuses`."""

    # 413 + retry-after is not something a request from us should ever loop on.
    RETRY_AFTER_STATUS_CODES = frozenset([429, 503])
    reset_header = "ratelimit-reset"
    limited_statuses: frozenset[int] = frozenset([429])

    def __init__(
        self,
        *args: Any,
        max_total_wait: float = 60.0,
        slept: float = 0.0,
        sleep_fn: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_total_wait = max_total_wait
        self.slept = slept
        self.sleep_fn = sleep_fn

    def new(self, **kw: Any) -> Self:
        # urllib3 rebuilds the object on every increment; carry our state across.
        kw.setdefault("max_total_wait", self.max_total_wait)
        kw.setdefault("slept", self.slept)
        kw.setdefault("sleep_fn", self.sleep_fn)
        return super().new(**kw)

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or self.slept >= self.max_total_wait

    def rate_limited(self, response: BaseHTTPResponse) -> bool:
        return response.status in self.limited_statuses

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        seconds = super().get_retry_after(response)
        if seconds is not None:
            return seconds
        reset = response.headers.get(self.reset_header)
        if self.rate_limited(response) and reset is not None and reset.strip().isdigit():
            return max(0.0, min(int(reset) - time.time(), self.retry_after_max))
        return None

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        wait = self.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = self.get_backoff_time()
        wait = max(0.0, min(wait, self.backoff_max, self.max_total_wait - self.slept))
        if wait > 0:
            self.sleep_fn(wait)
        self.slept += wait


class SessionClient:
    """An API client holding one session: closed by `close()` or at the end of a `with`."""

    _session: requests.Session

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def retrying_session(
    policy: RetryPolicy,
    *,
    methods: Collection[str],
    headers: Mapping[str, str],
    retry: type[CappedRetry] = CappedRetry,
) -> tuple[requests.Session, CappedRetry]:
    """A session that retries `methods` on 429 and 5xx by `policy`, with `headers` on every
    request; and its Retry (tests read what it slept)."""
    retrying = retry(
        total=policy.total,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset(methods),
        backoff_factor=policy.backoff_factor,
        backoff_max=policy.max_wait,
        retry_after_max=policy.max_wait,
        respect_retry_after_header=True,
        raise_on_status=False,  # hand back the last response so its body names the error
        max_total_wait=policy.max_total_wait,
        sleep_fn=policy.sleep,
    )
    session = requests.Session()
    session.headers.update(headers)
    adapter = HTTPAdapter(max_retries=retrying)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session, retrying
