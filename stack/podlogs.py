"""Prepared container logs, served by kwok's kubelet endpoint through the real API server.

A pod template annotated `deploy.test/logs: <name>` gets, for every container of its pods, the
prepared log `<name>` as the current run and `<name>.previous` as the previous run
(`kubectl logs [--previous]`, `GET .../pods/<pod>/log?previous=...`). The Stage in
stack/kwok/pod-logs.yaml makes a kwok `Logs` object per such pod; kwok reads the files below
from its working directory, `<state>/controlplane/pod-logs/`. A pod without the annotation has
no logs: the API server answers 400 "no logs found for container ...", as for a container whose
logs are not there yet.

Where kwok is not a kubelet: it serves `<name>` for every request without `previous`, whatever
the container's state. A real kubelet answers a container waiting in CrashLoopBackOff from its
last terminated run (pkg/kubelet validateContainerLogStatus), the same run `--previous` gives:
there, "current" and "previous" of a crash loop are the same lines. Here they differ on purpose,
so a test can tell which request produced which excerpt.

The prepared logs (the text ones live in stack/kwok/logs/):

    migrate-failure        a Django `migrate` traceback ending in django.db.utils.OperationalError;
                           the previous run's last line and a line near the current run's end
                           hold SECRET_IN_LOG (a DATABASE_URL quoted back by libpq), for tests
                           that put it in the env file (whichever run a diagnosis shows)
    gunicorn-boot-failure  gunicorn's "Worker failed to boot" with an ImproperlyConfigured
                           traceback; the current run holds lines that look like workflow
                           commands (`::error::`, `::stop-commands::`, ...)
    long                   5,000 numbered lines per run, larger than the deployer's byte limit
                           (so only a tail request returns its tail)
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

LOGS_ANNOTATION = "deploy.test/logs"
TEXT_DIR = Path(__file__).resolve().parent / "kwok" / "logs"
PREPARED = ("migrate-failure", "gunicorn-boot-failure", "long")
# In both runs of migrate-failure: a test puts it in the env file and expects it masked.
SECRET_IN_LOG = "Pg-p4ss-from-the-env-file-7c1e9b2a"  # noqa: S105 - a fake, public on purpose
LONG_LINES = 5000


def lines(name: str, *, previous: bool = False) -> list[str]:
    """The lines of one prepared log, as `kubectl logs` prints them."""
    if name not in PREPARED:
        raise ValueError(f"no prepared log {name!r}; known: {', '.join(PREPARED)}")
    if name == "long":
        run = "previous" if previous else "current"
        # ~100 bytes a line: 5,000 of them are ~500 KB, twice the deployer's limitBytes.
        return [
            f"worker {run} run: line {n:04d} of {LONG_LINES}: processed batch {n * 7 % 997:03d} "
            f"for tenant acme-{n % 13:02d} in {n % 89 + 3}ms"
            for n in range(1, LONG_LINES + 1)
        ]
    suffix = ".previous.txt" if previous else ".txt"
    return (TEXT_DIR / f"{name}{suffix}").read_text(encoding="utf-8").splitlines()


def file_name(name: str, *, previous: bool = False) -> str:
    """The file kwok reads, relative to its working directory (the Stage builds the same)."""
    return f"{name}.previous.log" if previous else f"{name}.log"


def write_cri_files(directory: Path, now: datetime | None = None) -> None:
    """Every prepared log in the CRI format kwok's reader needs (`<RFC3339Nano> <stream> F <msg>`,
    one line each; plain text is refused as "unsupported log format"). The previous run ends
    before the current one starts, a minute ago, so `--since` works as on a kubelet."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    ended = (now or datetime.now(UTC)) - timedelta(minutes=1)
    for name in PREPARED:
        for previous in (True, False):
            text = lines(name, previous=previous)
            start = ended - timedelta(seconds=30 if previous else 10)
            with (directory / file_name(name, previous=previous)).open("w") as out:
                for n, line in enumerate(text):
                    stamp = (start + timedelta(microseconds=n * 100)).strftime(
                        "%Y-%m-%dT%H:%M:%S.%fZ"
                    )
                    out.write(f"{stamp} stderr F {line}\n")
