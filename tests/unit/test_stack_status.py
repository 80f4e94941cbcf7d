"""`scripts/stack status` exits 0 only when the stack is up: scripts/test relies on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stack import cli


def status(tmp_path: Path, state: dict[str, Any] | None) -> int:
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
    return cli.cmd_status(tmp_path)


@pytest.fixture(autouse=True)
def components(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    answering = {"controlplane": True, "docker": True, "digitalocean": True}
    monkeypatch.setattr(
        cli,
        "component_status",
        lambda state_dir, state, name: [(f"{name} answers", answering[name])],
    )
    return answering


def test_a_stack_never_started_is_not_up(tmp_path: Path) -> None:
    assert status(tmp_path, None) == 1
    assert status(tmp_path, {"started": [], "env": {}}) == 1


def test_every_started_component_answering_is_up(tmp_path: Path) -> None:
    assert status(tmp_path, {"started": ["controlplane", "docker", "digitalocean"]}) == 0
    assert status(tmp_path, {"started": ["controlplane"]}) == 0  # optional ones skipped


def test_one_started_component_not_answering_is_not_up(
    tmp_path: Path, components: dict[str, bool]
) -> None:
    components["docker"] = False
    assert status(tmp_path, {"started": ["controlplane", "docker"]}) == 1


def test_a_half_up_stack_is_not_up(tmp_path: Path) -> None:
    # up recorded the control plane's processes but did not finish starting it
    assert status(tmp_path, {"started": [], "controlplane": {"procs": []}}) == 1
    assert status(tmp_path, {"started": ["controlplane"], "docker": {}}) == 1
