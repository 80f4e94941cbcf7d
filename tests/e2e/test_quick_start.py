"""The README's quick start, as written, deploys examples/antisocial green: the action, run as the
runner runs it, gets exactly the quick start's `with:` block — its `${{ … }}` expressions
evaluated as GitHub would on a push (the two secrets given the stack's token and the example's
env file) and the names a reader edits (image, cluster, namespace) set to the stack's — on a
checkout of the example. Only what the local stack itself needs is added: a registry login (the
stack's registry is not DigitalOcean's) and the build's host network and base image (the stack
cannot reach Docker Hub)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.support import stack_env
from tests.harness.runner import run_action
from tests.unit.scripts import load_script

pytestmark = [pytest.mark.stack, pytest.mark.docker]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "antisocial"
ENV_FILE = (
    "SECRET_KEY=quick-start-only-3f1c0e9b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b\n"
    "DATABASE_URL=postgres://antisocial:pw@db.example.internal:5432/antisocial\n"
    "CELERY_BROKER_URL=redis://redis.example.internal:6379/0\n"
)
# The inputs of the quick start a reader replaces with their own names.
NAMES = {"image", "cluster", "namespace"}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def evaluate(value: str, secrets: dict[str, str], sha: str) -> str:
    """A `${{ … }}` of the quick start as GitHub evaluates it on a push (no dispatch inputs)."""

    def one(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression == "inputs.sha || github.sha":
            return sha
        secret = re.fullmatch(r"secrets\.(\w+)", expression)
        if secret and secret.group(1) in secrets:
            return secrets[secret.group(1)]
        raise AssertionError(f"the quick start has an expression this test cannot give: {value}")

    return EXPRESSION.sub(one, value)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The example as a repository shaped like it is checked out: everything but local debris."""
    ws = tmp_path / "antisocial"
    shutil.copytree(EXAMPLE, ws, ignore=shutil.ignore_patterns("__pycache__", ".venv", "*.sqlite3"))
    return ws


def test_the_quick_start_deploys_the_example_green(
    stack: dict[str, str], checkout: Path, namespace: str
) -> None:
    step = load_script("docs_workflows").quick_start_step()
    written = step["with"]
    assert isinstance(written, dict)
    sha = "7" * 40
    secrets = {
        "DIGITALOCEAN_ACCESS_TOKEN": stack["DIGITALOCEAN_ACCESS_TOKEN"],
        "APP_ENV": ENV_FILE,
    }
    inputs = {name: evaluate(str(value), secrets, sha) for name, value in written.items()}
    assert set(inputs) >= NAMES, sorted(inputs)
    image = f"{stack['DJK_REGISTRY']}/djk-e2e/quick-start"
    inputs.update(image=image, cluster=stack["DJK_CLUSTER_NAME"], namespace=namespace)
    # What the local stack needs and a DOKS user does not (see the module docstring).
    stack_only = {
        "registry-username": stack["DJK_REGISTRY_USER"],
        "registry-password": stack["DJK_REGISTRY_PASSWORD"],
        "build-network": "host",
        "build-args": f"BASE_IMAGE={stack['DJK_BASE_IMAGE']}",
    }
    assert not set(stack_only) & set(written), "the quick start sets a stack-only input"

    run = run_action(
        {**inputs, **stack_only},
        checkout,
        stack=stack,
        extra_env=stack_env(stack, sha),
        timeout=900,
    )

    assert run.exit_code == 0, run.visible_log[-6000:]
    assert run.outputs["result"] == "succeeded"
    assert run.outputs["image"] == f"{image}:{sha}"
    rolled = {d["name"]: d["result"] for d in json.loads(run.outputs["deployments"])}
    assert {n: r for n, r in rolled.items() if not n.startswith("antisocial-migrate-")} == {
        "antisocial-web": "succeeded",
        "antisocial-worker": "succeeded",
        "antisocial-beat": "succeeded",
    }, rolled
    assert [r for n, r in rolled.items() if n.startswith("antisocial-migrate-")] == ["succeeded"]

    def kubectl(*args: str) -> dict:  # type: ignore[type-arg]
        done = subprocess.run(
            ["kubectl", "--kubeconfig", stack["KUBECONFIG"], "-n", namespace, *args, "-o", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        loaded: dict = json.loads(done.stdout)  # type: ignore[type-arg]
        return loaded

    secret = kubectl("get", "secret", str(written["secret-name"]))
    assert sorted(secret["data"]) == ["CELERY_BROKER_URL", "DATABASE_URL", "SECRET_KEY"]
    web = kubectl("get", "deployment", "antisocial-web")
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == f"{image}:{sha}"
    # The migration ran to completion before web, worker and beat were applied.
    job = kubectl("get", "jobs")["items"][0]
    done_at = job["status"]["completionTime"]
    assert done_at <= web["metadata"]["creationTimestamp"], (done_at, web["metadata"])
