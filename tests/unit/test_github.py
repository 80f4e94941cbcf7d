"""Workflow commands, outputs and summary; secrets never leave through any of them."""

from __future__ import annotations

import io
from pathlib import Path

from deployer.github import Reporter


def make(tmp_path: Path, github: bool = True) -> tuple[Reporter, io.StringIO]:
    stream = io.StringIO()
    reporter = Reporter(
        github=github, output_file=tmp_path / "out", summary_file=tmp_path / "sum", stream=stream
    )
    return reporter, stream


def test_mask_registers_each_line_and_redacts_our_own_output(tmp_path: Path) -> None:
    reporter, stream = make(tmp_path)
    reporter.mask("first-secret\nsecond-secret")
    reporter.line("using first-secret and second-secret")
    reporter.set_output("x", "second-secret")
    reporter.summary("first-secret in summary")
    log = stream.getvalue()
    assert "::add-mask::first-secret\n" in log and "::add-mask::second-secret\n" in log
    assert "using *** and ***" in log
    assert "secret" not in (tmp_path / "out").read_text().replace("***", "")
    assert (tmp_path / "sum").read_text() == "*** in summary\n\n"


def test_outputs_use_a_random_heredoc_delimiter_per_value(tmp_path: Path) -> None:
    reporter, _ = make(tmp_path)
    reporter.set_output("deployments", '[{"name": "web"}]\nsecond line')
    reporter.set_output("result", "succeeded")
    lines = (tmp_path / "out").read_text().splitlines()
    assert lines[0].startswith("deployments<<ghadelimiter_")
    assert lines[1:3] == ['[{"name": "web"}]', "second line"]
    assert lines[3] == lines[0].split("<<")[1]
    assert lines[4].startswith("result<<ghadelimiter_") and lines[4] != lines[0].replace(
        "deployments", "result"
    )


def test_error_annotation_escapes_properties_and_keeps_data_on_one_line(tmp_path: Path) -> None:
    reporter, stream = make(tmp_path)
    reporter.error("bad: 50%\nnext", title="Invalid input, again", file="deploy/a.yaml", line=7)
    assert (
        stream.getvalue()
        == "::error title=Invalid input%2C again,file=deploy/a.yaml,line=7::bad: 50%25\u23cenext\n"
    )


def test_terminal_mode_prints_plain_lines(tmp_path: Path) -> None:
    reporter, stream = make(tmp_path, github=False)
    reporter.mask("hunter22")
    with reporter.group("Build"):
        reporter.error("login with hunter22 failed", file="deploy/a.yaml", line=3)
    text = stream.getvalue()
    assert "::" not in text
    assert text.startswith("==> Build\nerror: deploy/a.yaml:3: login with *** failed\n")


def test_untrusted_output_is_fenced_with_stop_commands(tmp_path: Path) -> None:
    reporter, stream = make(tmp_path)
    with reporter.untrusted():
        reporter.line("::error::injected by a Dockerfile")
    first, injected, last = stream.getvalue().splitlines()
    token = first.removeprefix("::stop-commands::")
    assert len(token) == 32 and last == f"::{token}::"
    assert injected == ": :error::injected by a Dockerfile"  # neutralised even inside the fence
