"""scripts/job_check_run.py: ci.yml's annotation check finds the e2e job whether ci runs on its
own (`End to end …`) or is called by release.yml (`CI / End to end …`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.unit.scripts import ROOT, load_script

jobs = load_script("job_check_run")

E2E = "End to end (kind + registry, uses ./)"


def job(name: str, number: int) -> dict[str, object]:
    return {
        "name": name,
        "check_run_url": f"https://api.github.com/repos/org/django-k8s-deploy/check-runs/{number}",
    }


def run(stdin: str, prefix: str = "End to end") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "job_check_run.py"), prefix],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        (E2E, True),  # ci on push / pull_request
        (f"CI / {E2E}", True),  # ci called by release.yml: `<caller job name> / <job name>`
        (f"Outer / CI / {E2E}", True),
        ("End to end", True),
        ("Unit tests (Python 3.11)", False),
        ("The broken deploy left its failure annotation", False),
        ("CI / Unit tests (Python 3.11)", False),
        ("Not End to end", False),
        ("CI/End to end", False),  # GitHub puts spaces around the slash
    ],
)
def test_the_name_filter_takes_the_plain_and_the_called_form(name: str, ok: bool) -> None:
    assert jobs.name_matches(name, "End to end") is ok


@pytest.mark.parametrize("e2e_name", [E2E, f"CI / {E2E}"])
def test_the_check_run_path_of_the_e2e_job_in_either_form(e2e_name: str) -> None:
    answer = "\n".join(
        json.dumps(j)
        for j in [
            job("Check the version" if "/" in e2e_name else "Quality gates (scripts/lint)", 1),
            job(e2e_name, 42),
            job(e2e_name.replace(E2E, "The broken deploy left its failure annotation"), 43),
        ]
    )
    done = run(answer)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "repos/org/django-k8s-deploy/check-runs/42\n"


def test_whole_pages_are_read_as_well_as_json_lines() -> None:
    pages = json.dumps({"total_count": 2, "jobs": [job("Lint", 1)]}) + json.dumps(
        {"total_count": 2, "jobs": [job(f"CI / {E2E}", 7)]}
    )
    assert jobs.check_run_path(jobs.parse_jobs(pages), "End to end").endswith("/check-runs/7")


def test_a_github_enterprise_api_url_gives_the_same_path() -> None:
    found = {"name": E2E, "check_run_url": "https://ghe.example/api/v3/repos/o/r/check-runs/9"}
    assert jobs.check_run_path([found], "End to end") == "repos/o/r/check-runs/9"


def test_no_matching_job_fails_naming_the_jobs_seen() -> None:
    done = run(json.dumps(job("Lint", 1)))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        "job_check_run: no job named 'End to end'… (or '<caller> / End to end…'); jobs: 'Lint'\n"
    )


def test_two_matching_jobs_fail_rather_than_pick_one() -> None:
    done = run(json.dumps(job(E2E, 1)) + json.dumps(job(f"CI / {E2E}", 2)))
    assert done.returncode == 1
    assert "2 jobs named" in done.stderr


def test_a_check_run_url_that_is_not_one_is_refused() -> None:
    bad = {"name": E2E, "check_run_url": "https://api.github.com/repos/o/r/issues/1"}
    with pytest.raises(LookupError, match="is not a check run"):
        jobs.check_run_path([bad], "End to end")


def test_an_answer_that_is_not_json_is_one_line_and_exit_2() -> None:
    done = run("<html>rate limited</html>")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
