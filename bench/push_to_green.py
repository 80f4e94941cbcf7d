"""Push to green: a one-line code change to examples/antisocial, deployed on a simulated fresh
runner, by the action against the seed's plain workflow, in the same session on the local stack.

    export DJK_STACK_DIR=/tmp/stack-bench; scripts/stack up; eval "$(scripts/stack env)"
    .venv/bin/python bench/push_to_green.py [--rounds 3]

It prunes the daemon's images and build cache between runs: run it on your own stack instance
(its own daemon), not on a daemon others are using (`--allow-shared-daemon` to insist).

Each round changes one line of the app's code, then, for each side, simulates a fresh hosted
runner: every image of the bench's repositories and the action image removed locally, BuildKit's
cache pruned (`docker builder prune --all`); the base image stays (a runner pulls
python:3.12-slim for both sides alike) and the registry keeps its content.

- ours: the action as the runner runs a released version: `runs.image: docker://…@sha256:…`
  (the action image pushed to the stack's registry and action.yml pinned by
  scripts/pin-action-image), timed from "Set up job" (the pull) to the container's exit;
- seed: the plain workflow this action replaces, with the same Docker 29 CLI and buildx:
  `docker build` (no cache source), `docker push`, `sed` on `<IMAGE>`, `kubectl apply` (with the
  Secret from the env file), `kubectl rollout status` for each Deployment in turn.

Both deploy to their own namespace, updated from a first unmeasured round (so each measured round
is a rolling update, as a push to main is). Reported: medians, the ratio ours/seed, our time by
phase (set-up and each log group), and a redeploy of an existing SHA (`workflow_dispatch`, on a
fresh runner again), which must not build. Ratios, not thresholds: PyPI here is a fast mirror,
which flatters the seed's uncached `pip install`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.runner import (  # noqa: E402 - after sys.path
    ActionRun,
    build_action_image,
    run_action,
    stack_environment,
)

EXAMPLE = ROOT / "examples" / "antisocial"
MANIFESTS = ("deploy/configmap.yaml", "deploy/service.yaml", "deploy/deployment.yaml")
DEPLOYMENTS = ("antisocial-web", "antisocial-worker", "antisocial-beat")
CHANGED_FILE = "board/views.py"
APP_ENV = (
    "SECRET_KEY=bench-only-8d3f1c0e9b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a\n"
    "DATABASE_URL=postgres://antisocial:bench-password@db.bench.svc:5432/antisocial\n"
    "CELERY_BROKER_URL=redis://redis.bench.svc:6379/0\n"
)
LOGS: Path | None = None  # --logs: where each of our runs' log goes
TRACE = False  # --trace: print each line of our runs with the seconds since the run began
SHARED_STATE = Path.home() / ".cache" / "django-k8s-deploy" / "stack"


# -- plumbing -----------------------------------------------------------------------------------


class Tools:
    """The docker CLI 29 + buildx the action image ships (for the seed too) and kubectl."""

    def __init__(self, stack: Mapping[str, str], work: Path) -> None:
        paths = dict(
            line.split("=", 1)
            for line in subprocess.run(
                [str(ROOT / "scripts" / "build-binaries"), "paths"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.splitlines()
            if "=" in line
        )
        self.docker = paths["DOCKER_CLI_BIN"]
        self.config = work / "docker-config"
        (self.config / "cli-plugins").mkdir(parents=True)
        os.symlink(paths["BUILDX_BIN"], self.config / "cli-plugins" / "docker-buildx")
        self.env = {**os.environ, "DOCKER_CONFIG": str(self.config)}
        self.env.pop("DOCKER_BUILDKIT", None)
        if stack.get("DOCKER_HOST"):
            self.env["DOCKER_HOST"] = stack["DOCKER_HOST"]
        self.kubectl = ["kubectl", "--kubeconfig", stack["KUBECONFIG"]]
        self.run_docker(
            "login",
            "--username",
            stack["DJK_REGISTRY_USER"],
            "--password-stdin",
            stack["DJK_REGISTRY"],
            stdin=stack["DJK_REGISTRY_PASSWORD"],
        )

    def run_docker(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            [self.docker, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=1800,
            check=False,
        )
        if check and done.returncode != 0:
            raise SystemExit(f"docker {args[0]} failed: {(done.stdout + done.stderr)[-2000:]}")
        return done.stdout

    def run_kubectl(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*self.kubectl, *args], input=stdin, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args[:2])} failed: {done.stderr[-2000:]}")
        return done.stdout

    def fresh_runner(self, repositories: tuple[str, ...]) -> None:
        """What a new hosted VM has of ours: nothing (the base image stays, see module doc)."""
        listed = self.run_docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
        doomed = [
            name
            for name in listed.split()
            if any(
                name.startswith(repo + ":") or name.startswith(repo + "@") for repo in repositories
            )
        ]
        digests = self.run_docker(
            "image", "ls", "--digests", "--format", "{{.Repository}}@{{.Digest}}"
        )
        doomed += [
            d for d in digests.split() if any(d.startswith(r + "@sha256:") for r in repositories)
        ]
        if doomed:
            self.run_docker("image", "rm", "--force", *sorted(set(doomed)), check=False)
        self.run_docker("image", "prune", "--force")
        self.run_docker("builder", "prune", "--all", "--force")


def one_line_change(workspace: Path, label: str) -> None:
    path = workspace / CHANGED_FILE
    path.write_text(path.read_text() + f"# bench change {label}\n")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- the two sides ------------------------------------------------------------------------------


def pinned_action(stack: Mapping[str, str], tools: Tools, work: Path) -> tuple[Path, str]:
    """What a release gives users: the action image in a registry, action.yml pinned to it."""
    local = build_action_image(ROOT, stack)
    repository = f"{stack['DJK_REGISTRY']}/djk/action-bench"
    tag = f"{repository}:{local.rsplit(':', 1)[1]}"
    tools.run_docker("tag", local, tag)
    pushed = tools.run_docker("push", tag)
    # Only the registry keeps it: each measured run pulls it like a fresh runner.
    tools.run_docker("image", "rm", local, check=False)
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
    if not digest:
        raise SystemExit(f"no digest in the push output: {pushed[-500:]}")
    reference = f"{repository}@{digest.group(1)}"
    action_dir = work / "action"
    action_dir.mkdir()
    shutil.copy(ROOT / "action.yml", action_dir / "action.yml")
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "pin-action-image"),
            reference,
            str(action_dir / "action.yml"),
        ],
        check=True,
        capture_output=True,
    )
    return action_dir, repository


def ours(
    stack: Mapping[str, str],
    action_dir: Path,
    workspace: Path,
    namespace: str,
    image: str,
    sha: str,
    event: str = "push",
) -> tuple[float, dict[str, float], ActionRun]:
    marks: list[tuple[float, str]] = []

    def echo(line: str) -> None:
        if TRACE:
            print(f"  {time.monotonic() - started:7.2f} {line[:160]}", file=sys.stderr)
        if line.startswith("::group::"):
            marks.append((time.monotonic(), line.removeprefix("::group::").split(":", 1)[0]))

    inputs = {
        "image": image,
        "sha": sha,
        "digitalocean-token": stack["DIGITALOCEAN_ACCESS_TOKEN"],
        "cluster": stack["DJK_CLUSTER_NAME"],
        "manifests": "\n".join(MANIFESTS),
        "namespace": namespace,
        "registry-username": stack["DJK_REGISTRY_USER"],
        "registry-password": stack["DJK_REGISTRY_PASSWORD"],
        "build-args": f"BASE_IMAGE={stack['DJK_BASE_IMAGE']}",
        "build-network": "host",
        "secrets": APP_ENV,
        "secret-name": "antisocial-secrets",
        "timeout": "5m",
    }
    started = time.monotonic()
    run = run_action(
        inputs,
        workspace,
        stack=stack,
        action_dir=action_dir,
        timeout=1800,
        echo=echo,
        event_name=event,
        extra_env={"DIGITALOCEAN_API_URL": stack["DIGITALOCEAN_API_URL"], "GITHUB_SHA": sha},
    )
    ended = time.monotonic()
    if run.exit_code != 0:
        raise SystemExit(f"ours failed (exit {run.exit_code}):\n{run.visible_log[-4000:]}")
    if LOGS is not None:
        (LOGS / f"ours-{event}-{sha[:8]}.log").write_text(run.visible_log)
    phases = {"set-up (pull)": run.setup_seconds}
    # Steps BuildKit took from the cache (per round: a miss shows as fewer cached steps).
    phases["cached steps"] = float(len(re.findall(r"^#\d+ CACHED$", run.log, re.MULTILINE)))
    container_start = started + run.setup_seconds
    if marks:
        phases["start-up"] = marks[0][0] - container_start
    for (at, name), (until, _) in zip(marks, [*marks[1:], (ended, "")], strict=True):
        phases[name] = phases.get(name, 0.0) + (until - at)
    return ended - started, phases, run


def seed(
    stack: Mapping[str, str], tools: Tools, workspace: Path, namespace: str, image: str, sha: str
) -> tuple[float, dict[str, float]]:
    ref = f"{image}:{sha}"
    phases: dict[str, float] = {}

    def timed(name: str, step: Callable[[], object]) -> None:
        at = time.monotonic()
        step()
        phases[name] = time.monotonic() - at

    started = time.monotonic()
    timed(
        "build",
        lambda: tools.run_docker(
            "build",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={stack['DJK_BASE_IMAGE']}",
            "--tag",
            ref,
            str(workspace),
        ),
    )
    timed("push", lambda: tools.run_docker("push", ref))

    def apply() -> None:
        rendered = "\n---\n".join(
            (workspace / m).read_text().replace("<IMAGE>", ref) for m in MANIFESTS
        )
        env_file = workspace.parent / "app.env"
        env_file.write_text(APP_ENV)
        secret = tools.run_kubectl(
            "-n",
            namespace,
            "create",
            "secret",
            "generic",
            "antisocial-secrets",
            f"--from-env-file={env_file}",
            "--dry-run=client",
            "-o",
            "yaml",
        )
        tools.run_kubectl("-n", namespace, "apply", "-f", "-", stdin=secret + "\n---\n" + rendered)

    timed("sed + kubectl apply", apply)

    def rollout() -> None:
        for name in DEPLOYMENTS:
            tools.run_kubectl(
                "-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout=5m"
            )

    timed("kubectl rollout status", rollout)
    return time.monotonic() - started, phases


# -- main ---------------------------------------------------------------------------------------


def measure(
    rounds: int,
    stack: Mapping[str, str],
    tools: Tools,
    action_dir: Path,
    workspace: Path,
    namespaces: tuple[str, str],
    images: tuple[str, str],
    repositories: tuple[str, ...],
) -> tuple[dict[str, list[float]], list[dict[str, float]], list[dict[str, float]], str]:
    """The measured rounds: a one-line change, then each side on a fresh runner."""
    ns_ours, ns_seed = namespaces
    our_image, seed_image = images
    totals: dict[str, list[float]] = {"ours": [], "seed": []}
    our_phases: list[dict[str, float]] = []
    seed_phases: list[dict[str, float]] = []
    last_sha = ""
    for number in range(1, rounds + 1):
        one_line_change(workspace, f"round {number}")
        # Alternate who goes first, so a slow moment of the machine hits both alike.
        order = ("ours", "seed") if number % 2 else ("seed", "ours")
        for side in order:
            tools.fresh_runner(repositories)
            sha = secrets.token_hex(20)
            if side == "ours":
                total, phases, _ = ours(stack, action_dir, workspace, ns_ours, our_image, sha)
                our_phases.append(phases)
                last_sha = sha
            else:
                total, phases = seed(stack, tools, workspace, ns_seed, seed_image, sha)
                seed_phases.append(phases)
            totals[side].append(total)
            print(
                f"round {number}: {side} {total:.1f}s  "
                + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()),
                flush=True,
            )

    return totals, our_phases, seed_phases, last_sha


def shown(phases: Mapping[str, float]) -> str:
    return ", ".join(
        f"{k} {v:.0f}" if k == "cached steps" else f"{k} {v:.1f}s" for k, v in phases.items()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--allow-shared-daemon", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--logs", type=Path, help="keep the log of each of our runs here")
    parser.add_argument(
        "--trace", action="store_true", help="print our runs' lines with their times (stderr)"
    )
    args = parser.parse_args()
    global LOGS, TRACE
    LOGS, TRACE = args.logs, args.trace
    if LOGS is not None:
        LOGS.mkdir(parents=True, exist_ok=True)
    state = Path(os.environ.get("DJK_STACK_DIR") or SHARED_STATE)
    if state.resolve() == SHARED_STATE.resolve() and not args.allow_shared_daemon:
        print(
            "push_to_green: this prunes the daemon's images and build cache; run it on your own "
            "stack instance (DJK_STACK_DIR=/tmp/stack-bench scripts/stack up), or pass "
            "--allow-shared-daemon",
            file=sys.stderr,
        )
        return 2
    stack = stack_environment()
    run_id = secrets.token_hex(3)
    with tempfile.TemporaryDirectory(prefix="djk-bench-") as tmp:
        work = Path(tmp)
        tools = Tools(stack, work)
        workspace = work / "antisocial"
        shutil.copytree(EXAMPLE, workspace, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        action_dir, action_repo = pinned_action(stack, tools, work)
        our_image = f"{stack['DJK_REGISTRY']}/bench-{run_id}/antisocial"
        seed_image = f"{stack['DJK_REGISTRY']}/bench-{run_id}/antisocial-seed"
        ns_ours, ns_seed = f"bench-ours-{run_id}", f"bench-seed-{run_id}"
        for ns in (ns_ours, ns_seed):
            tools.run_kubectl("create", "namespace", ns)
        repositories = (our_image, seed_image, action_repo)

        print(
            f"push_to_green: warm-up round (namespaces {ns_ours}, {ns_seed}; not measured)",
            flush=True,
        )
        one_line_change(workspace, "warm-up")
        ours(stack, action_dir, workspace, ns_ours, our_image, secrets.token_hex(20))
        seed(stack, tools, workspace, ns_seed, seed_image, secrets.token_hex(20))

        totals, our_phases, seed_phases, last_sha = measure(
            args.rounds,
            stack,
            tools,
            action_dir,
            workspace,
            (ns_ours, ns_seed),
            (our_image, seed_image),
            repositories,
        )
        tools.fresh_runner(repositories)
        redeploy_total, redeploy_phases, redeploy_run = ours(
            stack, action_dir, workspace, ns_ours, our_image, last_sha, event="workflow_dispatch"
        )
        built = "::group::Push" in redeploy_run.log or "load build definition" in redeploy_run.log
        reused = "is already in the registry: not rebuilt" in redeploy_run.log
        for ns in (ns_ours, ns_seed):
            subprocess.run(
                [*tools.kubectl, "delete", "namespace", ns, "--wait=false"],
                capture_output=True,
                check=False,
            )

    ok = reused and not built
    report(args, totals, our_phases, seed_phases, redeploy_total, redeploy_phases, ok)
    return 0 if ok else 1


def report(
    args: argparse.Namespace,
    totals: dict[str, list[float]],
    our_phases: list[dict[str, float]],
    seed_phases: list[dict[str, float]],
    redeploy_total: float,
    redeploy_phases: dict[str, float],
    reused: bool,
) -> None:
    ours_median, seed_median = median(totals["ours"]), median(totals["seed"])
    print()
    print(f"push to green, one-line change, fresh runner, {args.rounds} rounds (medians):")
    print(
        f"  ours {ours_median:.1f}s   seed {seed_median:.1f}s   ratio ours/seed {ours_median / seed_median:.2f}"
    )
    for side, rows in (("ours", our_phases), ("seed", seed_phases)):
        medians = {name: median([p.get(name, 0.0) for p in rows]) for name in rows[0]}
        print(f"  {side} by phase: {shown(medians)}")
    print(f"  ours each round: {', '.join(f'{t:.1f}s' for t in totals['ours'])}")
    print(f"  seed each round: {', '.join(f'{t:.1f}s' for t in totals['seed'])}")
    print(
        f"  redeploy of an existing SHA (workflow_dispatch, fresh runner): {redeploy_total:.1f}s, "
        f"{'reused, not built' if reused else 'BUILT (wrong)'}; " + shown(redeploy_phases)
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rounds": args.rounds,
                    "ours": totals["ours"],
                    "seed": totals["seed"],
                    "ours_phases": our_phases,
                    "seed_phases": seed_phases,
                    "redeploy": {
                        "total": redeploy_total,
                        "phases": redeploy_phases,
                        "built": not reused,
                    },
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    sys.exit(main())
