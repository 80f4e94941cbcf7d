"""The demo deploy (`scripts/demo`): the example app, deployed by the action on the local stack.

The example is copied into a fresh workspace, as an app repository checked out by
actions/checkout would be, and the action runs against it the way the runner runs it: built from
this repository's Dockerfile, inputs as INPUT_*, the GitHub files mounted. It builds the app image,
pushes it to the stack's registry, gets a kubeconfig from the DigitalOcean stand-in, applies and
watches the three rollouts (web, worker with migrate/collectstatic/compress, beat).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.harness.runner import REPO_ROOT, run_action, stack_environment

EXAMPLE = REPO_ROOT / "examples" / "antisocial"
DEMO_SECRETS = (
    "SECRET_KEY=demo-only-8d3f1c0e9b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a\n"
    "DATABASE_URL=postgres://antisocial:demo-password@db.antisocial-demo.svc:5432/antisocial\n"
    "CELERY_BROKER_URL=redis://redis.antisocial-demo.svc:6379/0\n"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--namespace", default="antisocial-demo")
    parser.add_argument(
        "--sha", help="image tag (default: this repository's HEAD, so a rerun reuses it)"
    )
    args = parser.parse_args()
    stack = stack_environment()
    sha = args.sha or _git_head()
    kubectl = ["kubectl", "--kubeconfig", stack["KUBECONFIG"]]
    subprocess.run(
        [*kubectl, "create", "namespace", args.namespace], capture_output=True, check=False
    )

    with tempfile.TemporaryDirectory(prefix="djk-demo-") as tmp:
        workspace = Path(tmp) / "antisocial"
        shutil.copytree(EXAMPLE, workspace, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        inputs = {
            "image": f"{stack['DJK_REGISTRY']}/antisocial",
            "sha": sha,
            "digitalocean-token": stack["DIGITALOCEAN_ACCESS_TOKEN"],
            "cluster": stack["DJK_CLUSTER_NAME"],
            "manifests": "deploy/configmap.yaml\ndeploy/service.yaml\ndeploy/migrate.yaml\n"
            "deploy/deployment.yaml",
            "namespace": args.namespace,
            "registry-username": stack["DJK_REGISTRY_USER"],
            "registry-password": stack["DJK_REGISTRY_PASSWORD"],
            "build-args": f"BASE_IMAGE={stack['DJK_BASE_IMAGE']}",
            # The stack's Docker daemon has no bridge network: pip in RUN steps uses the host's.
            "build-network": "host",
            "secrets": DEMO_SECRETS,
            "secret-name": "antisocial-secrets",
            "timeout": "5m",
        }
        print(
            f"demo: deploying examples/antisocial as {inputs['image']}:{sha} to namespace {args.namespace}"
        )
        run = run_action(
            inputs,
            workspace,
            stack=stack,
            timeout=1800,
            echo=lambda line: print(line, flush=True),
            extra_env={"DIGITALOCEAN_API_URL": stack["DIGITALOCEAN_API_URL"], "GITHUB_SHA": sha},
        )
    print("\n--- outputs (GITHUB_OUTPUT) ---")
    for name, value in run.outputs.items():
        print(
            f"{name}: {json.dumps(json.loads(value), indent=2) if name == 'deployments' else value}"
        )
    print("\n--- job summary (GITHUB_STEP_SUMMARY) ---")
    print(run.summary)
    print("--- the cluster ---", flush=True)
    subprocess.run([*kubectl, "-n", args.namespace, "get", "deployments,pods"], check=False)
    print(
        f"\ndemo: the action exited {run.exit_code} after {run.duration:.1f}s. "
        "The stack is still up: `scripts/stack down` stops it."
    )
    return run.exit_code


def _git_head() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    head = result.stdout.strip()
    return head if len(head) == 40 else os.urandom(20).hex()


if __name__ == "__main__":
    sys.exit(main())
