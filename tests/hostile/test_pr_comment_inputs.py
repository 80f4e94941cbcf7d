"""The preview comment's input (`github-token`) and the runner's event around it, as hostile as
they come: each case is exit 2 with one line naming github-token, found at the inputs (before
anything is built or any service is called), the token never shown, nothing injected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.support import action_env, check, run_action, workspace

GH_TOKEN = "ghs_" + "Zx9" * 12
KLASS = "5 shapes and sizes: pull request comment"
PR_EVENT = {"pull_request": {"number": 7, "head": {"repo": {"full_name": "team/shop"}}}}


def env_for(tmp_path: Path, inputs: dict[str, str], **runner: str) -> dict[str, str]:
    ws = workspace(tmp_path)
    event = tmp_path / "event.json"
    event.write_text(json.dumps(PR_EVENT))
    env = action_env(ws, {"dry-run": "true", "github-token": GH_TOKEN, **inputs})
    env.update(
        {
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_REPOSITORY": "team/shop",
        }
    )
    env.update(runner)
    return env


CASES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "without dry-run": ({"dry-run": "false"}, {}),
    "on push": ({}, {"GITHUB_EVENT_NAME": "push"}),
    "on pull_request_target": ({}, {"GITHUB_EVENT_NAME": "pull_request_target"}),
    "event name with a command": ({}, {"GITHUB_EVENT_NAME": "x\n::error::injected"}),
    "no event name": ({}, {"GITHUB_EVENT_NAME": ""}),
    "no event file": ({}, {"GITHUB_EVENT_PATH": "/nonexistent/event.json"}),
    "event file is a directory": ({}, {"GITHUB_EVENT_PATH": "/"}),
    "event path with a command": ({}, {"GITHUB_EVENT_PATH": "/x\n::error::injected"}),
    "repository with a command": ({}, {"GITHUB_REPOSITORY": "a/b\n::error::injected"}),
    "api url not http": ({}, {"GITHUB_API_URL": "javascript:alert(1)"}),
    "token with a line break": ({"github-token": GH_TOKEN + "\nsecond"}, {}),
    "token with a space": ({"github-token": GH_TOKEN + " x"}, {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_preview_comment_that_cannot_be_posted_is_one_line_at_the_inputs(
    tmp_path: Path, case: str
) -> None:
    inputs, runner = CASES[case]
    run = run_action(env_for(tmp_path, inputs, **runner))
    check(run, 2, "github-token", KLASS, (GH_TOKEN,))
    assert "Credentials" not in run.log and "Preflight" not in run.log


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe not json",
        b"[]",
        b'{"pull_request": {"number": "7"}}',
        b'{"pull_request": {"number": true}}',
        b"{}",
    ],
    ids=["binary", "a list", "number as text", "number as bool", "no pull_request"],
)
def test_an_event_file_of_the_wrong_shape_is_one_line(tmp_path: Path, payload: bytes) -> None:
    env = env_for(tmp_path, {})
    Path(env["GITHUB_EVENT_PATH"]).write_bytes(payload)
    run = run_action(env)
    check(run, 2, "github-token", KLASS, (GH_TOKEN,))
