"""scripts/release.py: the release's decisions (create, resume, refuse; move vX or not; Latest or
not), the release commit (action.yml pinned, CHANGELOG cut), the notes — against a real local
repository (GitRemote, what the rehearsal uses) and through the GitHub API calls the workflow makes
(GitHubRemote, answered by a fake GitHub backed by a real repository)."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.unit.scripts import ROOT, load_script

release = load_script("release")

IMAGE = "ghcr.io/org/django-k8s-deploy"
DIGEST = "sha256:" + "ab" * 32
REFERENCE = f"{IMAGE}@{DIGEST}"
DAY = datetime.date(2026, 12, 6)
CHANGELOG = """\
# Changelog

Intro.

## [Unreleased]

### Fixed

- The first fix.
- The second fix, over
  two lines.
"""


def git(git_dir: Path, *args: str, stdin: str | None = None, **env: str) -> str:
    done = subprocess.run(
        ["git", f"--git-dir={git_dir}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    return done.stdout.strip()


AUTHOR = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@localhost",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@localhost",
}


def commit_files(git_dir: Path, files: Mapping[str, str], parent: str | None = None) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": f"{tmp}/index"}
        if parent:
            git(git_dir, "read-tree", parent, **index)
        for path, text in files.items():
            blob = git(git_dir, "hash-object", "-w", "--stdin", stdin=text)
            git(git_dir, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", **index)
        tree = git(git_dir, "write-tree", **index)
    argv = ["commit-tree", tree, "-m", "a commit on main"]
    if parent:
        argv += ["-p", parent]
    return git(git_dir, *argv, **AUTHOR)


class FakeGitHub:
    """The Git data, refs and contents endpoints the release calls, answered from a bare repo, as
    GitHub answers them (422 for a ref that exists, 404 for one that does not)."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self.calls: list[tuple[str, str]] = []

    def __call__(self, method: str, path: str, body: Mapping[str, Any] | None) -> Any:
        self.calls.append((method, path))
        route = path.removeprefix("repos/org/django-k8s-deploy/")
        g = self.git_dir
        if (method, route) == ("GET", "git/matching-refs/tags/v"):
            refs = git(g, "for-each-ref", "refs/tags/v*", "--format=%(refname) %(objectname)")
            page = [
                {"ref": ref, "object": {"sha": sha, "type": "commit"}}
                for ref, sha in (line.split() for line in refs.splitlines())
            ]
            return [page]  # --paginate --slurp: a list of pages
        if found := re.fullmatch(r"git/commits/([0-9a-f]{40})", route):
            sha = found.group(1)
            parents = git(g, "log", "-1", "--format=%P", sha).split()
            return {
                "sha": sha,
                "message": git(g, "log", "-1", "--format=%B", sha) + "\n",
                "tree": {"sha": git(g, "rev-parse", f"{sha}^{{tree}}")},
                "parents": [{"sha": p} for p in parents],
            }
        if found := re.fullmatch(r"contents/([\w.]+)\?ref=([0-9a-f]{40})", route):
            return git(g, "show", f"{found.group(2)}:{found.group(1)}") + "\n"
        if (method, route) == ("POST", "git/blobs"):
            assert body is not None and body["encoding"] == "utf-8"
            return {"sha": git(g, "hash-object", "-w", "--stdin", stdin=body["content"])}
        if (method, route) == ("POST", "git/trees"):
            assert body is not None
            with tempfile.TemporaryDirectory() as tmp:
                index = {"GIT_INDEX_FILE": f"{tmp}/index"}
                git(g, "read-tree", body["base_tree"], **index)
                for entry in body["tree"]:
                    info = f"{entry['mode']},{entry['sha']},{entry['path']}"
                    git(g, "update-index", "--add", "--cacheinfo", info, **index)
                return {"sha": git(g, "write-tree", **index)}
        if (method, route) == ("POST", "git/commits"):
            assert body is not None
            parents = [a for p in body["parents"] for a in ("-p", p)]
            sha = git(g, "commit-tree", body["tree"], *parents, "-m", body["message"], **AUTHOR)
            return {"sha": sha}
        if (method, route) == ("POST", "git/refs"):
            assert body is not None
            if git(g, "for-each-ref", body["ref"]):
                raise release.ReleaseError(
                    "gh api POST git/refs: Reference already exists (HTTP 422)"
                )
            git(g, "update-ref", body["ref"], body["sha"])
            return {"ref": body["ref"]}
        if found := re.fullmatch(r"git/refs/(tags/[\w.]+)", route):
            assert method == "PATCH" and body is not None and body["force"] is True
            assert git(g, "for-each-ref", f"refs/{found.group(1)}"), "PATCH of a missing ref: 422"
            git(g, "update-ref", f"refs/{found.group(1)}", body["sha"])
            return {}
        raise AssertionError(f"unexpected call {method} {path}")


class Repo:
    def __init__(self, root: Path, kind: str) -> None:
        self.git_dir = root / "origin.git"
        git(self.git_dir.parent, "init", "--bare", "--quiet", str(self.git_dir))
        self.worktree = root / "work"
        self.worktree.mkdir()
        (self.worktree / "action.yml").write_text((ROOT / "action.yml").read_text())
        (self.worktree / "CHANGELOG.md").write_text(CHANGELOG)
        self.source = commit_files(
            self.git_dir,
            {
                "action.yml": (self.worktree / "action.yml").read_text(),
                "CHANGELOG.md": CHANGELOG,
            },
        )
        self.github = FakeGitHub(self.git_dir)
        self.remote: Any = (
            release.GitRemote(self.git_dir)
            if kind == "git"
            else release.GitHubRemote("org/django-k8s-deploy", api=self.github)
        )

    def tags(self) -> dict[str, str]:
        return release.GitRemote(self.git_dir).tags()  # type: ignore[no-any-return]

    def tag(self, name: str, sha: str) -> None:
        git(self.git_dir, "update-ref", f"refs/tags/{name}", sha)

    def plan(self, version: str, image: str = IMAGE) -> Any:
        return release.plan(version, self.source, image, self.remote)

    def make(self, version: str, reference: str = REFERENCE, source: str | None = None) -> Any:
        return release.make_release_commit(
            version, source or self.source, reference, self.worktree, self.remote, DAY
        )

    def fake_release(self, version: str) -> str:
        """A release made earlier (of another main commit), tagged as the release tags it."""
        main = commit_files(self.git_dir, {"README": version}, parent=self.source)
        commit = commit_files(self.git_dir, {"x": version}, parent=main)
        self.tag(version, commit)
        return commit


@pytest.fixture(params=["git", "github"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repo:
    return Repo(tmp_path, request.param)


def test_a_new_version_is_created_moves_its_major_and_is_latest(repo: Repo) -> None:
    assert repo.plan("v1.0.0").outputs() == {
        "version": "v1.0.0",
        "major": "v1",
        "resume": "false",
        "commit": "",
        "digest": "",
        "move_major": "true",
        "make_latest": "true",
    }


def test_the_release_commit_pins_the_image_cuts_the_changelog_and_is_tagged(repo: Repo) -> None:
    commit, made = repo.make("v1.0.0")
    assert made
    assert repo.tags() == {"v1.0.0": commit}
    assert git(repo.git_dir, "log", "-1", "--format=%P", commit) == repo.source
    assert git(repo.git_dir, "log", "-1", "--format=%s", commit) == (
        f"Release v1.0.0: action.yml runs {REFERENCE}"
    )
    changed = git(repo.git_dir, "diff", "--name-only", repo.source, commit).split()
    assert changed == ["CHANGELOG.md", "action.yml"]
    action = git(repo.git_dir, "show", f"{commit}:action.yml")
    assert f"  image: 'docker://{REFERENCE}'" in action.splitlines()
    changelog = git(repo.git_dir, "show", f"{commit}:CHANGELOG.md") + "\n"
    assert changelog == CHANGELOG.replace(
        "## [Unreleased]\n", "## [Unreleased]\n\n## [v1.0.0] - 2026-12-06\n"
    )
    assert release.notes(changelog, release.Version.parse("v1.0.0")) == (
        "### Fixed\n\n- The first fix.\n- The second fix, over\n  two lines.\n"
    )


def test_a_rerun_after_the_tag_exists_resumes_and_makes_nothing_twice(repo: Repo) -> None:
    commit, _ = repo.make("v1.0.0")
    objects = git(repo.git_dir, "count-objects")
    assert repo.plan("v1.0.0").outputs() | {"commit": "-"} == {
        "version": "v1.0.0",
        "major": "v1",
        "resume": "true",
        "commit": "-",
        "digest": DIGEST,
        "move_major": "true",
        "make_latest": "true",
    }
    assert repo.plan("v1.0.0").release_commit == commit
    assert repo.make("v1.0.0") == (commit, False)
    assert git(repo.git_dir, "count-objects") == objects
    assert repo.tags() == {"v1.0.0": commit}


def test_a_version_tagged_on_anything_but_a_release_commit_of_this_source_is_refused(
    repo: Repo,
) -> None:
    repo.tag("v1.0.0", repo.source)
    with pytest.raises(release.ReleaseError, match=r"already tagged at .* never moved"):
        repo.plan("v1.0.0")
    with pytest.raises(release.ReleaseError, match="already tagged"):
        repo.make("v1.0.0")


def test_a_release_commit_of_another_main_commit_is_not_resumed(repo: Repo) -> None:
    repo.make("v1.0.0")
    later = commit_files(repo.git_dir, {"README": "later"}, parent=repo.source)
    with pytest.raises(release.ReleaseError, match=f"not a release commit of {later}"):
        release.plan("v1.0.0", later, IMAGE, repo.remote)


def test_resuming_a_release_of_another_image_is_refused(repo: Repo) -> None:
    repo.make("v1.0.0")
    with pytest.raises(release.ReleaseError, match=r"not an image of ghcr.io/org/other"):
        repo.plan("v1.0.0", image="ghcr.io/org/other")


def test_a_backport_after_a_higher_minor_neither_moves_the_major_nor_is_latest(repo: Repo) -> None:
    newer = repo.fake_release("v1.3.0")
    repo.tag("v1", newer)
    decided = repo.plan("v1.2.4")
    assert (decided.move_major, decided.make_latest) == (False, False)
    commit, _ = repo.make("v1.2.4")
    _, said = release.move_major("v1.2.4", repo.source, IMAGE, repo.remote)
    assert said == "v1 stays: a higher v1.* exists"
    assert repo.tags() == {"v1": newer, "v1.3.0": newer, "v1.2.4": commit}


def test_the_newest_of_an_older_major_moves_its_major_but_is_not_latest(repo: Repo) -> None:
    repo.fake_release("v1.3.0")
    v2 = repo.fake_release("v2.0.0")
    decided = repo.plan("v1.4.0")
    assert (decided.move_major, decided.make_latest) == (True, False)
    commit, _ = repo.make("v1.4.0")
    release.move_major("v1.4.0", repo.source, IMAGE, repo.remote)
    assert repo.tags()["v1"] == commit
    assert repo.tags()["v2.0.0"] == v2


def test_the_major_tag_is_created_then_moved_forward(repo: Repo) -> None:
    repo.fake_release("v1.0.0")
    old = repo.tags()["v1.0.0"]
    repo.tag("v1", old)
    commit, _ = repo.make("v1.0.1")
    _, said = release.move_major("v1.0.1", repo.source, IMAGE, repo.remote)
    assert said == f"v1 now points at {commit} (v1.0.1)"
    assert repo.tags()["v1"] == commit
    _, again = release.move_major("v1.0.1", repo.source, IMAGE, repo.remote)
    assert again == f"v1 already points at {commit}"


def test_the_major_is_not_moved_to_a_version_not_tagged_yet(repo: Repo) -> None:
    with pytest.raises(release.ReleaseError, match="not tagged yet"):
        release.move_major("v1.0.0", repo.source, IMAGE, repo.remote)


@pytest.mark.parametrize(
    "version",
    ["1.2.3", "v1.2", "v1.2.3.4", "v01.2.3", "v1.2.3-rc.1", "v1.2.3\n", " v1.2.3", "V1.2.3", ""],
)
def test_anything_but_v_major_minor_patch_is_refused(version: str) -> None:
    with pytest.raises(release.ReleaseError, match=r"is not vMAJOR.MINOR.PATCH"):
        release.Version.parse(version)


def test_versions_compare_as_numbers_not_text() -> None:
    parse = release.Version.parse
    assert parse("v1.10.0") > parse("v1.9.3") > parse("v1.9.0") > parse("v0.99.99")


def test_the_source_must_be_a_full_sha(repo: Repo) -> None:
    with pytest.raises(release.ReleaseError, match="40-hex"):
        release.plan("v1.0.0", repo.source[:12], IMAGE, repo.remote)


def test_an_empty_unreleased_section_is_nothing_to_release() -> None:
    empty = "# Changelog\n\n## [Unreleased]\n\n## [v1.0.0] - 2026-01-01\n\n- Old.\n"
    with pytest.raises(release.ReleaseError, match="nothing under Unreleased"):
        release.cut_changelog(empty, release.Version.parse("v1.0.1"), DAY)


def test_a_version_already_in_the_changelog_is_refused() -> None:
    text = CHANGELOG + "\n## [v1.0.0] - 2026-01-01\n\n- Old.\n"
    with pytest.raises(release.ReleaseError, match=r"already has a v1.0.0 section"):
        release.cut_changelog(text, release.Version.parse("v1.0.0"), DAY)


def test_notes_stop_at_the_next_version_and_refuse_a_missing_one() -> None:
    v = release.Version.parse
    text = (
        release.cut_changelog(CHANGELOG, v("v1.0.0"), DAY)
        + "\n## [v0.9.0] - 2026-01-01\n\n- Old.\n"
    )
    assert "Old." not in release.notes(text, v("v1.0.0"))
    with pytest.raises(release.ReleaseError, match=r"0 '## \[v1.1.0\]' headings"):
        release.notes(text, v("v1.1.0"))


def test_the_repositorys_changelog_cuts_and_yields_its_unreleased_entries_as_notes() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    version = release.Version.parse("v1.0.0")
    cut = release.cut_changelog(text, version, DAY)
    start = text.index("## [Unreleased]\n") + len("## [Unreleased]\n")
    following = re.search(r"^## ", text[start:], re.M)
    unreleased = text[start : start + following.start() if following else None]
    assert release.notes(cut, version) == unreleased.strip("\n") + "\n"


def test_main_still_listing_the_previous_releases_entries_is_refused(repo: Repo) -> None:
    first, _ = repo.make("v1.0.0")
    # main was not given v1.0.0's heading: its Unreleased still holds the released entries.
    (repo.worktree / "CHANGELOG.md").write_text(CHANGELOG.replace("- The first fix.", "- New."))
    later = commit_files(repo.git_dir, {"README": "later"}, parent=repo.source)
    with pytest.raises(release.ReleaseError, match=r"released in v1.0.0"):
        repo.make("v1.0.1", source=later)
    assert set(repo.tags()) == {"v1.0.0"}
    # Once main has the heading, only the new entries are under Unreleased.
    (repo.worktree / "CHANGELOG.md").write_text(
        git(repo.git_dir, "show", f"{first}:CHANGELOG.md").replace(
            "## [Unreleased]\n", "## [Unreleased]\n\n- New.\n"
        )
    )
    commit, made = repo.make("v1.0.1", source=later)
    assert made
    notes = release.notes(
        git(repo.git_dir, "show", f"{commit}:CHANGELOG.md"), release.Version.parse("v1.0.1")
    )
    assert notes == "- New.\n"


def test_the_github_remote_makes_the_commit_through_the_git_data_api(tmp_path: Path) -> None:
    repo = Repo(tmp_path, "github")
    repo.make("v1.0.0")
    writes = [(m, p.split("/", 3)[3]) for m, p in repo.github.calls if m != "GET"]
    assert writes == [
        ("POST", "git/blobs"),
        ("POST", "git/blobs"),
        ("POST", "git/trees"),
        ("POST", "git/commits"),
        ("POST", "git/refs"),
    ]


def cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "release.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_the_cli_writes_key_value_outputs_to_github_output(tmp_path: Path) -> None:
    repo = Repo(tmp_path, "git")
    out = tmp_path / "github_output"
    done = cli(
        "plan",
        "--version=v1.0.0",
        f"--source={repo.source}",
        f"--image={IMAGE}",
        f"--git-dir={repo.git_dir}",
        env={"GITHUB_OUTPUT": str(out)},
    )
    assert done.returncode == 0, done.stderr
    assert "resume=false\n" in done.stdout
    assert out.read_text() == done.stdout


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["plan", "--version=1.0", "--source=" + "a" * 40, "--image=x"],
            "is not vMAJOR.MINOR.PATCH",
        ),
        (["notes", "--version=v1.0.0", "--changelog=/nonexistent"], "cannot read /nonexistent"),
        (["plan", "--version=v1.0.0", "--source=" + "a" * 40, "--image=x"], "is not OWNER/NAME"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], error: str) -> None:
    done = cli(*args, env={"GITHUB_REPOSITORY": "not a repository"})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert error in done.stderr


def test_a_git_failure_is_one_line_too(tmp_path: Path) -> None:
    done = cli(
        "plan", "--version=v1.0.0", "--source=" + "a" * 40, "--image=x", f"--git-dir={tmp_path}"
    )
    assert done.returncode == 2
    assert done.stderr.startswith("release: git for-each-ref: ")
    assert done.stderr.count("\n") == 1


_: Callable[..., Any] = release.main  # the entry point the workflow runs exists


def test_with_mains_changelog_the_plan_refuses_early_what_the_commit_would_refuse(
    repo: Repo,
) -> None:
    empty = "# Changelog\n\n## [Unreleased]\n"
    with pytest.raises(release.ReleaseError, match="nothing under Unreleased"):
        release.plan("v1.0.0", repo.source, IMAGE, repo.remote, empty)
    assert release.plan("v1.0.0", repo.source, IMAGE, repo.remote, CHANGELOG).release_commit is None
    first, _ = repo.make("v1.0.0")
    later = commit_files(repo.git_dir, {"README": "later"}, parent=repo.source)
    with pytest.raises(
        release.ReleaseError, match=r"still lists 2 change\(s\) released in v1\.0\.0"
    ):
        release.plan("v1.0.1", later, IMAGE, repo.remote, CHANGELOG)
    # Resuming, main's CHANGELOG is not the release's any more: it is not looked at.
    assert release.plan("v1.0.0", repo.source, IMAGE, repo.remote, empty).release_commit == first


def fake_gh(tmp_path: Path, answer: str, exit_code: int = 0) -> dict[str, str]:
    """A `gh` on PATH that records its argv and stdin and prints `answer`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "gh.log"
    script = bin_dir / "gh"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {log}\n'
        f"cat >> {log}\n"
        f"printf '%s' '{answer}'\n"
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "LOG": str(log)}


def test_gh_api_sends_bodies_on_stdin_and_pages_the_tag_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fake_gh(tmp_path, '{"sha": "' + "c" * 40 + '"}')
    monkeypatch.setenv("PATH", env["PATH"])
    answer = release.gh_api("POST", "repos/o/r/git/refs", {"ref": "refs/tags/v1.0.0", "sha": "c"})
    assert answer == {"sha": "c" * 40}
    release.gh_api("GET", "repos/o/r/git/matching-refs/tags/v")
    release.gh_api("GET", "repos/o/r/contents/action.yml?ref=" + "c" * 40)
    log = Path(env["LOG"]).read_text().splitlines()
    assert log == [
        "api --method POST repos/o/r/git/refs --input -",
        '{"ref": "refs/tags/v1.0.0", "sha": "c"}api --method GET repos/o/r/git/matching-refs/tags/v --paginate --slurp',
        "api --method GET repos/o/r/contents/action.yml?ref="
        + "c" * 40
        + " -H Accept: application/vnd.github.raw+json",
    ]


def test_a_gh_failure_is_one_release_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = fake_gh(tmp_path, "HTTP 422: Reference already exists", exit_code=1)
    monkeypatch.setenv("PATH", env["PATH"])
    with pytest.raises(release.ReleaseError, match="gh api POST repos/o/r/git/refs: HTTP 422"):
        release.gh_api("POST", "repos/o/r/git/refs", {"ref": "refs/tags/v1.0.0", "sha": "c"})
