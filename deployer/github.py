"""Everything the user sees: GitHub workflow commands, outputs and job summary, or plain terminal text.

The only module that prints. In GitHub Actions (`github=True`) it speaks workflow commands; on a
terminal the same facts come out as plain lines. Every line goes through `redact`, so a secret
registered with `mask` never reaches the log, even on a terminal where `::add-mask::` means nothing.
"""

from __future__ import annotations

import contextlib
import secrets as _random
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


class Reporter:
    def __init__(
        self,
        *,
        github: bool,
        output_file: Path | None = None,
        summary_file: Path | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.github = github
        self.output_file = output_file
        self.summary_file = summary_file
        self.stream = stream or sys.stdout
        self._secrets: list[str] = []
        self._in_group = False
        self.outputs: dict[str, str] = {}

    # -- secrets ---------------------------------------------------------------------------
    def mask(self, value: str) -> None:
        """Register a secret: masked by the runner from now on, and redacted from our own output."""
        for raw in {value, *value.splitlines()}:
            part = raw.strip()
            if len(part) < 4 or part in self._secrets:
                continue  # the runner ignores very short masks too; they would redact everything
            self._secrets.append(part)
            if self.github:
                # stdout and stderr are parsed alike; flush so the mask is in place before any use.
                self.stream.write(f"::add-mask::{_escape_data(part)}\n")
                self.stream.flush()
        self._secrets.sort(key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- log lines -------------------------------------------------------------------------
    def line(self, text: str = "") -> None:
        self.stream.write(self.redact(text) + "\n")
        self.stream.flush()

    def debug(self, text: str) -> None:
        if self.github:
            self.line(f"::debug::{_escape_data(self.redact(text))}")

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        started = time.monotonic()
        if self.github:
            self.line(f"::group::{title}")
        else:
            self.line(f"==> {title}")
        self._in_group = True
        try:
            yield
        finally:
            self._in_group = False
            if self.github:
                self.line("::endgroup::")
            else:
                self.line(f"    ({time.monotonic() - started:.1f}s)")

    @contextlib.contextmanager
    def untrusted(self) -> Iterator[None]:
        """Output of other programs (docker build, logs) must not be parsed as workflow commands."""
        if not self.github:
            yield
            return
        token = _random.token_hex(16)
        self.line(f"::stop-commands::{token}")
        try:
            yield
        finally:
            self.line(f"::{token}::")

    def annotate(
        self, level: str, message: str, *, title: str = "", file: str = "", line: int | None = None
    ) -> None:
        message = self.redact(message)
        if not self.github:
            where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
            self.line(f"{level}: {where}{message}")
            return
        props = []
        if title:
            props.append(f"title={_escape_property(title)}")
        if file:
            props.append(f"file={_escape_property(file)}")
            if line:
                props.append(f"line={line}")
        head = f"::{level} {','.join(props)}::" if props else f"::{level}::"
        self.line(head + _escape_data(message))

    def error(self, message: str, **where: object) -> None:
        self.annotate("error", message, **where)  # type: ignore[arg-type]

    def warning(self, message: str, **where: object) -> None:
        self.annotate("warning", message, **where)  # type: ignore[arg-type]

    def notice(self, message: str, **where: object) -> None:
        self.annotate("notice", message, **where)  # type: ignore[arg-type]

    # -- outputs and summary ---------------------------------------------------------------
    def set_output(self, name: str, value: str) -> None:
        value = self.redact(value)
        self.outputs[name] = value
        if self.output_file is None:
            return
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        with self.output_file.open("a", encoding="utf-8") as f:
            f.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")

    def summary(self, markdown: str) -> None:
        """Append to the job summary (GitHub) — on a terminal the report already said it all."""
        if self.summary_file is None:
            return
        with self.summary_file.open("a", encoding="utf-8") as f:
            f.write(self.redact(markdown).rstrip("\n") + "\n\n")
