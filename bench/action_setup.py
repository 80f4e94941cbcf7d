"""The action's "Set up job": building its Dockerfile (what `runs.image: Dockerfile` costs every
job) against pulling the released image (`runs.image: docker://…@sha256:…`), on the local stack.

    export DJK_STACK_DIR=/tmp/stack-bench; scripts/stack up; eval "$(scripts/stack env)"
    .venv/bin/python bench/action_setup.py [--rounds 3]

Both through the harness, as the runner does it: `docker build` of the repository's Dockerfile,
and `docker pull` of the image pushed to the stack's registry (action.yml pinned by
scripts/pin-action-image). Before each, the action image, untagged images (the venv stage's)
and the build cache are removed from the daemon; its two base images (python and the docker CLI; here the stack's local stand-ins) stay, which flatters
the build: a hosted runner pulls those too. Medians and the ratio pulled/built.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness import runner  # noqa: E402 - after sys.path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stack = runner.stack_environment()
    env = runner._docker_cli_env(stack)

    def docker(*argv: str, stdin: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            ["docker", *argv], input=stdin, capture_output=True, text=True, env=env, check=False
        )
        if check and done.returncode != 0:
            raise SystemExit(f"docker {argv[0]}: {done.stdout}{done.stderr}")
        return done.stdout

    with tempfile.TemporaryDirectory(prefix="djk-setup-bench-") as tmp:
        env["DOCKER_CONFIG"] = str(Path(tmp) / "config")
        docker(
            "login",
            "-u",
            stack["DJK_REGISTRY_USER"],
            "--password-stdin",
            stack["DJK_REGISTRY"],
            stdin=stack["DJK_REGISTRY_PASSWORD"],
        )
        built_tag = runner.build_action_image(runner.REPO_ROOT, stack)
        repository = f"{stack['DJK_REGISTRY']}/djk/action-setup-bench"
        pushed_tag = f"{repository}:{built_tag.rsplit(':', 1)[1]}"
        docker("tag", built_tag, pushed_tag)
        digest = re.search(r"digest: (sha256:[0-9a-f]{64})", docker("push", pushed_tag))
        if digest is None:
            raise SystemExit("no digest in the push output")
        reference = f"{repository}@{digest.group(1)}"
        released = Path(tmp) / "release"
        released.mkdir()
        shutil.copy(runner.REPO_ROOT / "action.yml", released / "action.yml")
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "pin-action-image"),
                reference,
                str(released / "action.yml"),
            ],
            check=True,
            capture_output=True,
        )

        def forget() -> None:
            docker("image", "rm", "--force", built_tag, pushed_tag, reference, check=False)
            # The Dockerfile's venv stage leaves untagged images (and BuildKit its cache) that a
            # fresh runner would not have: without this, "built" would reuse them.
            docker("image", "prune", "--force", check=False)
            docker("builder", "prune", "--all", "--force", check=False)
            runner._built.clear()

        built: list[float] = []
        pulled: list[float] = []
        for number in range(1, args.rounds + 1):
            forget()
            started = time.monotonic()
            runner.build_action_image(runner.REPO_ROOT, stack)
            built.append(time.monotonic() - started)
            forget()
            started = time.monotonic()
            runner.build_action_image(released, stack)
            pulled.append(time.monotonic() - started)
            print(f"round {number}: built {built[-1]:.1f}s, pulled {pulled[-1]:.1f}s", flush=True)
        # Leave the built image in place for the tests that follow.
        runner.build_action_image(runner.REPO_ROOT, stack)
    b, p = statistics.median(built), statistics.median(pulled)
    print(
        f"\naction set-up, {args.rounds} rounds (medians): built from the Dockerfile {b:.1f}s, "
        f"pulled {p:.1f}s, ratio pulled/built {p / b:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
