"""The local stack behind `scripts/stack`: standard library only, so it runs before any venv exists.

Shared here: the one error type the CLI turns into a single line, and the process toolkit every
component uses. A process is remembered as a plain dict (`name`, `pid`, `start`, `log`) in
state.json; `start` is the kernel's start time of that pid, so `down` never signals a stranger
that happens to reuse a recorded pid.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

Log = Callable[[str], None]
Proc = dict[str, object]

REPO_ROOT = Path(__file__).resolve().parent.parent


class StackError(Exception):
    """A failure worth one clear line (what failed, where to look); never a traceback."""


@functools.cache
def binary_paths() -> dict[str, str]:
    """Where scripts/build-binaries keeps each binary it pins (its `paths` output: it owns the
    cache layout), read once per process."""
    script = REPO_ROOT / "scripts" / "build-binaries"
    try:
        result = subprocess.run(
            [str(script), "paths"], capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"{script} paths: {exc}") from exc
    if result.returncode != 0:
        raise StackError(f"{script} paths failed: {result.stderr.strip()}")
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick for port 0 on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks) of a pid, or None when there is no such pid."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    """Start a long-running child in its own session (it outlives `scripts/stack up`)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        try:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
        except OSError as exc:
            raise StackError(f"{name}: cannot start {argv[0]}: {exc.strerror}") from exc
    stat = _stat(child.pid)
    return {"name": name, "pid": child.pid, "start": stat[1] if stat else "", "log": str(log_path)}


def is_running(proc: Proc) -> bool:
    """True while the recorded process (same pid *and* start time) exists and is not a zombie."""
    stat = _stat(int(str(proc["pid"])))
    return stat is not None and stat[1] == proc["start"] and stat[0] not in ("Z", "X")


def stop(procs: Sequence[Proc], *, grace: float = 15.0) -> list[str]:
    """Stop the recorded processes newest first: SIGTERM, wait up to `grace`, then SIGKILL.

    One at a time, so each shuts down while what it depends on still answers (the apiserver
    drains cleanly only while etcd is up). Each process leads its own session, so the signal
    goes to its process group. Returns the names that needed SIGKILL.
    """
    killed = []
    for proc in reversed(procs):
        if not is_running(proc):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(str(proc["pid"])), signal.SIGTERM)
        deadline = time.monotonic() + grace
        while is_running(proc) and time.monotonic() < deadline:
            _reap()
            time.sleep(0.05)
        if is_running(proc):
            killed.append(str(proc["name"]))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(str(proc["pid"])), signal.SIGKILL)
            while is_running(proc):
                _reap()
                time.sleep(0.05)
    return killed


def _reap() -> None:
    """Collect our own exited children (only matters when up fails and stops in-process)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def log_tail(proc: Proc, lines: int = 15) -> str:
    """The last lines of a process's log, for error messages."""
    try:
        text = Path(str(proc["log"])).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def wait_for(
    what: str,
    ready: Callable[[], bool],
    *,
    timeout: float,
    watch: Sequence[Proc] = (),
    interval: float = 0.1,
) -> None:
    """Poll `ready` until it holds; fail at once, with its log tail, if a watched process dies."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in watch:
            if not is_running(proc):
                raise StackError(
                    f"{proc['name']} exited while waiting for {what}; last lines of "
                    f"{proc['log']}:\n{log_tail(proc)}"
                )
        with contextlib.suppress(OSError):
            if ready():
                return
        if time.monotonic() > deadline:
            hint = "; ".join(f"{p['name']}: {p['log']}" for p in watch)
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what} (logs: {hint})")
        time.sleep(interval)
