"""The demo deploy (`scripts/demo`): the example app, deployed by the action onto the stack's real node.

The example is copied into a fresh workspace, as an app repository checked out by
actions/checkout would be, and the action runs against it the way the runner runs it: built from
this repository's Dockerfile, inputs as INPUT_*, the GitHub files mounted. It builds the app image,
pushes it to the stack's registry, gets a kubeconfig from the DigitalOcean stand-in, applies, runs
the `migrate` Job to completion and then watches the three rollouts (web, worker, beat).

The namespace's pods run on the stack's real node (a kubelet with containerd, not kwok), next to
the backing services the demo starts first: Postgres and Redis, built from Debian's packages on
the stack's base image (tests/harness/services/) and pulled by the node from the stack's registry.
They are the demo's, not the example's: examples/antisocial/deploy/ stays what a user deploys.
After the deploy the demo checks what a user would: the board page through the web Service
(`kubectl port-forward`), a post whose word count the Celery worker fills in, beat's start and the
scheduled task it sends the worker (every few seconds here: DEMO_SETTINGS), and gunicorn's log. tests/e2e/test_example_app.py runs the same checks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from tests.harness.app_checks import BEAT_EVERY_S, check_app, report
from tests.harness.backing_services import Log, prepare_namespace, service_images
from tests.harness.runner import REPO_ROOT, ActionRun, HarnessError, run_action, stack_environment

EXAMPLE = REPO_ROOT / "examples" / "antisocial"
MANIFESTS = (
    "deploy/configmap.yaml\ndeploy/service.yaml\ndeploy/migrate.yaml\ndeploy/deployment.yaml"
)
# Beat sends its scheduled task every PRUNE_EVERY_SECONDS (the ConfigMap says hourly); set in the
# env file, whose Secret comes after the ConfigMap in envFrom and so wins, it runs every few
# seconds and the demo sees beat send it and the worker run it. The manifests stay untouched.
DEMO_SETTINGS = {"PRUNE_EVERY_SECONDS": str(BEAT_EVERY_S)}


def _print(line: str) -> None:
    print(f"demo: {line}", flush=True)


def deploy(
    stack: Mapping[str, str],
    namespace: str,
    app_secrets: Mapping[str, str],
    *,
    repository: str,
    sha: str,
    echo: Log | None = None,
    timeout: float = 1800,
) -> ActionRun:
    """The action on a fresh copy of the example: build (skipped when repository:sha is on the
    registry already), push, apply, the migrate Job, the three rollouts."""
    with tempfile.TemporaryDirectory(prefix="djk-demo-") as tmp:
        workspace = Path(tmp) / "antisocial"
        shutil.copytree(EXAMPLE, workspace, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        inputs = {
            "image": f"{stack['DJK_REGISTRY']}/{repository}",
            "sha": sha,
            "digitalocean-token": stack["DIGITALOCEAN_ACCESS_TOKEN"],
            "cluster": stack["DJK_CLUSTER_NAME"],
            "manifests": MANIFESTS,
            "namespace": namespace,
            "registry-username": stack["DJK_REGISTRY_USER"],
            "registry-password": stack["DJK_REGISTRY_PASSWORD"],
            "build-args": f"BASE_IMAGE={stack['DJK_BASE_IMAGE']}",
            # The stack's Docker daemon has no bridge network: pip in RUN steps uses the host's.
            "build-network": "host",
            "secrets": "".join(
                f"{name}={value}\n" for name, value in {**app_secrets, **DEMO_SETTINGS}.items()
            ),
            "secret-name": "antisocial-secrets",
            # The demo's Postgres keeps its data in the pod (emptyDir): a db pod that restarted
            # (the node did, or its image changed) is empty although this commit's migrate Job
            # completed before. Migrations are idempotent: run them at every deploy.
            "rerun-first": "true",
            "timeout": "5m",
        }
        return run_action(
            inputs,
            workspace,
            stack=stack,
            timeout=timeout,
            echo=echo,
            extra_env={"DIGITALOCEAN_API_URL": stack["DIGITALOCEAN_API_URL"], "GITHUB_SHA": sha},
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--namespace", default="antisocial-demo")
    parser.add_argument(
        "--sha",
        help="the commit, the image's tag (default: a digest of examples/antisocial, so a rerun "
        "reuses the image and a change to the example builds a new one)",
    )
    args = parser.parse_args()
    started = time.monotonic()
    stack = stack_environment()
    if not stack.get("DJK_REAL_NODE"):
        print(
            "demo: the stack runs no real node (DJK_REAL_NODE unset): scripts/stack up",
            file=sys.stderr,
        )
        return 1
    sha = args.sha or example_digest()
    try:
        images = service_images(stack)
        app_secrets = prepare_namespace(stack, args.namespace, images)
        _print(
            f"deploying examples/antisocial as {stack['DJK_REGISTRY']}/antisocial:{sha} "
            f"to namespace {args.namespace} (real node {stack['DJK_REAL_NODE']})"
        )
        run = deploy(
            stack,
            args.namespace,
            app_secrets,
            repository="antisocial",
            sha=sha,
            echo=lambda line: print(line, flush=True),
        )
    except (HarnessError, subprocess.TimeoutExpired) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    print("\n--- outputs (GITHUB_OUTPUT) ---")
    for name, value in run.outputs.items():
        print(
            f"{name}: {json.dumps(json.loads(value), indent=2) if name == 'deployments' else value}"
        )
    print("\n--- job summary (GITHUB_STEP_SUMMARY) ---")
    print(run.summary)
    print("--- the cluster ---", flush=True)
    subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            stack["KUBECONFIG"],
            "-n",
            args.namespace,
            "get",
            "jobs,deployments,statefulsets,pods",
            "-o",
            "wide",
        ],
        check=False,
    )
    print(f"\ndemo: the action exited {run.exit_code} after {run.duration:.1f}s.")
    if run.exit_code != 0:
        return run.exit_code
    try:
        checks = check_app(stack, args.namespace)
    except (HarnessError, subprocess.TimeoutExpired) as exc:
        print(f"demo: checking the app: {exc}", file=sys.stderr)
        return 1
    print(f"\ndemo: what a user would check, on the real node, in namespace {args.namespace}:")
    print(report(checks))
    for problem in checks.problems:
        print(f"demo: NOT OK: {problem}", file=sys.stderr)
    print(
        f"\ndemo: {'done' if checks.ok else 'FAILED'} in {time.monotonic() - started:.1f}s. "
        f"The stack is still up (`scripts/stack down` stops it); "
        f"`kubectl delete namespace {args.namespace}` removes the demo."
    )
    return 0 if checks.ok else 1


def example_digest() -> str:
    """40 hex digits from the example's files: the commit an app repository would have."""
    digest = hashlib.sha256()
    for path in sorted(EXAMPLE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(str(path.relative_to(EXAMPLE)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:40]


if __name__ == "__main__":
    sys.exit(main())
