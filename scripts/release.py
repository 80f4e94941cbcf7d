#!/usr/bin/env python3
"""The release's decisions and its writes to the repository, one place for both (release.yml runs
it; scripts/release-rehearsal runs it against a throwaway bare repository, no GitHub).

    release.py plan    --version vX.Y.Z --source SHA --image REPO [--changelog CHANGELOG.md]
    release.py commit  --version vX.Y.Z --source SHA --reference REPO@sha256:…   [--date D]
    release.py notes   --version vX.Y.Z [--changelog CHANGELOG.md]    the release notes
    release.py major   --version vX.Y.Z --source SHA --image REPO     move vX if this is its newest
    (each takes --git-dir DIR to act on a local repository instead of $GITHUB_REPOSITORY)

plan:   vX.Y.Z not tagged -> create. Tagged at a release commit of this very source (its only
        parent is SHA, its message "Release vX.Y.Z: …") -> resume: nothing is made twice, the
        image is the one that commit pins. Tagged anywhere else -> refused (release tags never
        move). vX moves only if no higher vX.* exists; the release is Latest only if no higher
        version exists at all (a backport v1.2.4 after v1.3.0 neither moves v1 nor becomes Latest).
commit: the release commit on top of SOURCE: action.yml pinned to the image
        (scripts/pin-action-image) and CHANGELOG.md's "Unreleased" turned into "[vX.Y.Z] - date";
        then the vX.Y.Z tag on it. Resuming, it makes nothing and names the existing commit.
notes:  the vX.Y.Z section of CHANGELOG.md (read it from the release commit).
major:  vX to the release commit, if plan says so.

Outputs are `key=value` lines on stdout (and appended to $GITHUB_OUTPUT when set). Bad input or a
refusal: one line on stderr, exit 2. Standard library only: it runs on the bare runner.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SCRIPTS = Path(__file__).resolve().parent
VERSION = re.compile(r"^v(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$")
SHA = re.compile(r"^[0-9a-f]{40}$")
PINNED = re.compile(
    r"^  image:[ \t]*'docker://(?P<reference>[^'@\s]+@sha256:[0-9a-f]{64})'[ \t]*$", re.M
)
UNRELEASED = re.compile(r"^## \[Unreleased\][ \t]*$", re.M)
HEADING = re.compile(r"^## ", re.M)


class ReleaseError(Exception):
    """A refusal or bad input: one line for the person running the release."""


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        found = VERSION.fullmatch(text)
        if not found:
            raise ReleaseError(
                f"version {text!r} is not vMAJOR.MINOR.PATCH (e.g. v1.2.3, no leading zeros, "
                "no pre-release suffix); nothing was published"
            )
        return cls(*(int(g) for g in found.groups()))

    @property
    def name(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    @property
    def major_tag(self) -> str:
        return f"v{self.major}"


@dataclass(frozen=True)
class Commit:
    parents: tuple[str, ...]
    message: str


class Remote(Protocol):
    """The repository the release writes to: GitHub's API, or a local git directory."""

    def tags(self) -> dict[str, str]: ...  # tag name -> commit it points at (peeled)
    def commit(self, sha: str) -> Commit: ...
    def read_file(self, sha: str, path: str) -> str: ...
    def create_commit(self, parent: str, files: Mapping[str, str], message: str) -> str: ...
    def create_tag(self, name: str, sha: str) -> None: ...
    def move_tag(self, name: str, sha: str) -> None: ...


@dataclass(frozen=True)
class Plan:
    version: Version
    release_commit: str | None  # set when vX.Y.Z already tags a release commit of this source
    reference: str | None  # REPO@sha256:… that commit pins
    move_major: bool
    make_latest: bool

    def outputs(self) -> dict[str, str]:
        return {
            "version": self.version.name,
            "major": self.version.major_tag,
            "resume": str(self.release_commit is not None).lower(),
            "commit": self.release_commit or "",
            "digest": (self.reference or "@").split("@", 1)[1],
            "move_major": str(self.move_major).lower(),
            "make_latest": str(self.make_latest).lower(),
        }


def commit_message(version: Version, reference: str) -> str:
    return f"Release {version.name}: action.yml runs {reference}"


def check_sha(sha: str, what: str = "source") -> str:
    if not SHA.fullmatch(sha):
        raise ReleaseError(f"{what} {sha!r} is not a full 40-hex commit SHA")
    return sha


def released_versions(tags: Mapping[str, str]) -> dict[Version, str]:
    """Release tags only (vX.Y.Z); the moving vX tags and anything else are not versions."""
    return {Version.parse(t): sha for t in tags if VERSION.fullmatch(t) for sha in [tags[t]]}


def plan(
    version_text: str, source: str, image: str, remote: Remote, changelog: str | None = None
) -> Plan:
    """What this run does. With `changelog` (main's CHANGELOG.md), a new release is also refused
    now, not after CI and the image, if its "Unreleased" cannot become the release notes."""
    version = Version.parse(version_text)
    check_sha(source)
    tags = remote.tags()
    versions = released_versions(tags)
    release_commit = reference = None
    if version in versions:
        tagged = versions[version]
        found = remote.commit(tagged)
        if found.parents != (source,) or not found.message.startswith(f"Release {version.name}: "):
            raise ReleaseError(
                f"{version.name} is already tagged at {tagged}, which is not a release commit of "
                f"{source}; release tags are never moved. Pick the next version."
            )
        release_commit = tagged
        reference = pinned_reference(remote.read_file(tagged, "action.yml"))
        if reference.split("@", 1)[0] != image:
            raise ReleaseError(
                f"{version.name} ({tagged}) pins {reference}, not an image of {image}; "
                "refusing to resume it"
            )
    elif changelog is not None:
        cut_changelog(changelog, version, datetime.date.today())
        check_not_released_before(changelog, version, remote)
    others = [v for v in versions if v != version]
    return Plan(
        version=version,
        release_commit=release_commit,
        reference=reference,
        move_major=all(v < version for v in others if v.major == version.major),
        make_latest=all(v < version for v in others),
    )


def pinned_reference(action_yml: str) -> str:
    found = PINNED.findall(action_yml)
    if len(found) != 1:
        raise ReleaseError("the release commit's action.yml does not pin one docker:// image")
    return str(found[0])


def changelog_section(text: str, heading: re.Pattern[str], what: str) -> tuple[int, int]:
    """(start of the section's body, its end) for the one heading matching `heading`."""
    found = list(heading.finditer(text))
    if len(found) != 1:
        raise ReleaseError(f"CHANGELOG.md has {len(found)} {what} headings; expected exactly one")
    start = found[0].end()
    following = HEADING.search(text, start)
    return start, following.start() if following else len(text)


def version_heading(version: Version) -> re.Pattern[str]:
    return re.compile(
        rf"^## \[{re.escape(version.name)}\](?: - [0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})?[ \t]*$", re.M
    )


def entries(section: str) -> list[str]:
    """The first line of each list item: enough to recognise an entry released before."""
    return [line.strip() for line in section.splitlines() if line.startswith("- ")]


def cut_changelog(text: str, version: Version, date: datetime.date) -> str:
    """ "Unreleased" becomes "[vX.Y.Z] - date" under a new, empty "Unreleased"."""
    if version_heading(version).search(text):
        raise ReleaseError(f"CHANGELOG.md already has a {version.name} section")
    start, end = changelog_section(text, UNRELEASED, "'## [Unreleased]'")
    if not entries(text[start:end]):
        raise ReleaseError("CHANGELOG.md has nothing under Unreleased: nothing to release")
    heading_start = start - len("## [Unreleased]")
    return (
        text[:heading_start]
        + f"## [Unreleased]\n\n## [{version.name}] - {date.isoformat()}"
        + text[start:]
    )


def notes(text: str, version: Version) -> str:
    start, end = changelog_section(text, version_heading(version), f"'## [{version.name}]'")
    body = text[start:end].strip("\n")
    if not entries(body):
        raise ReleaseError(f"CHANGELOG.md's {version.name} section lists no changes")
    return body + "\n"


def check_not_released_before(changelog: str, version: Version, remote: Remote) -> None:
    """main's "Unreleased" must not still hold the previous release's entries (the heading the
    release commit adds lives on the tag, not on main, until someone brings it over)."""
    tags = remote.tags()
    older = sorted(v for v in released_versions(tags) if v < version)
    if not older:
        return
    previous = older[-1]
    try:
        released = notes(remote.read_file(tags[previous.name], "CHANGELOG.md"), previous)
    except ReleaseError:
        return  # a release made before CHANGELOG headings were cut: nothing to compare
    start, end = changelog_section(changelog, UNRELEASED, "'## [Unreleased]'")
    again = sorted(set(entries(changelog[start:end])) & set(entries(released)))
    if again:
        raise ReleaseError(
            f"CHANGELOG.md's Unreleased still lists {len(again)} change(s) released in "
            f"{previous.name} (e.g. {again[0][:60]!r}); bring that release's heading to main "
            f"first (git show {previous.name}:CHANGELOG.md)"
        )


def load_pin() -> Callable[[str, str], str]:
    path = SCRIPTS / "pin-action-image"
    loader = importlib.machinery.SourceFileLoader("pin_action_image", str(path))
    spec = importlib.util.spec_from_loader("pin_action_image", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    pin: Callable[[str, str], str] = module.pin
    return pin


def make_release_commit(
    version_text: str,
    source: str,
    reference: str,
    worktree: Path,
    remote: Remote,
    date: datetime.date,
) -> tuple[str, bool]:
    """(release commit, made now?) — the existing one when resuming."""
    image = reference.split("@", 1)[0]
    decided = plan(version_text, source, image, remote)
    if decided.release_commit:
        return decided.release_commit, False
    version = decided.version
    try:
        action = (worktree / "action.yml").read_text(encoding="utf-8")
        changelog = (worktree / "CHANGELOG.md").read_text(encoding="utf-8")
        pinned = load_pin()(action, reference)
    except (OSError, ValueError) as exc:
        raise ReleaseError(f"cannot pin action.yml: {exc}") from exc
    check_not_released_before(changelog, version, remote)
    files = {"action.yml": pinned, "CHANGELOG.md": cut_changelog(changelog, version, date)}
    commit = remote.create_commit(source, files, commit_message(version, reference))
    remote.create_tag(version.name, commit)
    return commit, True


def move_major(version_text: str, source: str, image: str, remote: Remote) -> tuple[Plan, str]:
    decided = plan(version_text, source, image, remote)
    if not decided.release_commit:
        raise ReleaseError(
            f"{decided.version.name} is not tagged yet: nothing to point the major at"
        )
    major = decided.version.major_tag
    if not decided.move_major:
        return decided, f"{major} stays: a higher {major}.* exists"
    if remote.tags().get(major) == decided.release_commit:
        return decided, f"{major} already points at {decided.release_commit}"
    remote.move_tag(major, decided.release_commit)
    return decided, f"{major} now points at {decided.release_commit} ({decided.version.name})"


# --- the two repositories -----------------------------------------------------------------------


class GitRemote:
    """A local (bare) repository, for the rehearsal: the same reads and writes through git."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir

    def git(
        self, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        done = subprocess.run(
            ["git", f"--git-dir={self.git_dir}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            check=False,
        )
        if done.returncode != 0:
            raise ReleaseError(f"git {args[0]}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def tags(self) -> dict[str, str]:
        listed = self.git(
            "for-each-ref", "refs/tags", "--format=%(refname:strip=2) %(objectname) %(*objectname)"
        )
        tags = {}
        for line in listed.splitlines():
            name, sha, *peeled = line.split()
            tags[name] = peeled[0] if peeled else sha
        return tags

    def commit(self, sha: str) -> Commit:
        parents, _, message = self.git(
            "log", "-1", "--format=%P%n%B", check_sha(sha, "commit")
        ).partition("\n")
        return Commit(tuple(parents.split()), message)

    def read_file(self, sha: str, path: str) -> str:
        return self.git("show", f"{check_sha(sha, 'commit')}:{path}")

    def create_commit(self, parent: str, files: Mapping[str, str], message: str) -> str:
        with tempfile.TemporaryDirectory(prefix="release-index-") as tmp:
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            self.git("read-tree", parent, env=index)
            for path, text in files.items():
                blob = self.git("hash-object", "-w", "--stdin", stdin=text).strip()
                self.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
            tree = self.git("write-tree", env=index).strip()
        author = {
            "GIT_AUTHOR_NAME": "release",
            "GIT_AUTHOR_EMAIL": "release@localhost",
            "GIT_COMMITTER_NAME": "release",
            "GIT_COMMITTER_EMAIL": "release@localhost",
        }
        return self.git("commit-tree", tree, "-p", parent, "-m", message, env=author).strip()

    def create_tag(self, name: str, sha: str) -> None:
        # The empty old value: refused if the tag exists (GitHub's POST git/refs answers 422).
        self.git("update-ref", f"refs/tags/{name}", sha, "")

    def move_tag(self, name: str, sha: str) -> None:
        self.git("update-ref", f"refs/tags/{name}", sha)


Api = Callable[[str, str, Mapping[str, Any] | None], Any]


def gh_api(method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
    """`gh api` with the token in GH_TOKEN (never on the command line); JSON in, JSON out."""
    argv = ["gh", "api", "--method", method, path]
    if method == "GET" and path.endswith("/matching-refs/tags/v"):
        argv += ["--paginate", "--slurp"]
    if "/contents/" in path:
        argv += ["-H", "Accept: application/vnd.github.raw+json"]
    if body is not None:
        argv += ["--input", "-"]
    done = subprocess.run(
        argv,
        input=json.dumps(body) if body is not None else None,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ReleaseError(f"gh api {method} {path}: {(done.stderr or done.stdout).strip()[:300]}")
    if "/contents/" in path:
        return done.stdout
    return json.loads(done.stdout) if done.stdout.strip() else None


class GitHubRemote:
    """The repository on GitHub, through the Git data API (the commit is signed by GitHub and
    exists only on the tag; no credentials on disk)."""

    def __init__(self, repository: str, api: Api = gh_api) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
            raise ReleaseError(f"repository {repository!r} is not OWNER/NAME")
        self.base = f"repos/{repository}"
        self.api = api

    def tags(self) -> dict[str, str]:
        answer = self.api("GET", f"{self.base}/git/matching-refs/tags/v", None)
        refs = [r for page in answer for r in (page if isinstance(page, list) else [page])]
        tags = {}
        for ref in refs:
            sha, kind = ref["object"]["sha"], ref["object"]["type"]
            if kind == "tag":  # an annotated tag: the commit it points at
                sha = self.api("GET", f"{self.base}/git/tags/{sha}", None)["object"]["sha"]
            tags[ref["ref"].removeprefix("refs/tags/")] = sha
        return tags

    def commit(self, sha: str) -> Commit:
        found = self.api("GET", f"{self.base}/git/commits/{check_sha(sha, 'commit')}", None)
        return Commit(tuple(p["sha"] for p in found["parents"]), found["message"])

    def read_file(self, sha: str, path: str) -> str:
        return str(
            self.api("GET", f"{self.base}/contents/{path}?ref={check_sha(sha, 'commit')}", None)
        )

    def create_commit(self, parent: str, files: Mapping[str, str], message: str) -> str:
        base_tree = self.api("GET", f"{self.base}/git/commits/{parent}", None)["tree"]["sha"]
        tree = [
            {
                "path": path,
                "mode": "100644",
                "type": "blob",
                "sha": self.api(
                    "POST", f"{self.base}/git/blobs", {"content": text, "encoding": "utf-8"}
                )["sha"],
            }
            for path, text in files.items()
        ]
        made = self.api("POST", f"{self.base}/git/trees", {"base_tree": base_tree, "tree": tree})
        commit = self.api(
            "POST",
            f"{self.base}/git/commits",
            {"message": message, "tree": made["sha"], "parents": [parent]},
        )
        return str(commit["sha"])

    def create_tag(self, name: str, sha: str) -> None:
        self.api("POST", f"{self.base}/git/refs", {"ref": f"refs/tags/{name}", "sha": sha})

    def move_tag(self, name: str, sha: str) -> None:
        if name in self.tags():
            self.api("PATCH", f"{self.base}/git/refs/tags/{name}", {"sha": sha, "force": True})
        else:
            self.create_tag(name, sha)


# --- command line -------------------------------------------------------------------------------


def emit(outputs: Mapping[str, str]) -> None:
    lines = "".join(f"{key}={value}\n" for key, value in outputs.items())
    sys.stdout.write(lines)
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(lines)


def remote_from(args: argparse.Namespace) -> Remote:
    if args.git_dir:
        return GitRemote(Path(args.git_dir))
    repository = os.environ.get("GITHUB_REPOSITORY", "")
    return GitHubRemote(repository)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("plan", "commit", "notes", "major"):
        command = commands.add_parser(name)
        command.add_argument("--version", required=True)
        if name != "notes":
            command.add_argument("--source", required=True)
            command.add_argument("--git-dir")
        if name in ("plan", "major"):
            command.add_argument("--image", required=True)
    commands.choices["commit"].add_argument("--reference", required=True)
    commands.choices["commit"].add_argument("--worktree", default=".")
    commands.choices["commit"].add_argument("--date", type=datetime.date.fromisoformat)
    commands.choices["notes"].add_argument("--changelog", default="CHANGELOG.md")
    commands.choices["plan"].add_argument("--changelog", help="main's, to refuse a bad one early")
    return parser.parse_args(argv)


def read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReleaseError(f"cannot read {path}: {exc}") from exc


def run(args: argparse.Namespace) -> None:
    Version.parse(args.version)  # cheap checks first: before any call to GitHub
    if args.command != "notes":
        check_sha(args.source)
    if args.command == "notes":
        sys.stdout.write(notes(read(args.changelog), Version.parse(args.version)))
        return
    remote = remote_from(args)
    if args.command == "plan":
        changelog = read(args.changelog) if args.changelog else None
        emit(plan(args.version, args.source, args.image, remote, changelog).outputs())
    elif args.command == "commit":
        date = args.date or datetime.datetime.now(datetime.UTC).date()
        commit, made = make_release_commit(
            args.version, args.source, args.reference, Path(args.worktree), remote, date
        )
        emit({"commit": commit, "made": str(made).lower()})
    else:
        decided, said = move_major(args.version, args.source, args.image, remote)
        print(said, file=sys.stderr)
        emit({"commit": decided.release_commit or "", "moved": str(decided.move_major).lower()})


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
