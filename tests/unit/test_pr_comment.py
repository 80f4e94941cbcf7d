"""The preview on the pull request (`github-token` with `dry-run`): the input's rules, decided
before anything is built; the comment posted once and updated in place (found by its marker,
through pages), secrets hidden as in the summary, GitHub's size limit kept, a fork's read-only
token a notice. Against the GitHub stand-in (stack/github_api.py) through the real client, every
exchange checked against GitHub's published description (tests/spec/github-openapi)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer import commenting, report
from deployer.digitalocean.client import RetryPolicy
from deployer.errors import Cancelled, InputError, ReadOnlyToken, ServiceError
from deployer.github_api import GitHubApi
from deployer.settings import PrComment, Settings
from stack.github_api import FakeGitHub, FaultRule
from tests import contract
from tests.unit.runs import make_run
from tests.unit.test_api_calls import counting_world

GH_TOKEN = "ghs_" + "t" * 36
REPO = "team/shop"
PR = 7


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(GH_TOKEN) as fake:
        yield fake
        for entry in fake.requests:  # the contract, for every exchange of every test
            if entry["fault"]:
                contract.check_github_request(entry)
            elif entry["status"] == 401 or (entry["method"], entry["status"]) in (
                ("PATCH", 403),
                ("PATCH", 404),
            ):
                contract.check_github_request(entry)  # undeclared upstream (spec README)
            else:
                contract.check_github_exchange(entry)


def pr_comment(fake: FakeGitHub, *, read_only: bool = False) -> PrComment:
    return PrComment(GH_TOKEN, fake.url, REPO, PR, read_only)


def with_github(world: Any, fake: FakeGitHub, **pr: Any) -> None:
    world.settings = dataclasses.replace(
        world.settings,
        pr_comment=pr_comment(fake, **pr),
        run_url="https://github.com/team/shop/actions/runs/42",
    )
    world.services = dataclasses.replace(world.services, github=GitHubApi)


# --- the input ----------------------------------------------------------------------------------


def event_env(
    tmp_path: Path, event: object, name: str = "pull_request", **more: str
) -> dict[str, str]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return {
        "GITHUB_WORKSPACE": str(tmp_path),
        "GITHUB_EVENT_NAME": name,
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_REPOSITORY": REPO,
        **more,
    }


def pull_request(number: int = PR, head: str = REPO, base: str = REPO) -> dict[str, Any]:
    return {
        "pull_request": {
            "number": number,
            "head": {"repo": {"full_name": head}},
            "base": {"repo": {"full_name": base}},
        }
    }


def parsed(env: dict[str, str], **inputs: str) -> tuple[Settings, list[str]]:
    from deployer import settings

    (Path(env["GITHUB_WORKSPACE"]) / "deploy").mkdir(exist_ok=True)
    (Path(env["GITHUB_WORKSPACE"]) / "deploy" / "deployment.yaml").write_text("kind: Deployment\n")
    (Path(env["GITHUB_WORKSPACE"]) / "Dockerfile").write_text("FROM scratch\n")
    raw = {"image": "reg.example.com/app", "sha": "0" * 40, "cluster": "prod"}
    raw["digitalocean-token"] = "dop_v1_secret"
    raw.update(inputs)
    masked: list[str] = []
    return settings.parse(raw, env, mask=masked.append, github=True), masked


def test_a_token_on_a_pull_request_dry_run_names_the_pull_request_and_is_masked_at_once(
    tmp_path: Path,
) -> None:
    env = event_env(tmp_path, pull_request(), GITHUB_API_URL="https://ghe.example.com/api/v3/")
    config, masked = parsed(env, **{"dry-run": "true", "github-token": f" {GH_TOKEN}\n"})
    assert config.pr_comment == PrComment(
        GH_TOKEN, "https://ghe.example.com/api/v3", REPO, PR, read_only=False
    )
    assert GH_TOKEN in masked
    assert GH_TOKEN in config.secret_values()
    assert GH_TOKEN not in repr(config)


def test_a_fork_or_dependabot_pull_request_is_known_to_have_a_read_only_token(
    tmp_path: Path,
) -> None:
    fork = event_env(tmp_path, pull_request(head="someone/shop"))
    config, _ = parsed(fork, **{"dry-run": "true", "github-token": GH_TOKEN})
    assert config.pr_comment is not None and config.pr_comment.read_only
    bot = event_env(tmp_path, pull_request(), GITHUB_ACTOR="dependabot[bot]")
    config, _ = parsed(bot, **{"dry-run": "true", "github-token": GH_TOKEN})
    assert config.pr_comment is not None and config.pr_comment.read_only


def test_no_token_no_comment(tmp_path: Path) -> None:
    config, _ = parsed(event_env(tmp_path, pull_request()), **{"dry-run": "true"})
    assert config.pr_comment is None


@pytest.mark.parametrize(
    ("event", "name", "inputs", "expected"),
    [
        (pull_request(), "pull_request", {"dry-run": "false"}, "dry-run is not true"),
        (pull_request(), "pull_request", {}, "dry-run is not true"),
        ({"ref": "refs/heads/main"}, "push", {"dry-run": "true"}, "this run is a 'push' event"),
        (pull_request(), "pull_request_target", {"dry-run": "true"}, "'pull_request_target' event"),
        ({"issue": {}}, "pull_request", {"dry-run": "true"}, "names no pull request number"),
        (pull_request(number=0), "pull_request", {"dry-run": "true"}, "no pull request number"),
        ([1, 2], "pull_request", {"dry-run": "true"}, "names no pull request number"),
    ],
)
def test_a_comment_that_could_not_be_posted_is_one_line_about_github_token(
    tmp_path: Path, event: Any, name: str, inputs: dict[str, str], expected: str
) -> None:
    with pytest.raises(InputError) as info:
        parsed(event_env(tmp_path, event, name), **inputs, **{"github-token": GH_TOKEN})
    line = str(info.value)
    assert line.startswith("github-token: ") and expected in line, line
    assert "\n" not in line and GH_TOKEN not in line


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GITHUB_EVENT_PATH": ""}, "GITHUB_EVENT_PATH is not set"),
        ({"GITHUB_EVENT_PATH": "/nonexistent/event.json"}, "cannot read the pull_request event"),
        ({"GITHUB_REPOSITORY": "not a repo"}, "GITHUB_REPOSITORY as owner/name"),
        ({"GITHUB_API_URL": "ftp://x"}, "GITHUB_API_URL as an http(s) URL"),
    ],
)
def test_a_broken_runner_environment_is_one_line_too(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    full = {**event_env(tmp_path, pull_request()), **env}
    with pytest.raises(InputError) as info:
        parsed(full, **{"dry-run": "true", "github-token": GH_TOKEN})
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_an_event_file_that_is_not_json_is_one_line(tmp_path: Path) -> None:
    env = event_env(tmp_path, {})
    Path(env["GITHUB_EVENT_PATH"]).write_text("{not json")
    with pytest.raises(InputError, match="is not a JSON object"):
        parsed(env, **{"dry-run": "true", "github-token": GH_TOKEN})


# --- the comment, through the pipeline ------------------------------------------------------


def test_a_dry_run_posts_one_comment_and_the_next_run_updates_it(
    tmp_path: Path, github: FakeGitHub
) -> None:
    world, _ = counting_world(tmp_path, dry_run=True)
    with_github(world, github)
    assert world.deploy().error is None, world.log.getvalue()
    [first] = github.comments_on(REPO, PR)
    body = first["body"]
    assert body.startswith("<!-- django-k8s-deploy preview: prod/shop -->\n")
    assert "deployment/web in shop: would be created" in body
    assert "[job](https://github.com/team/shop/actions/runs/42)" in body
    assert (
        "posted the preview on pull request #7: https://github.com/team/shop/pull/7#issuecomment-"
        in world.log.getvalue()
    )

    world2, _ = counting_world(_fresh(tmp_path), dry_run=True)
    with_github(world2, github)
    assert world2.deploy().error is None, world2.log.getvalue()
    [second] = github.comments_on(REPO, PR)
    assert second["id"] == first["id"]
    assert "updated the preview on pull request #7" in world2.log.getvalue()
    methods = [(e["method"], e["status"]) for e in github.requests]
    assert methods == [("GET", 200), ("POST", 201), ("GET", 200), ("PATCH", 200)]


def _fresh(tmp_path: Path) -> Path:
    other = tmp_path / "second-run"
    other.mkdir()
    return other


def test_the_marker_is_found_past_the_first_page_and_someone_elses_comment_is_left_alone(
    tmp_path: Path, github: FakeGitHub
) -> None:
    marker = report.comment_marker("prod/shop")
    github.control(
        "POST",
        "/_fake/faults",
        json.dumps(
            {
                "comments": [
                    {
                        "repository": REPO,
                        "number": PR,
                        "body": f"> {marker} quoted",
                        "login": "alice",
                    }
                ]
                + [{"repository": REPO, "number": PR, "body": f"chat {i}"} for i in range(150)]
                + [{"repository": REPO, "number": PR, "body": f"{marker}\nold preview"}]
            }
        ).encode(),
    )
    world, _ = counting_world(tmp_path, dry_run=True)
    with_github(world, github)
    assert world.deploy().error is None, world.log.getvalue()
    comments = github.comments_on(REPO, PR)
    assert len(comments) == 152  # nothing added
    assert comments[0]["body"] == f"> {marker} quoted"
    assert "would be created" in comments[-1]["body"]
    lists = [e for e in github.requests if e["method"] == "GET"]
    assert [e["query"] for e in lists] == ["per_page=100", "per_page=100&page=2"]


def test_a_comment_deleted_between_list_and_update_is_posted_again(
    tmp_path: Path, github: FakeGitHub
) -> None:
    marker = report.comment_marker("prod/shop")
    github.add_comment(REPO, PR, f"{marker}\nold preview")
    original = github.handle
    deleted: list[int] = []

    def deleting_after_the_list(method: str, target: str, headers: Any, body: bytes) -> Any:
        reply = original(method, target, headers, body)
        if method == "GET" and not deleted:  # someone deletes it right after our list
            with github._lock:
                deleted.append(github.comments.pop()["id"])
        return reply

    github.handle = deleting_after_the_list  # type: ignore[method-assign]
    world, _ = counting_world(tmp_path, dry_run=True)
    with_github(world, github)
    assert world.deploy().error is None, world.log.getvalue()
    [comment] = github.comments_on(REPO, PR)
    assert comment["id"] != deleted[0] and "would be created" in comment["body"]
    assert [(e["method"], e["status"]) for e in github.requests] == [
        ("GET", 200),
        ("PATCH", 404),
        ("POST", 201),
    ]


def test_another_target_gets_its_own_comment(tmp_path: Path, github: FakeGitHub) -> None:
    world, _ = counting_world(tmp_path, dry_run=True)
    with_github(world, github)
    world.deploy()
    world2, _ = counting_world(_fresh(tmp_path), dry_run=True, namespace="staging")
    with_github(world2, github)
    world2.deploy()
    assert [c["body"].splitlines()[0] for c in github.comments_on(REPO, PR)] == [
        "<!-- django-k8s-deploy preview: prod/shop -->",
        "<!-- django-k8s-deploy preview: prod/staging -->",
    ]


def test_secrets_are_hidden_in_the_comment_as_in_the_summary(
    tmp_path: Path, github: FakeGitHub
) -> None:
    world, _ = counting_world(tmp_path, dry_run=True)
    with_github(world, github)
    secret = "registry-password-1234"
    world.reporter.mask(secret)
    run = make_run(world.settings, world.reporter, world.services)
    run.outcome.image_ref = "reg/app:1"
    run.outcome.preview = [f"configmap/app-config: data.TOKEN: (none) → {secret!r}"]
    commenting.comment_preview(run)
    [comment] = github.comments_on(REPO, PR)
    assert secret not in comment["body"] and "***" in comment["body"]
    assert all(secret not in e["body"] for e in github.requests)


def test_a_huge_preview_is_cut_to_githubs_limit_with_a_link_to_the_job(
    tmp_path: Path, github: FakeGitHub
) -> None:
    world, _ = counting_world(tmp_path, dry_run=True)
    with_github(world, github)
    run = make_run(world.settings, world.reporter, world.services)
    run.outcome.image_ref = "reg/app:1"
    run.outcome.preview = [f"configmap/c{i}: data.K: (none) → {'é' * 300!r}" for i in range(400)]
    commenting.comment_preview(run)
    assert run.outcome.error is None, world.log.getvalue()
    [comment] = github.comments_on(REPO, PR)  # the stand-in refuses a body over 65536 characters
    body = comment["body"]
    assert len(body) <= 65536
    assert body.rstrip().endswith(
        "The whole preview is in the job's summary and log: "
        "https://github.com/team/shop/actions/runs/42"
    )
    assert "more line(s) not shown" in body and "```\n…" in body


def test_a_forks_read_only_token_is_a_notice_not_a_failure(
    tmp_path: Path, github: FakeGitHub
) -> None:
    github.read_only = True
    world, _ = counting_world(tmp_path, dry_run=True)
    with_github(world, github, read_only=True)
    outcome = world.deploy()
    assert outcome.error is None
    log = world.log.getvalue()
    notices = [line for line in log.splitlines() if line.startswith("::notice")]
    assert len(notices) == 1 and "Preview not posted" in notices[0]
    assert "comes from a fork (or Dependabot)" in notices[0]
    assert github.comments_on(REPO, PR) == []


def test_a_read_only_token_on_the_repositorys_own_pull_request_fails_naming_the_permission(
    tmp_path: Path, github: FakeGitHub
) -> None:
    github.read_only = True
    world, _ = counting_world(tmp_path, dry_run=True)
    with_github(world, github)
    outcome = world.deploy()
    assert isinstance(outcome.error, ReadOnlyToken) and outcome.error.exit_code == 2
    assert "permissions: pull-requests: write" in str(outcome.error)
    assert "Resource not accessible by integration" in str(outcome.error)
    assert "pull-requests: write" in world.summary


def test_a_locked_conversation_is_not_blamed_on_the_permission(
    tmp_path: Path, github: FakeGitHub
) -> None:
    github.locked = True
    world, _ = counting_world(tmp_path, dry_run=True)
    with_github(world, github, read_only=True)  # even on a fork: not the read-only refusal
    outcome = world.deploy()
    assert isinstance(outcome.error, InputError) and not isinstance(outcome.error, ReadOnlyToken)
    line = str(outcome.error)
    assert line.startswith("github-token: GitHub refused to comment on the pull request (HTTP 403")
    assert "locked" in line and "\n" not in line


def test_a_failed_preview_says_so_on_the_pull_request(tmp_path: Path, github: FakeGitHub) -> None:
    world, _ = counting_world(tmp_path, dry_run=True)
    (tmp_path / "deploy" / "deployment.yaml").write_text("kind: [unclosed\n")
    with_github(world, github)
    outcome = world.deploy()
    assert isinstance(outcome.error, InputError)
    [comment] = github.comments_on(REPO, PR)
    assert "**The preview failed:**" in comment["body"]
    assert "deployment.yaml" in comment["body"]


def test_a_github_outage_after_retries_fails_the_run_with_exit_3(
    tmp_path: Path, github: FakeGitHub
) -> None:
    github.faults.append(FaultRule(502, count=99))
    world, _ = counting_world(tmp_path, dry_run=True)
    world.settings = dataclasses.replace(world.settings, pr_comment=pr_comment(github))
    world.services = dataclasses.replace(
        world.services,
        github=lambda token, url: GitHubApi(
            token, url, retry=RetryPolicy(total=2, sleep=lambda s: None)
        ),
    )
    outcome = world.deploy()
    assert isinstance(outcome.error, ServiceError) and outcome.error.exit_code == 3
    assert "GitHub API: could not list the pull request's comments: HTTP 502" in str(outcome.error)
    assert "(after 3 attempts)" in str(outcome.error)


def test_a_cancelled_run_leaves_the_comment_alone(tmp_path: Path, github: FakeGitHub) -> None:
    world, _ = counting_world(tmp_path, dry_run=True)
    with_github(world, github)
    run = make_run(world.settings, world.reporter, world.services)
    run.outcome.error = Cancelled("cancelled by SIGINT")
    commenting.comment_preview(run)
    assert github.requests == []
    assert "the preview comment on the pull request was left as it was" in world.log.getvalue()


def test_the_stand_in_links_pages_as_github_does(github: FakeGitHub) -> None:
    for i in range(5):
        github.add_comment(REPO, PR, f"c{i}")
    path = f"/repos/{REPO}/issues/{PR}/comments"
    auth = {"authorization": f"Bearer {GH_TOKEN}"}
    middle = github.handle("GET", f"{path}?per_page=2&page=2", auth, b"")
    base = f"{github.url}{path}?per_page=2"
    assert middle.headers["link"] == (
        f'<{base}&page=1>; rel="prev", <{base}&page=3>; rel="next", '
        f'<{base}&page=3>; rel="last", <{base}&page=1>; rel="first"'
    )
    assert "link" not in github.handle("GET", f"{path}?per_page=100", auth, b"").headers
    assert github.handle("GET", path, {}, b"").status == 401
    assert github.handle("GET", f"{path}?per_page=101", auth, b"").status == 422
    # Stricter than GitHub (which clamps), so outside the list's declared answers: a client
    # sending it fails the contract. Kept out of the fixture's check, the rest checked there.
    assert github.requests.pop()["status"] == 422


def test_without_dry_run_nothing_is_posted(tmp_path: Path) -> None:
    world, _ = counting_world(tmp_path)
    assert world.settings.pr_comment is None
    assert world.deploy().error is None  # the default Services has no GitHub client: not called


# --- the comment's text (pure) ------------------------------------------------------------------


def test_the_comment_fits_the_limit_exactly_counting_wide_characters() -> None:
    lines = ["😀" * 100 for _ in range(50)]  # two UTF-16 units each
    body = report.preview_comment(
        target="c/ns", image_ref="r/a:1", preview=lines, error="", run_url="", limit=3000
    )
    assert len(body.encode("utf-16-le")) // 2 <= 3000
    assert body.endswith("The whole preview is in the job's summary and log.")
    kept = body.split("```text\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert kept and all(line == "😀" * 100 for line in kept)
    assert f"… {50 - len(kept)} more line(s) not shown" in body


def test_a_small_preview_is_whole_and_backticks_cannot_close_its_fence() -> None:
    body = report.preview_comment(
        target="c", image_ref="r/a:1", preview=["a ```x``` b"], error="", run_url=""
    )
    assert "```text\na '''x''' b\n```" in body and "not shown" not in body


def test_the_target_is_the_cluster_and_the_namespace_input() -> None:
    base = Settings(image="r/a", sha="0" * 40, workspace=Path(), manifests=())
    assert commenting.target_of(base) == "kubeconfig"
    assert (
        commenting.target_of(dataclasses.replace(base, cluster="prod", namespace="shop"))
        == "prod/shop"
    )


# --- the client against the stand-in -----------------------------------------------------------


def test_the_client_pages_creates_and_updates_in_contract(github: FakeGitHub) -> None:
    with GitHubApi(GH_TOKEN, github.url) as api:
        created = api.create_comment(REPO, PR, "hello")
        for i in range(120):
            github.add_comment(REPO, PR, f"c{i}")
        assert len(list(api.comments(REPO, PR))) == 121
        updated = api.update_comment(REPO, created.id, "bye")
    assert (updated.id, updated.body) == (created.id, "bye")


def test_a_next_link_to_another_host_is_refused_before_the_token_goes_there(
    github: FakeGitHub,
) -> None:
    for i in range(120):
        github.add_comment(REPO, PR, f"c{i}")
    github.link_base = "http://127.0.0.2:1"
    with (
        GitHubApi(GH_TOKEN, github.url) as api,
        pytest.raises(ServiceError, match="points elsewhere"),
    ):
        list(api.comments(REPO, PR))


def test_a_wrong_token_names_the_input(github: FakeGitHub) -> None:
    with GitHubApi("ghs_wrong", github.url) as api, pytest.raises(InputError) as info:
        list(api.comments(REPO, PR))
    assert str(info.value).startswith("github-token: GitHub rejected the token")
    assert "Bad credentials" in str(info.value)


def test_a_token_with_a_line_break_is_refused_without_being_shown() -> None:
    with pytest.raises(InputError) as info:
        GitHubApi("ghs_abc\ndef")
    assert "ghs_abc" not in str(info.value)


def test_reads_and_updates_are_retried_a_create_only_when_it_never_connected(
    github: FakeGitHub,
) -> None:
    slept: list[float] = []
    policy = RetryPolicy(total=3, sleep=slept.append)
    github.faults += [FaultRule(503, count=2, method="GET"), FaultRule(502, method="PATCH")]
    with GitHubApi(GH_TOKEN, github.url, retry=policy) as api:
        assert list(api.comments(REPO, PR)) == []
        github.faults.append(FaultRule(502, method="POST"))
        with pytest.raises(ServiceError, match="HTTP 502"):
            api.create_comment(REPO, PR, "once")
        made = api.create_comment(REPO, PR, "once")
        api.update_comment(REPO, made.id, "twice")
    assert [c["body"] for c in github.comments_on(REPO, PR)] == ["twice"]
    statuses = [(e["method"], e["status"]) for e in github.requests]
    assert statuses == [
        ("GET", 503), ("GET", 503), ("GET", 200),
        ("POST", 502), ("POST", 201),
        ("PATCH", 502), ("PATCH", 200),
    ]  # fmt: skip
    assert sum(slept) > 0  # urllib3's backoff: none before the first retry, then growing


def test_a_secondary_rate_limit_403_waits_its_retry_after(github: FakeGitHub) -> None:
    slept: list[float] = []
    github.faults.append(FaultRule(403, method="GET", retry_after=7))
    with GitHubApi(GH_TOKEN, github.url, retry=RetryPolicy(sleep=slept.append)) as api:
        assert list(api.comments(REPO, PR)) == []
    assert slept == [7.0]


def test_the_stand_in_refuses_a_body_over_the_limit_and_the_client_says_why(
    github: FakeGitHub,
) -> None:
    with GitHubApi(GH_TOKEN, github.url) as api, pytest.raises(ServiceError) as info:
        api.create_comment(REPO, PR, "x" * 65537)
    assert "HTTP 422" in str(info.value) and "Validation Failed" in str(info.value)


def test_the_contract_check_catches_a_comment_without_its_required_fields(
    github: FakeGitHub,
) -> None:
    with GitHubApi(GH_TOKEN, github.url) as api:
        api.create_comment(REPO, PR, "hello")
    entry = dict(github.requests.pop())
    broken = json.loads(entry["response_body"])
    del broken["node_id"]
    entry["response_body"] = json.dumps(broken)
    with pytest.raises(Exception, match=r"node_id|InvalidData|validat"):
        contract.check_github_exchange(entry)


def test_the_contract_check_catches_a_request_without_a_body(github: FakeGitHub) -> None:
    entry = {
        "method": "POST",
        "path": f"/repos/{REPO}/issues/{PR}/comments",
        "query": "",
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"text": "hi"}),
    }
    with pytest.raises(Exception):  # noqa: B017,PT011 - openapi-core's own error classes
        contract.check_github_request(entry)
