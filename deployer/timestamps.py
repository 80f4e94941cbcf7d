"""Timestamps other services send (the Kubernetes API, DigitalOcean), read the one way."""

from __future__ import annotations

from datetime import UTC, datetime


def parse(value: object) -> datetime | None:
    """An RFC 3339 / ISO 8601 time as an aware datetime (UTC when it names no zone); None for
    anything that is not one. Python 3.11 reads the `Z` suffix and truncates nanoseconds."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
