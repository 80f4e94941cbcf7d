"""What a user checks of the deployed example app: the board page through the web Service
(`kubectl port-forward`), a post whose word count the Celery worker fills in, beat's start and
the scheduled task it sends the worker, and gunicorn's log. Used by the demo and by tests/e2e/test_example_app.py.
"""

from __future__ import annotations

import contextlib
import html
import re
import secrets
import select
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from tests.harness.real_node import kubectl
from tests.harness.runner import HarnessError

# The example's ConfigMap: the host name and scheme its ingress would send.
APP_HOST = "antisocial.example.com"
CONTROL_SOCKET_ERROR = "Control server error"


# How often the demo has beat send its scheduled task (demo.DEMO_SETTINGS).
BEAT_EVERY_S = 5


@dataclass
class Checks:
    """What the running app showed, each with the evidence a user would look at."""

    status: int = 0
    title: str = ""
    post_status: int = 0
    author: str = ""
    post_text: str = ""
    words_on_page: str = ""  # e.g. "5 words", filled in by the worker
    task_line: str = ""  # the worker's "Task board.tasks.count_words[…] succeeded …"
    beat_line: str = ""  # beat's "beat: Starting..."
    # beat's "Sending due task prune-old-posts …", then the worker's run of it
    scheduled_line: str = ""
    control_socket_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@contextlib.contextmanager
def port_forward(stack: Mapping[str, str], namespace: str, target: str, port: int) -> Iterator[int]:
    """`kubectl port-forward TARGET :PORT` on 127.0.0.1, as a user would: the local port."""
    process = subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            stack["KUBECONFIG"],
            "-n",
            namespace,
            "port-forward",
            "--address",
            "127.0.0.1",
            target,
            f":{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ->", line)
        if match is None:
            process.kill()
            raise HarnessError(
                f"kubectl port-forward {target}: {line.strip() or process.stderr.read().strip()}"
            )
        yield int(match.group(1))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _http(
    url: str, headers: Mapping[str, str], data: bytes | None = None
) -> tuple[int, str, list[str]]:
    """Status, body and Set-Cookie headers, following no redirect."""
    request = urllib.request.Request(url, data=data, headers=dict(headers))  # noqa: S310
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return (
                int(response.status),
                response.read().decode(errors="replace"),
                response.headers.get_all("Set-Cookie") or [],
            )
    except urllib.error.HTTPError as error:
        return (
            error.code,
            error.read().decode(errors="replace"),
            error.headers.get_all("Set-Cookie") or [],
        )


def _logs(stack: Mapping[str, str], namespace: str, component: str) -> str:
    # --tail=-1: with a selector kubectl shows only 10 lines per pod otherwise.
    return kubectl(
        stack,
        "-n",
        namespace,
        "logs",
        "-l",
        f"app.kubernetes.io/name=antisocial,app.kubernetes.io/component={component}",
        "--tail=-1",
        "--prefix",
        check=False,
    ).stdout


def check_app(stack: Mapping[str, str], namespace: str, wait: float = 60) -> Checks:
    """A user's checks of the deployed app: the board page through the web Service, a post whose
    word count the worker fills in (a Celery task queued by the view), beat's start and its
    scheduled task run by the worker, gunicorn's
    log. Everything goes through `kubectl port-forward` and `kubectl logs`, nothing else."""
    checks = Checks()
    # Through the load balancer or ingress in front of it: the public host, TLS ended there.
    behind_tls = {"Host": APP_HOST, "X-Forwarded-Proto": "https"}
    with port_forward(stack, namespace, "service/antisocial-web", 80) as port:
        base = f"http://127.0.0.1:{port}/"
        checks.status, page, cookies = _http(base, behind_tls)
        title = re.search(r"<title>(.*?)</title>", page, re.DOTALL)
        checks.title = html.unescape(title.group(1).strip()) if title else ""
        if checks.status != 200 or checks.title != "antisocial":
            checks.problems.append(
                f"GET / answered {checks.status} with title {checks.title!r}: {page[:500]!r}"
            )
            return checks
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        cookie = next((c.split(";")[0] for c in cookies if c.startswith("csrftoken=")), "")
        checks.author = f"demo-{secrets.token_hex(3)}"
        checks.post_text = "hello from the demo on the real node"
        form = urllib.parse.urlencode(
            {
                "csrfmiddlewaretoken": token.group(1) if token else "",
                "author": checks.author,
                "text": checks.post_text,
            }
        ).encode()
        checks.post_status, body, _ = _http(
            base,
            {
                **behind_tls,
                "Cookie": cookie,
                "Origin": f"https://{APP_HOST}",
                "Referer": f"https://{APP_HOST}/",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            form,
        )
        if checks.post_status != 302:
            checks.problems.append(
                f"POST / answered {checks.post_status}, not a redirect: {body[:500]!r}"
            )
            return checks
        counted = re.compile(
            rf"<strong>{re.escape(checks.author)}</strong> {re.escape(checks.post_text)} "
            r'<span class="words">(\d+ words?)</span>'
        )
        deadline = time.monotonic() + wait
        while True:
            _, page, _ = _http(base, behind_tls)
            found = counted.search(page)
            if found:
                checks.words_on_page = found.group(1)
                break
            if time.monotonic() > deadline:
                checks.problems.append(
                    f"the post's word count never appeared on the page within {wait:.0f}s "
                    "(the worker did not run board.tasks.count_words)"
                )
                break
            time.sleep(1)

    worker = _logs(stack, namespace, "worker")
    # This post's task: the task logs the post's author, unique to this check.
    mine = re.search(rf"post \d+ by {re.escape(checks.author)} has \d+ words?$", worker, re.M)
    done = mine and re.search(
        r"Task board\.tasks\.count_words\[[0-9a-f-]+\] succeeded in .*", worker[mine.end() :]
    )
    checks.task_line = f"{mine.group(0)}; {done.group(0).strip()}" if mine and done else ""
    if not checks.task_line:
        checks.problems.append(
            f"the worker's log shows no count_words task done for {checks.author}'s post:\n"
            + worker[-3000:]
        )
    beat = _logs(stack, namespace, "beat")
    started = re.search(r"beat: Starting\.\.\.", beat)
    checks.beat_line = started.group(0) if started else ""
    if not checks.beat_line:
        checks.problems.append(f"beat's log has no 'beat: Starting...':\n{beat[-3000:]}")
    else:
        checks.scheduled_line = _scheduled_task_done(stack, namespace, wait)
        if not checks.scheduled_line:
            checks.problems.append(
                f"beat sent no prune-old-posts the worker ran within {wait:.0f}s (it is due "
                f"every {BEAT_EVERY_S}s):\nbeat: {_logs(stack, namespace, 'beat')[-1500:]}\n"
                f"worker: {_logs(stack, namespace, 'worker')[-1500:]}"
            )
    web = _logs(stack, namespace, "web")
    checks.control_socket_errors = [
        line for line in web.splitlines() if CONTROL_SOCKET_ERROR in line
    ]
    if checks.control_socket_errors:
        checks.problems.append(
            "gunicorn logged control-socket errors:\n" + "\n".join(checks.control_socket_errors)
        )
    if "Booting worker" not in web:
        checks.problems.append(f"the web log shows no gunicorn worker booting:\n{web[-3000:]}")
    return checks


def _scheduled_task_done(stack: Mapping[str, str], namespace: str, wait: float) -> str:
    """Beat's send of its scheduled task and the worker's run of it, as their logs show them
    (both within `wait`); "" when they do not."""
    deadline = time.monotonic() + wait
    while True:
        sent = re.search(
            r"Scheduler: Sending due task prune-old-posts \(.*?\)", _logs(stack, namespace, "beat")
        )
        ran = re.search(
            r"Task board\.tasks\.prune_old_posts\[[0-9a-f-]+\] succeeded in .*",
            _logs(stack, namespace, "worker"),
        )
        if sent and ran:
            return f"{sent.group(0)}; worker: {ran.group(0).strip()}"
        if time.monotonic() > deadline:
            return ""
        time.sleep(1)


def report(checks: Checks) -> str:
    lines = [
        f"GET / through `kubectl port-forward service/antisocial-web`: HTTP {checks.status}, "
        f"<title>{checks.title}</title>",
        f"POST / as {checks.author}, {checks.post_text!r}: HTTP {checks.post_status}; "
        f"the worker counted its words: {checks.words_on_page or '(never)'}",
        f"worker log: {checks.task_line or '(no count_words task done)'}",
        f"beat log: {checks.beat_line or '(beat never started)'}",
        f"beat's schedule: {checks.scheduled_line or '(no scheduled task sent and run)'}",
        "web log: "
        + (
            f"{len(checks.control_socket_errors)} gunicorn control-socket errors"
            if checks.control_socket_errors
            else "no gunicorn control-socket error"
        ),
    ]
    return "\n".join(f"  {line}" for line in lines)
