#!/usr/bin/env python3
"""A dry rehearsal of release.yml on this machine: the release's own scripts, against the local
stack's registry and a throwaway bare git repository instead of GHCR and GitHub.

    eval "$(scripts/stack env)"
    .venv/bin/python scripts/release_rehearsal.py [--version v1.0.0] [--dir DIR]

What release.yml does, step by step, on HEAD (committed work only):
  plan    scripts/release.py plan: a new version, v1 to be created, Latest;
  image   the action image (built as the harness builds it, from the stack's base images) pushed
          to $DJK_REGISTRY/djk/release-rehearsal:VERSION; its digest from the push;
  tag     scripts/release.py commit in a checkout of HEAD: the release commit (action.yml pinned by
          scripts/pin-action-image, CHANGELOG's Unreleased cut to the version) and its tag;
  resume  the plan and the commit again, as a re-run would: the same commit, nothing made twice;
  verify  a checkout of the tag: it is the release commit and pins the pushed image;
  publish scripts/release.py notes from the tag's CHANGELOG, and major: v1 at the release commit.
Not rehearsed: GitHub itself (App token, environment, the release object, GHCR's anonymous pull)
and the arm64 half (the stack's daemon has no QEMU); release.yml's verify job runs those.

Prints `key=value` lines (dir, git_dir, source, commit, reference, notes) for the e2e test, which
then runs the action from the tag the way the runner does. Without --dir the directory is
removed at the end. Exit 1 with the failing step's output if a step fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness import runner  # noqa: E402 - after sys.path

REPOSITORY = "djk/release-rehearsal"


class StepFailed(Exception):
    pass


def run(
    argv: Sequence[str], *, cwd: Path = ROOT, env: Mapping[str, str] | None = None, stdin: str = ""
) -> str:
    done = subprocess.run(
        list(argv), cwd=cwd, input=stdin, capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise StepFailed(
            f"{' '.join(argv[:3])}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def outputs(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def release(*args: str, cwd: Path = ROOT) -> dict[str, str]:
    """scripts/release.py as release.yml runs it, with python3 from this machine (and never
    into the outputs of a job this may run in)."""
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_OUTPUT"}
    script = str(ROOT / "scripts" / "release.py")
    return outputs(run([sys.executable, script, *args], cwd=cwd, env=env))


def publish_image(stack: Mapping[str, str], version: str, config: Path) -> str:
    """The image job on the stack's registry: push the action image, return REPOSITORY@digest."""
    env = {**runner._docker_cli_env(stack), "DOCKER_CONFIG": str(config)}
    registry = stack["DJK_REGISTRY"]
    run(
        ["docker", "login", "-u", stack["DJK_REGISTRY_USER"], "--password-stdin", registry],
        env=env,
        stdin=stack["DJK_REGISTRY_PASSWORD"],
    )
    built = runner.build_action_image(ROOT, stack)
    repository = f"{registry}/{REPOSITORY}"
    run(["docker", "tag", built, f"{repository}:{version}"], env=env)
    pushed = run(["docker", "push", f"{repository}:{version}"], env=env)
    # Only the name goes: the action must be pulled by digest, as the runner does.
    run(["docker", "image", "rm", f"{repository}:{version}"], env=env)
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
    if not digest:
        raise StepFailed(f"docker push printed no digest:\n{pushed}")
    return f"{repository}@{digest.group(1)}"


def rehearse(version: str, where: Path, stack: Mapping[str, str]) -> dict[str, str]:
    source = run(["git", "rev-parse", "HEAD"]).strip()
    git_dir = where / "origin.git"
    # HEAD as main of a new repository: no tags, no other branches (and it works from a shallow,
    # detached checkout as on a runner).
    run(["git", "init", "--bare", "--quiet", str(git_dir)])
    run(
        [
            "git",
            f"--git-dir={git_dir}",
            "fetch",
            "--quiet",
            "--no-tags",
            str(ROOT),
            "HEAD:refs/heads/main",
        ]
    )
    common = ["--version", version, "--source", source, "--git-dir", str(git_dir)]
    image = f"{stack['DJK_REGISTRY']}/{REPOSITORY}"

    planned = release("plan", *common, "--image", image)
    if planned["resume"] != "false" or planned["move_major"] != "true":
        raise StepFailed(f"plan: a first release should be new and move the major: {planned}")
    print(f"[rehearsal] plan: {planned}", file=sys.stderr)

    reference = publish_image(stack, version, where / "docker-config")
    print(f"[rehearsal] image: {reference}", file=sys.stderr)

    checkout = where / "checkout"
    run(["git", "clone", "--quiet", "--no-checkout", str(git_dir), str(checkout)])
    run(["git", "checkout", "--quiet", "--detach", source], cwd=checkout)
    made = release("commit", *common, "--reference", reference, "--worktree", str(checkout))
    commit = made["commit"]
    print(f"[rehearsal] tag: {version} -> {commit}", file=sys.stderr)

    # A re-run of the whole workflow, from the top: it must resume, not make a second commit.
    again = release("plan", *common, "--image", image)
    if (
        again["resume"] != "true"
        or again["commit"] != commit
        or f"@{again['digest']}" not in reference
    ):
        raise StepFailed(f"resume: the re-run's plan does not name the release commit: {again}")
    remade = release("commit", *common, "--reference", reference, "--worktree", str(checkout))
    if remade != {"commit": commit, "made": "false"}:
        raise StepFailed(f"resume: the re-run's commit step made something: {remade}")

    tag = where / "tag"
    run(["git", "clone", "--quiet", "--branch", version, str(git_dir), str(tag)])
    if run(["git", "rev-parse", "HEAD"], cwd=tag).strip() != commit:
        raise StepFailed(f"verify: {version} does not check out the release commit {commit}")
    if f"  image: 'docker://{reference}'" not in (tag / "action.yml").read_text().splitlines():
        raise StepFailed(f"verify: the tag's action.yml does not pin {reference}")

    notes = where / "notes.md"
    notes.write_text(
        run(
            [
                sys.executable,
                str(ROOT / "scripts" / "release.py"),
                "notes",
                "--version",
                version,
                "--changelog",
                str(tag / "CHANGELOG.md"),
            ]
        )
    )
    release("major", *common, "--image", image)
    tags = run(
        [
            "git",
            f"--git-dir={git_dir}",
            "for-each-ref",
            "refs/tags",
            "--format=%(refname:strip=2)=%(objectname)",
        ]
    )
    print(f"[rehearsal] tags: {' '.join(tags.split())}", file=sys.stderr)
    return {
        "dir": str(where),
        "git_dir": str(git_dir),
        "source": source,
        "commit": commit,
        "reference": reference,
        "notes": str(notes),
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", default="v1.0.0")
    parser.add_argument("--dir", type=Path, help="keep everything here (must not exist yet)")
    args = parser.parse_args(argv)
    stack = runner.stack_environment()
    if not stack.get("DJK_REGISTRY"):
        print(
            'release-rehearsal: no DJK_REGISTRY; run eval "$(scripts/stack env)"', file=sys.stderr
        )
        return 2
    where = args.dir or Path(tempfile.mkdtemp(prefix="djk-release-rehearsal-"))
    if args.dir:
        try:
            where.mkdir(parents=True)
        except OSError as exc:
            print(f"release-rehearsal: --dir {where}: {exc.strerror}", file=sys.stderr)
            return 2
    try:
        result = rehearse(args.version, where, stack)
    except (StepFailed, runner.HarnessError) as exc:
        print(f"release-rehearsal: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(where / "docker-config", ignore_errors=True)
        if not args.dir:
            shutil.rmtree(where, ignore_errors=True)
    for key, value in result.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
