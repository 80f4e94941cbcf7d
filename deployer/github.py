"""Everything the user sees: GitHub workflow commands, outputs and job summary, or plain terminal text.

The only module that prints. In GitHub Actions (`github=True`) it speaks workflow commands; on a
terminal the same facts come out as plain lines. Every line goes through `redact`, so a secret
registered with `mask` never reaches the log, even on a terminal where `::add-mask::` means nothing.

Every line also goes through `neutralise` in `_write`, the one function that writes: text we did
not write ourselves (object names, digests, versions, other programs' output, error texts) can
neither start a new line nor be read by the runner as a workflow command. The runner reads a
command from `::name::` at the start of a line (after blanks) and from the legacy `##[name]`
anywhere in a line (actions/runner ActionCommand.TryParseV2 / TryParse), so those are broken up,
and every line break (CR, LF, VT, FF, NEL, U+2028, U+2029, the file/group/record separators)
becomes a visible `⏎`, every other control character (ESC, NUL, BEL, DEL, C1) a `\ufffd`. Only `_command` writes a real `::name::`, with data it has neutralised.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import secrets as _random
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from deployer.report import Report

# Everything Python's str.splitlines() splits on: a superset of what the runner and browsers break on.
_LINE_BREAKS = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_SHOWN_BREAK = "\u23ce"  # ⏎
# Other control characters (ESC starts terminal sequences that recolour, hide or retitle; NUL,
# BEL, DEL, C1): shown as U+FFFD. TAB stays.
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f]")
_SHOWN_CONTROL = "\ufffd"
_LEGACY_COMMAND = "##["


def neutralise(text: str) -> str:
    """One line that no runner, terminal or log viewer reads as anything but text."""
    text = _LINE_BREAKS.sub(_SHOWN_BREAK, text)
    text = _CONTROLS.sub(_SHOWN_CONTROL, text).replace(_LEGACY_COMMAND, "## [")
    stripped = text.lstrip()
    if stripped.startswith("::"):
        # `: :` keeps it readable; the runner needs `::` right after the leading blanks.
        text = text[: len(text) - len(stripped)] + ": :" + stripped[2:]
    return text


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
        self._masks = _Masks()
        self._in_group = False
        self.outputs: dict[str, str] = {}
        self.unwritable: list[str] = []  # GITHUB_OUTPUT / GITHUB_STEP_SUMMARY we failed to write

    # -- secrets ---------------------------------------------------------------------------
    def mask(self, value: str) -> None:
        """Register a secret: masked by the runner from now on, and redacted from our own output."""
        for raw in {value, *value.splitlines()}:
            part = raw.strip()
            if len(part) < 4 or part in self._masks.values:
                continue  # the runner ignores very short masks too; they would redact everything
            self._masks.add(part)
            if self.github:
                # The value exactly as it will appear (escaped, not neutralised: a changed value
                # would mask nothing). splitlines() above already split it where the runner would.
                self._write(f"::add-mask::{_escape_data(part)}")

    def redact(self, text: str) -> str:
        for secret in self._masks.values:
            text = text.replace(secret, "***")
        return text

    # -- log lines -------------------------------------------------------------------------
    def _write(self, line: str) -> None:
        """The one place that writes to the log; flushed, so a mask is in place before any use."""
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full log: nothing left to tell, and the exit code still says it

    def _command(self, name: str, data: str = "", properties: str = "") -> None:
        head = f"::{name} {properties}::" if properties else f"::{name}::"
        self._write(head + _escape_data(neutralise(self.redact(data))))

    def line(self, text: str = "") -> None:
        """One plain log line: never a workflow command, never more than one line."""
        self._write(neutralise(self.redact(text)))

    def lines(self, text: str) -> None:
        """Several lines of our own making (a traceback, a rendered diagnosis), each one neutralised."""
        for part in text.splitlines():
            self.line(part)

    def debug(self, text: str) -> None:
        """A line only shown with step debug logging (the libraries' own log records)."""
        if self.github:
            self._command("debug", text)

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        started = time.monotonic()
        if self.github:
            self._command("group", title)
        else:
            self.line(f"==> {title}")
        self._in_group = True
        try:
            yield
        finally:
            self._in_group = False
            if self.github:
                self._command("endgroup")
            else:
                self.line(f"    ({time.monotonic() - started:.1f}s)")

    def beside(self, stream: TextIO) -> Reporter:
        """A reporter for work that runs alongside this one (in another thread): its own log
        on `stream`, the same secrets (a value either masks is redacted by both at once), no
        outputs or summary of its own. `adopt` takes its log text when that work is done."""
        other = Reporter(github=self.github, stream=stream)
        other._masks = self._masks
        return other

    @contextlib.contextmanager
    def holding(self) -> Iterator[HeldLog]:
        """While work alongside has the log: our lines wait in a `HeldLog` until its `release`
        (the other log first, then ours), so the two never interleave."""
        real = self.stream
        held = HeldLog(real)
        self.stream = held
        try:
            yield held
        finally:
            self.stream = real

    def adopt(self, buffered: Reporter) -> str:
        """For a phase that logged to `buffered` (a Reporter on a StringIO) while another phase
        had the log: its secrets are redacted from our own output from now on, and its log text
        is returned, to be written as one block (its `::add-mask::` lines first, as written).
        Safe while another thread writes: the list of secrets is replaced, not changed."""
        for secret in buffered._masks.values:
            self._masks.add(secret)
        self.unwritable += buffered.unwritable
        stream = buffered.stream
        return stream.getvalue() if isinstance(stream, io.StringIO) else ""

    @contextlib.contextmanager
    def library_logs(self) -> Iterator[None]:
        """Log records of the libraries we use (urllib3's retries, the kubernetes client's
        "exec: process returned 1. <plugin stderr>") carry outside text. Without a handler Python
        prints them raw to stderr, where the runner reads commands; here they become debug lines
        through the writer instead."""
        root = logging.getLogger()
        saved = root.handlers[:], root.level
        root.handlers = [_LibraryLogs(self)]
        root.setLevel(logging.INFO)
        try:
            yield
        finally:
            root.handlers, level = saved
            root.setLevel(level)

    @contextlib.contextmanager
    def library_logs_of_this_thread(self) -> Iterator[None]:
        """While a phase runs in a thread of its own with this (buffered) reporter, the library
        log records made in that thread go to it, with the rest of that phase's log."""
        _THREAD.reporter = self
        try:
            yield
        finally:
            _THREAD.reporter = None

    @contextlib.contextmanager
    def untrusted(self) -> Iterator[None]:
        """Output of other programs (docker build, logs) must not be parsed as workflow commands."""
        if not self.github:
            yield
            return
        token = _random.token_hex(16)
        self._command("stop-commands", token)
        try:
            yield
        finally:
            self._command(token)

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
            props.append(f"title={_escape_property(neutralise(self.redact(title)))}")
        if file:
            props.append(f"file={_escape_property(neutralise(self.redact(file)))}")
            if line:
                props.append(f"line={int(line)}")
        self._command(level, message, ",".join(props))

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
        self._append(
            self.output_file, "GITHUB_OUTPUT", f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
        )

    def publish(self, report: Report) -> None:
        """Write a report (`deployer.report`): the only way results, diagnoses and errors are
        shown. Sections first (fenced: their lines come from logs and events), then the lines,
        the annotations, the outputs and the job summary."""
        for section in report.sections:
            with self.group(section.title), self.untrusted():
                for text in section.lines:
                    self.line(text)
        for text in report.lines:
            self.lines(text)
        for a in report.annotations:
            self.annotate(a.level, a.message, title=a.title, file=a.file, line=a.line)
        for name, value in report.outputs:
            self.set_output(name, value)
        if report.summary:
            self.summary(report.summary)

    def summary(self, markdown: str) -> None:
        """Append to the job summary (GitHub) — on a terminal the report already said it all."""
        if self.summary_file is None:
            return
        self._append(
            self.summary_file, "GITHUB_STEP_SUMMARY", self.redact(markdown).rstrip("\n") + "\n\n"
        )

    def _append(self, path: Path, what: str, text: str) -> None:
        """A file the runner gave us that we cannot write is one error line, once; the CLI turns it
        into exit code 2 (`unwritable`) rather than a traceback in the middle of another report."""
        if what in self.unwritable:
            return
        try:
            with path.open("a", encoding="utf-8") as f:
                f.write(text)
        except (OSError, UnicodeError) as exc:
            self.unwritable.append(what)
            reason = (
                exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            )
            self.error(
                f"cannot write {what} ({path}): {reason}. The runner's file must be writable; "
                "on a self-hosted runner check the disk and the runner's temp directory.",
                title="Cannot report",
            )


_THREAD = threading.local()  # .reporter: a phase's own reporter, in the thread that runs it


class _Masks:
    """The secrets a reporter (and the reporters `beside` it) redacts, longest first. Replaced,
    never changed in place, so a thread redacting meanwhile reads a whole list."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        with self._lock:
            if secret not in self.values:
                self.values = sorted([*self.values, secret], key=len, reverse=True)


class HeldLog(io.TextIOBase):
    """The log while work alongside has it: lines are held until `release`, then written after
    the other work's log, and from then on pass straight through. When that work failed, the
    held lines (and those still to come: the work is being stopped) are dropped."""

    def __init__(self, real: TextIO) -> None:
        super().__init__()
        self.real = real
        self.held: list[str] = []
        self.mode = "hold"  # then "live", or "drop"
        self.lock = threading.Lock()

    def write(self, text: str) -> int:
        with self.lock:
            if self.mode == "live":
                self.real.write(text)
            elif self.mode == "hold":
                self.held.append(text)
        return len(text)

    def flush(self) -> None:
        with self.lock:
            if self.mode == "live":
                self.real.flush()

    def release(self, first: str, *, drop: str = "") -> None:
        """Write `first` (the other log), then what was held and go live; or, given `drop`
        (why), write that instead and drop our lines from now on."""
        with self.lock:
            if self.mode != "hold":
                return
            self.real.write(first)
            self.real.write(drop or "".join(self.held))
            self.held.clear()
            self.mode = "drop" if drop else "live"
            self.real.flush()


class _LibraryLogs(logging.Handler):
    def __init__(self, reporter: Reporter) -> None:
        super().__init__(logging.INFO)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = str(record.msg)
        reporter = getattr(_THREAD, "reporter", None) or self.reporter
        reporter.debug(f"{record.name}: {text}")
