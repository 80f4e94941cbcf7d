"""The DigitalOcean stand-in for cases that get past preflight (their cluster is never found, so
they stop before any docker or cluster work), and the totals by class at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stack.digitalocean import FakeDigitalOcean
from tests.hostile.support import TALLY, TOKEN


@pytest.fixture(scope="session")
def digitalocean() -> Iterator[str]:
    with FakeDigitalOcean(TOKEN, cluster_name="prod") as fake:
        yield fake.url


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    terminalreporter.section("hostile inputs: totals by class")
    terminalreporter.write_line(
        f"{'class':40} {'cases':>5} {'exit!=0':>7} {'1-line':>6} {'tracebk':>7} {'leaks':>5} {'inject':>6}"
    )
    for name, t in sorted(TALLY.items()):
        terminalreporter.write_line(
            f"{name:40} {t.cases:5} {t.nonzero:7} {t.one_line_errors:6} {t.tracebacks:7} "
            f"{t.leaks:5} {t.injections:6}"
        )
    totals = [
        sum(getattr(t, f) for t in TALLY.values())
        for f in ("cases", "nonzero", "one_line_errors", "tracebacks", "leaks", "injections")
    ]
    terminalreporter.write_line(
        f"{'total':40} {totals[0]:5} {totals[1]:7} {totals[2]:6} {totals[3]:7} {totals[4]:5} {totals[5]:6}"
    )
    terminalreporter.write_line(
        "1-line: non-zero exits whose error is one line naming the input or file:line; a failing "
        "case fails its test (no case here is allowed a traceback, leak or injection)."
    )
