"""The runner-faithful harness itself: parsing the runner's way, and running a throwaway action.

The action here is made in a temporary directory: its own Dockerfile FROM the stack's base image
and a script that reports what it was given, writes outputs and a summary, and prints workflow
commands. If the harness drifts from the runner, these tests say where.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness.runner import (
    HarnessError,
    build_action_image,
    mask_log,
    parse_file_command,
    parse_workflow_commands,
    run_action,
)

ACTION_YML = """\
name: harness echo
description: Reports what the runner gave it.
inputs:
  image-name:
    description: A hyphenated name.
    required: true
  password:
    description: A secret.
  with-default:
    description: Has a default.
    default: 'fallback value'
  sha-default:
    description: Defaults to the commit.
    default: ${{ github.sha }}
  not-given:
    description: Required, no default, and left out on purpose.
    required: true
  exit-code:
    description: What to exit with.
    default: '0'
  mode:
    description: report (default) or wait-for-cancel.
runs:
  using: docker
  image: Dockerfile
"""

DOCKERFILE = """\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
COPY main.py /opt/echo/main.py
ENTRYPOINT ["/usr/bin/python3", "/opt/echo/main.py"]
"""

MAIN_PY = """\
import json, os, signal, socket, sys, time, uuid

def ping():
    with socket.socket(socket.AF_UNIX) as s:
        s.connect("/var/run/docker.sock")
        s.sendall(b"GET /_ping HTTP/1.0\\r\\nHost: docker\\r\\n\\r\\n")
        return s.recv(4096).decode().rsplit("\\r\\n", 1)[-1]

env = {k: v for k, v in os.environ.items()
       if k.startswith(("INPUT_", "GITHUB_", "RUNNER_")) or k in ("HOME", "CI", "STEP_VAR")}
with open(os.environ["GITHUB_EVENT_PATH"]) as f:
    event = json.load(f)
with open("hello.txt") as f:
    hello = f.read()
report = {"env": env, "cwd": os.getcwd(), "uid": os.getuid(), "argv": sys.argv[1:],
          "ping": ping(), "hello": hello, "event_after": event.get("after")}
print("REPORT " + json.dumps(report), flush=True)

if os.environ["INPUT_MODE"] == "wait-for-cancel":
    def stop(signum, frame):
        print(f"got signal {signum}", flush=True)
        sys.exit(7)
    signal.signal(signal.SIGINT, stop)
    print("waiting", flush=True)
    time.sleep(120)
    sys.exit(0)

secret = os.environ["INPUT_PASSWORD"]
print(f"::add-mask::{secret}", flush=True)
print(f"the password is {secret}", flush=True)
print("this went to stderr", file=sys.stderr, flush=True)
print("::group::Phase one")
print("inside the group")
print("::endgroup::")
print("::error file=deploy/deployment.yaml,line=7,title=Bad%2C bad::it broke%0Asecond line")
delimiter = f"ghadelimiter_{uuid.uuid4()}"
with open(os.environ["GITHUB_OUTPUT"], "a") as out:
    out.write("simple=one=two\\n")
    out.write(f"multi<<{delimiter}\\nline 1\\nline 2\\n{delimiter}\\n")
with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as summary:
    summary.write("## Echo\\n\\n| input | value |\\n|---|---|\\n| image-name | "
                  + os.environ["INPUT_IMAGE-NAME"] + " |\\n")
sys.exit(int(os.environ["INPUT_EXIT-CODE"]))
"""


def make_action(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "action.yml").write_text(ACTION_YML)
    (directory / "Dockerfile").write_text(DOCKERFILE)
    (directory / "main.py").write_text(MAIN_PY)
    return directory


def report_of(log: str) -> dict[str, Any]:
    line = next(line for line in log.splitlines() if line.startswith("REPORT "))
    report: dict[str, Any] = json.loads(line.removeprefix("REPORT "))
    return report


@pytest.fixture(scope="module")
def echo_action(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_action(tmp_path_factory.mktemp("echo-action"))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "workspace"
    ws.mkdir()
    (ws / "hello.txt").write_text("from the checkout\n")
    return ws


# -- parsing, no Docker needed ------------------------------------------------------------------


def test_output_file_parses_key_value_and_heredoc_like_the_runner() -> None:
    text = "a=1\r\nb=x=y<<z\nc<<EOF\nline 1\r\n\nline 3\nEOF\n\nd<<END\nEND\n"
    assert parse_file_command(text) == {"a": "1", "b": "x=y<<z", "c": "line 1\r\n\nline 3", "d": ""}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name<<EOF\nno end\n", "Matching delimiter not found 'EOF'"),
        ("=value\n", "Name must not be empty"),
        ("<<EOF\nx\nEOF\n", "Name must not be empty and delimiter must not be empty"),
        ("just words\n", "Invalid format 'just words'"),
        ("name<<EOF\nx", "EOF marker missing new line"),
    ],
)
def test_output_file_errors_are_the_runners(text: str, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        parse_file_command(text, "GITHUB_OUTPUT")


def test_workflow_commands_unescape_properties_and_data() -> None:
    log = "plain\n  ::error file=a%3Ab.yaml,line=3,title=x%2Cy::one%0Atwo %25\n::nonsense::x\n"
    (command,) = parse_workflow_commands(log)
    assert command.name == "error"
    assert command.properties == {"file": "a:b.yaml", "line": "3", "title": "x,y"}
    assert command.data == "one\ntwo %"
    assert command.line == 2


def test_stop_commands_pauses_processing_until_its_token() -> None:
    log = "::stop-commands::tok\n::error::ignored\n::add-mask::ignored\n::tok::\n::warning::seen\n"
    names = [(c.name, c.data) for c in parse_workflow_commands(log)]
    assert names == [("stop-commands", "tok"), ("warning", "seen")]
    # A mask inside the paused region is not registered: the value shows, as on GitHub.
    assert "ignored" in mask_log(log + "ignored again\n").splitlines()[-1]


def test_legacy_commands_count_anywhere_in_a_line_like_the_runner() -> None:
    # ActionCommand.TryParse, tried when TryParseV2 fails: `##[name]` anywhere, registered names only.
    log = "text ##[warning]forged\nx ##[nonsense]y\nbuild ##[add-mask]hidden-value\nhidden-value\n"
    assert [(c.name, c.data) for c in parse_workflow_commands(log)] == [
        ("warning", "forged"),
        ("add-mask", "hidden-value"),
    ]
    assert mask_log(log).splitlines()[-1] == "***"


def test_masking_starts_at_add_mask_and_covers_each_line_and_base64() -> None:
    secret = "s3cret-" + secrets.token_hex(4)
    encoded = base64.b64encode(secret.encode()).decode()
    log = f"early {secret}\n::add-mask::{secret}%0Aline-two\nlate {secret} {encoded}\nline-two\n"
    shown = mask_log(log).splitlines()
    assert shown == [f"early {secret}", "late *** ***", "***"]


# -- running an action --------------------------------------------------------------------------


@pytest.mark.stack
@pytest.mark.docker
def test_inputs_env_mounts_and_files_are_what_the_runner_gives(
    stack: dict[str, str], echo_action: Path, workspace: Path
) -> None:
    password = "pw-" + secrets.token_hex(12)
    sha = secrets.token_hex(20)
    run = run_action(
        {
            "image-name": "registry.example/app",
            "password": password,
            "exit-code": "3",
            "surprise": "x",
        },
        workspace,
        extra_env={"STEP_VAR": "from the step", "GITHUB_SHA": sha},
        action_dir=echo_action,
        stack=stack,
        timeout=300,
    )
    assert run.exit_code == 3, run.visible_log
    report = report_of(run.log)
    env = report["env"]

    # Inputs: every declared one, upper case with hyphens kept; defaults evaluated; "" otherwise.
    assert env["INPUT_IMAGE-NAME"] == "registry.example/app"
    assert env["INPUT_WITH-DEFAULT"] == "fallback value"
    assert env["INPUT_SHA-DEFAULT"] == sha
    assert env["INPUT_NOT-GIVEN"] == ""
    assert env["INPUT_MODE"] == ""
    assert env["INPUT_SURPRISE"] == "x"
    assert any("Unexpected input(s) 'surprise'" in w for w in run.warnings)

    # The runner's variables and mounts.
    assert (env["GITHUB_ACTIONS"], env["CI"]) == ("true", "true")
    assert env["GITHUB_WORKSPACE"] == report["cwd"] == "/github/workspace"
    assert env["HOME"] == "/github/home"
    assert env["GITHUB_SHA"] == report["event_after"] == sha
    assert env["GITHUB_EVENT_PATH"] == "/github/workflow/event.json"
    assert env["GITHUB_OUTPUT"].startswith("/github/file_commands/set_output_")
    assert env["GITHUB_STEP_SUMMARY"].startswith("/github/file_commands/step_summary_")
    assert env["RUNNER_TEMP"] == "/github/runner_temp"
    assert env["STEP_VAR"] == "from the step"
    assert report["hello"] == "from the checkout\n"
    assert report["ping"] == "OK"  # the Docker socket is the stack's daemon
    assert report["uid"] == 0
    assert report["argv"] == []

    # Files: outputs (both forms) and the summary, parsed the runner's way.
    assert run.outputs == {"simple": "one=two", "multi": "line 1\nline 2"}
    assert "| image-name | registry.example/app |" in run.summary
    assert run.output_file.parent.name == "_runner_file_commands"

    # Workflow commands.
    (error,) = run.annotations("error")
    assert error.properties == {"file": "deploy/deployment.yaml", "line": "7", "title": "Bad, bad"}
    assert error.data == "it broke\nsecond line"
    assert run.groups() == ["Phase one"]

    # Secrets: passed by name only, never in argv; masked in what the runner shows.
    assert not any(password in arg for arg in run.argv)
    assert "INPUT_PASSWORD" in run.argv
    assert run.argv[run.argv.index("--workdir") + 1] == "/github/workspace"
    assert f"the password is {password}" in run.log
    # stderr is in the log too. (Its order against stdout is not kept: dockerd reads the two
    # pipes separately, on GitHub as here, so a mask and its first use belong on one stream.)
    assert "this went to stderr" in run.log
    shown = run.visible_log.splitlines()
    assert "the password is ***" in shown
    # The REPORT line printed it before ::add-mask::, so on GitHub it shows: so it does here.
    # (stderr lines may come before it: the two streams' order is not kept.)
    stdout_lines = [line for line in shown if line != "this went to stderr"]
    assert stdout_lines[0].startswith("REPORT ")
    assert password in stdout_lines[0]
    assert not any(password in line for line in stdout_lines[1:])


@pytest.mark.stack
@pytest.mark.docker
def test_cancel_sends_sigint_to_the_docker_cli_like_the_runner(
    stack: dict[str, str], echo_action: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[int] = []  # every signal the harness sends a process (kill() included)
    send_signal = subprocess.Popen.send_signal

    def record(self: subprocess.Popen[bytes], sig: int) -> None:
        sent.append(sig)
        send_signal(self, sig)

    monkeypatch.setattr(subprocess.Popen, "send_signal", record)
    run = run_action(
        {"image-name": "x", "mode": "wait-for-cancel"},
        workspace,
        action_dir=echo_action,
        stack=stack,
        timeout=120,
        cancel_after=3,
    )
    assert run.cancelled
    assert "waiting" in run.log
    # docker run without a TTY proxies SIGINT (2) to PID 1: the script's handler ran.
    assert "got signal 2" in run.log
    assert run.exit_code == 7
    # SIGINT alone ended it: the runner's escalation (SIGTERM after 7.5 s, then a kill) never
    # came, which is what the step's own handler must achieve
    assert sent == [signal.SIGINT]
    name = run.argv[run.argv.index("--name") + 1]
    env = {
        **os.environ,
        **({"DOCKER_HOST": stack["DOCKER_HOST"]} if "DOCKER_HOST" in stack else {}),
    }
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"name={name}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert left.stdout.strip() == ""


@pytest.mark.stack
@pytest.mark.docker
def test_image_is_tagged_by_content_and_rebuilt_only_when_it_changes(
    stack: dict[str, str], tmp_path: Path
) -> None:
    action = make_action(tmp_path / "action")
    first = build_action_image(action, stack)
    assert build_action_image(action, stack) == first
    (action / "main.py").write_text(MAIN_PY + "\n# changed\n")
    second = build_action_image(action, stack)
    assert second != first
    assert second.split(":")[0] == first.split(":")[0]


def test_action_needing_expressions_the_harness_cannot_evaluate_is_refused(tmp_path: Path) -> None:
    action = make_action(tmp_path / "action")
    (action / "action.yml").write_text(
        ACTION_YML.replace("${{ github.sha }}", "${{ hashFiles('**/x') }}")
    )
    ws = tmp_path / "ws"
    ws.mkdir()
    with pytest.raises(HarnessError, match="cannot evaluate"):
        run_action({"image-name": "x"}, ws, action_dir=action, stack={"DJK_BASE_IMAGE": "none"})
