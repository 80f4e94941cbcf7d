#!/usr/bin/env python3
"""The check run of one job of this workflow run, found by the start of its name.

    gh api --paginate "repos/$REPOSITORY/actions/runs/$RUN_ID/jobs" --jq '.jobs[]' \
      | python3 scripts/job_check_run.py "End to end"

Reads the jobs API's job objects (one JSON object per line, or a {"jobs": [...]} page) and prints
the API path of the check run (`repos/…/check-runs/ID`) of the one job named `End to end…` — or
`CI / End to end…`, since in a run started by another workflow (`workflow_call`) the jobs API
names each called job `<caller job's name> / <job's name>`. No match, or more than one, is exit 1
with one line naming the jobs seen: an annotation check that finds nothing must not pass.
Standard library only (it runs on the bare runner).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

API_PREFIX = re.compile(r"^https?://[^/]+/(?:api/v3/)?")


def name_matches(name: str, prefix: str) -> bool:
    """`prefix…` itself, or `<caller> / prefix…` as the jobs API names it under workflow_call."""
    return re.fullmatch(rf"(?:.+ / )?{re.escape(prefix)}.*", name, re.DOTALL) is not None


def parse_jobs(text: str) -> list[dict[str, Any]]:
    """Job objects from JSON lines of jobs, or from whole pages ({"jobs": [...]})."""
    decoder = json.JSONDecoder()
    jobs: list[dict[str, Any]] = []
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return jobs
        value, index = decoder.raw_decode(text, index)
        found = value.get("jobs", [value]) if isinstance(value, dict) else value
        jobs += [j for j in found if isinstance(j, dict)]


def check_run_path(jobs: Iterable[Mapping[str, Any]], prefix: str) -> str:
    jobs = list(jobs)
    matching = [j for j in jobs if name_matches(str(j.get("name", "")), prefix)]
    if len(matching) != 1:
        seen = ", ".join(repr(j.get("name")) for j in jobs) or "none"
        how_many = "no job" if not matching else f"{len(matching)} jobs"
        raise LookupError(f"{how_many} named {prefix!r}… (or '<caller> / {prefix}…'); jobs: {seen}")
    url = str(matching[0].get("check_run_url", ""))
    path = API_PREFIX.sub("", url)
    if not re.fullmatch(r"repos/[^/\s]+/[^/\s]+/check-runs/[0-9]+", path):
        raise LookupError(
            f"job {matching[0].get('name')!r}: check_run_url {url!r} is not a check run"
        )
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: job_check_run.py NAME_PREFIX < jobs.json", file=sys.stderr)
        return 2
    try:
        print(check_run_path(parse_jobs(sys.stdin.read()), argv[1]))
    except json.JSONDecodeError as exc:
        print(f"job_check_run: the jobs answer is not JSON: {exc}", file=sys.stderr)
        return 2
    except LookupError as exc:
        print(f"job_check_run: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
