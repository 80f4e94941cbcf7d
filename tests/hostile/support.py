"""What every hostile case checks, the way the runner would see it.

A case runs the action's entry point (or the CLI's) in-process with hostile inputs, files or
outside answers, then `check` asserts the contract of issue 11:

- the documented exit code, and no traceback or "internal error";
- a non-zero exit has an error annotation that is one line and names where: the input
  (`input: ...`) or the file:line (the annotation's file/line properties);
- no secret (DigitalOcean token, registry password, env-file values, kubeconfig credentials) in
  the log as GitHub shows it (masked from each `::add-mask::` on), in the outputs or the summary;
- no workflow command the runner would act on came from the case's text: the log is parsed like
  the runner parses it (`::name::` at a line start, legacy `##[name]` anywhere, stop-commands),
  and every hostile payload carries the marker PWNED, which no command of ours starts with;
- no line of the shown log starts with the marker (a forged line).

Cases that reach a cluster live in tests/e2e/test_hostile_action.py and also check that the cluster
is unchanged after a non-zero exit.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deployer import cli
from deployer.github import Reporter
from tests.harness.runner import mask_log, parse_file_command, parse_workflow_commands

MARK = "PWNED"
SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "dop_v1_" + "5eC7e7" * 10 + "abcd"
REGISTRY_PASSWORD = "registry-pass-7Hq2vXk9Lm"
ENV_VALUES = ("django-secret-key-9f8e7d6c5b", "postgres://app:db-pass-Zx81@db/app")
KUBE_TOKEN = "kube-token-" + "Qw3" * 12
CLIENT_KEY_DATA = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUV2Z0lCQURBTkJna3Foa2lHOXcwQkFRRUZBQVNDQktnd2dnU2tBZ0VBQW9JQkFRQ3Vz"
SECRETS = (TOKEN, REGISTRY_PASSWORD, *ENV_VALUES, KUBE_TOKEN, CLIENT_KEY_DATA)
ENV_FILE = f"SECRET_KEY={ENV_VALUES[0]}\nDATABASE_URL={ENV_VALUES[1]}\n"

# Every way we know to end a line or start a command, each followed by the marker.
PAYLOADS = (
    f"a\n::warning::{MARK}",
    f"a\r::error::{MARK}",
    f"a\r\n::add-mask::{MARK}",
    f"a\u2028::stop-commands::{MARK}",
    f"a\u2029::notice::{MARK}",
    f"a\x85::debug::{MARK}",
    f"a\x0b::group::{MARK}",
    f"a\x0c::endgroup::{MARK}",
    f"a ##[error]{MARK}",
    f"a\n{MARK} forged line",
    f"::warning::{MARK}",
    f"  ::error title=x::{MARK}",
    f"a\x1b[8m\x1b]0;title\x07::warning::{MARK}",  # terminal escapes: hide text, set a title
)

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: <IMAGE>
          envFrom:
            - secretRef: {name: app-secrets}
"""


@dataclass
class Run:
    code: int
    log: str
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""

    @property
    def commands(self) -> list:  # type: ignore[type-arg]
        return parse_workflow_commands(self.log)

    @property
    def visible(self) -> str:
        return mask_log(self.log)

    def errors(self) -> list:  # type: ignore[type-arg]
        return [c for c in self.commands if c.name == "error"]


def yaml_string(text: str) -> str:
    """A double-quoted YAML scalar holding exactly `text` (JSON escapes are YAML escapes)."""
    return json.dumps(text)


def workspace(
    tmp_path: Path, manifest: str = DEPLOYMENT, name: str = "deploy/deployment.yaml"
) -> Path:
    ws = tmp_path / "ws"
    path = ws / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(manifest, encoding="utf-8")
    return ws


def action_env(
    ws: Path, inputs: Mapping[str, str], api_url: str = "http://127.0.0.1:9"
) -> dict[str, str]:
    values = {
        "image": "registry.example.com/team/app",
        "sha": SHA,
        "digitalocean-token": TOKEN,
        "cluster": "no-such-cluster",
        "build": "never",
        "secrets": ENV_FILE,
        "secret-name": "app-secrets",
        "registry-username": "bot",
        "registry-password": REGISTRY_PASSWORD,
    }
    values.update(inputs)
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(ws),
        "GITHUB_OUTPUT": str(ws.parent / "output"),
        "GITHUB_STEP_SUMMARY": str(ws.parent / "summary"),
        "DIGITALOCEAN_API_URL": api_url,
    }
    env.update({f"INPUT_{k.upper()}": v for k, v in values.items() if v is not None})
    return env


def capture(run: Callable[[], int], env: Mapping[str, str]) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run()
    output_file = Path(env.get("GITHUB_OUTPUT", "/nonexistent"))
    summary_file = Path(env.get("GITHUB_STEP_SUMMARY", "/nonexistent"))
    outputs = parse_file_command(output_file.read_text()) if output_file.is_file() else {}
    summary = summary_file.read_text() if summary_file.is_file() else ""
    return Run(code, out.getvalue() + err.getvalue(), outputs, summary)


def run_action(env: Mapping[str, str]) -> Run:
    return capture(lambda: cli.action_main(env), env)


def run_cli(argv: list[str], env: Mapping[str, str]) -> Run:
    return capture(lambda: cli.main(argv, env), env)


def run_guarded(body: Callable[[Reporter], int], env: Mapping[str, str] | None = None) -> Run:
    """Any piece of the deployer under the CLI's own error handling (exit codes, annotations)."""
    env = env or {}
    context_env = dict(env)

    def go() -> int:
        reporter = Reporter(
            github=True,
            output_file=Path(context_env["GITHUB_OUTPUT"])
            if "GITHUB_OUTPUT" in context_env
            else None,
            summary_file=Path(context_env["GITHUB_STEP_SUMMARY"])
            if "GITHUB_STEP_SUMMARY" in context_env
            else None,
        )
        return cli._guarded(reporter, context_env, lambda: body(reporter))

    return capture(go, context_env)


@dataclass
class Tally:
    """Totals by class, printed at the end of the session (pytest -s) for the issue's note."""

    cases: int = 0
    nonzero: int = 0  # cases that exit non-zero (each must have a one-line error naming where)
    one_line_errors: int = 0
    tracebacks: int = 0
    leaks: int = 0
    injections: int = 0


TALLY: dict[str, Tally] = {}


def check(
    run: Run,
    code: int,
    where: str | None,
    klass: str,
    extra_secrets: tuple[str, ...] = (),
    *,
    plain: bool = False,
    program_lines: bool = False,
) -> None:
    """`plain`: the error is a plain `error: ...` line (argparse usage errors, terminal mode).
    `program_lines`: the log holds another program's own lines (docker build), shown fenced as they
    came; a line of theirs may start with anything, but none may be a command."""
    tally = TALLY.setdefault(klass, Tally())
    tally.cases += 1
    tally.nonzero += int(code != 0)
    problems: list[str] = []
    if run.code != code:
        problems.append(f"exit {run.code}, expected {code}")
    if "Traceback" in run.log or "internal error" in run.log:
        tally.tracebacks += 1
        problems.append("traceback or internal error")
    commands = run.commands
    errors = [c for c in commands if c.name == "error"]
    if code != 0 and plain:
        lines = [line for line in run.visible.splitlines() if line.startswith("error: ")]
        if len(lines) != 1 or (where is not None and where not in lines[0]):
            problems.append(f"not one plain error line naming {where!r}")
        else:
            tally.one_line_errors += 1
    elif code != 0:
        if not errors:
            problems.append("no error annotation")
        else:
            first = errors[0]
            if "\n" in first.data or "\r" in first.data:
                problems.append(f"error is not one line: {first.data!r}")
            elif where is not None:
                located = f"{first.properties.get('file', '')}:{first.properties.get('line', '')}"
                if not (first.data.startswith(f"{where}") or located.startswith(where)):
                    problems.append(
                        f"error does not name {where!r}: {first.properties} {first.data!r}"
                    )
                else:
                    tally.one_line_errors += 1
            else:
                tally.one_line_errors += 1
    shown = "\n".join([run.visible, *run.outputs.values(), run.summary])
    leaked = [s for s in (*SECRETS, *extra_secrets) if s in shown]
    if leaked:
        tally.leaks += 1
        problems.append(f"secret shown: {[s[:12] for s in leaked]}")
    injected = [
        c
        for c in commands
        if MARK in c.name
        or c.data.startswith(MARK)
        or (c.name == "stop-commands" and not re.fullmatch(r"[0-9a-f]{32}", c.data))
    ]
    escapes = [line for line in run.visible.splitlines() if "\x1b" in line or "\x07" in line]
    if escapes:
        problems.append(f"control characters shown: {escapes[:2]!r}")
    forged = [
        line
        for line in run.visible.splitlines()
        if line.lstrip().startswith(MARK) and not program_lines
    ]
    if injected or forged:
        tally.injections += 1
        problems.append(f"injected: {[(c.name, c.data) for c in injected]} forged: {forged}")
    assert not problems, "; ".join(problems) + "\n--- log ---\n" + run.log[-3000:]
