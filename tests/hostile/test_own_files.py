"""Class 8 (our own files: GITHUB_OUTPUT, the step summary) and class 9 (small things)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.github import Reporter
from tests.hostile.support import action_env, check, run_action, run_cli, run_guarded, workspace


@pytest.mark.parametrize("broken", ["GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "both"])
def test_a_report_file_that_cannot_be_written_is_one_more_line_not_a_traceback(
    tmp_path: Path, broken: str
) -> None:
    ws = workspace(tmp_path)
    env = action_env(ws, {"image": "Bad Image"})  # an input error, whose report writes both files
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        if broken in (name, "both"):
            env[name] = str(tmp_path / f"{name}-is-a-directory")
            Path(env[name]).mkdir()
    run = run_action(env)
    check(run, 2, "image", "8 our own files")
    said = [c.data for c in run.errors() if c.properties.get("title") == "Cannot report"]
    assert len(said) == (2 if broken == "both" else 1)


@pytest.mark.parametrize("where", ["directory", "missing parent", "read-only file"])
def test_a_deploy_that_cannot_write_its_outputs_is_not_green(tmp_path: Path, where: str) -> None:
    target = tmp_path / "out"
    if where == "directory":
        target.mkdir()
    elif where == "missing parent":
        target = tmp_path / "no" / "such" / "out"
    else:
        target.write_text("")
        target.chmod(0o400)
        if (
            target.open("a").writable()
            and Path("/proc/self").exists()
            and __import__("os").geteuid() == 0
        ):
            target = tmp_path / "no" / "out"  # root writes read-only files: use a missing parent

    def succeed(reporter: Reporter) -> int:
        reporter.set_output("result", "succeeded")
        return 0

    run = run_guarded(succeed, {"GITHUB_OUTPUT": str(target)})
    check(run, 2, "cannot write GITHUB_OUTPUT", "8 our own files")


def test_the_cli_usage_hint_names_the_command(tmp_path: Path) -> None:
    run = run_cli(["deploy", "--image"], {})  # refused by the deploy subparser
    check(run, 2, "(see `python -m deployer deploy --help`)", "9 small", plain=True)
    assert "deployer deployer" not in run.log
    top = run_cli(["nosuchcommand"], {})
    check(top, 2, "(see `python -m deployer --help`)", "9 small", plain=True)
