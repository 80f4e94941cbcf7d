"""The CLI on a laptop (`python -m deployer …`), against the real local stack."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from stack import binary_paths
from tests.e2e.test_deploy_action import app_manifests, deployment

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]


def deployer(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deployer", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd or ROOT,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **env},
    )


def kubectl(
    kubeconfig: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_kubeconfig_prints_a_working_short_lived_kubeconfig_and_nothing_else(
    stack: dict[str, str], tmp_path: Path
) -> None:
    env = {
        "DIGITALOCEAN_ACCESS_TOKEN": stack["DIGITALOCEAN_ACCESS_TOKEN"],
        "DIGITALOCEAN_API_URL": stack["DIGITALOCEAN_API_URL"],
    }
    result = deployer(
        "kubeconfig",
        "--cluster",
        stack["DJK_CLUSTER_NAME"],
        "--expiry-seconds",
        "900",
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["current-context"]
    path = tmp_path / "kubeconfig"
    path.write_text(result.stdout)
    assert (
        kubectl(str(path), "get", "namespace", "default", "-o", "name").stdout
        == "namespace/default\n"
    )
    assert stack["DIGITALOCEAN_ACCESS_TOKEN"] not in result.stdout + result.stderr


def test_kubeconfig_for_an_unknown_cluster_exits_2_with_the_names_it_can_see(
    stack: dict[str, str], tmp_path: Path
) -> None:
    env = {
        "DIGITALOCEAN_ACCESS_TOKEN": stack["DIGITALOCEAN_ACCESS_TOKEN"],
        "DIGITALOCEAN_API_URL": stack["DIGITALOCEAN_API_URL"],
    }
    result = deployer("kubeconfig", "--cluster", "nope", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert stack["DJK_CLUSTER_NAME"] in result.stderr


def test_wait_agrees_with_kubectl_on_green_and_names_the_container_on_red(
    stack: dict[str, str], namespace: str
) -> None:
    manifests = "---\n".join(
        [deployment("web", replicas=2), deployment("bad", behavior="crash-loop")]
    )
    manifests = manifests.replace("<IMAGE>", "example.invalid/app:1")
    manifests = "\n".join(
        line for line in manifests.splitlines() if "envFrom" not in line and "Ref:" not in line
    )
    applied = kubectl(stack["KUBECONFIG"], "-n", namespace, "apply", "-f", "-", stdin=manifests)
    assert applied.returncode == 0, applied.stderr
    env = {"KUBECONFIG": stack["KUBECONFIG"]}
    green = deployer(
        "wait", "--deployment", "web", "--namespace", namespace, "--timeout", "2m", env=env
    )
    assert green.returncode == 0, green.stdout + green.stderr
    assert "deployment/web: succeeded" in green.stdout
    peer = kubectl(
        stack["KUBECONFIG"], "-n", namespace, "rollout", "status", "deployment/web", "--timeout=5s"
    )
    assert peer.returncode == 0
    red = deployer(
        "wait",
        "--deployment",
        "bad",
        "--deployment",
        "web",
        "--namespace",
        namespace,
        "--timeout",
        "2m",
        env=env,
    )
    assert red.returncode == 1
    assert "deployment/bad: failed" in red.stdout
    assert "container `bad` is crash-looping" in red.stdout
    missing = deployer("wait", "--deployment", "ghost", "--namespace", namespace, env=env)
    assert missing.returncode == 2
    assert missing.stdout.startswith(
        f"error: --deployment: deployment/ghost does not exist in namespace {namespace}"
    )


@pytest.mark.docker
def laptop_deploy(
    stack: dict[str, str], namespace: str, tmp_path: Path, image: str
) -> subprocess.CompletedProcess[str]:
    """`python -m deployer deploy` as on a laptop: HOME is tmp_path, the token in .env."""
    (tmp_path / "deploy").mkdir(exist_ok=True)
    (tmp_path / "deploy" / "deployment.yaml").write_text(app_manifests())
    (tmp_path / "Dockerfile").write_text(f"FROM {stack['DJK_BASE_IMAGE']}\nLABEL demo=cli\n")
    (tmp_path / ".env").write_text(
        f"DIGITALOCEAN_ACCESS_TOKEN={stack['DIGITALOCEAN_ACCESS_TOKEN']}\n"
        f"REGISTRY_PASSWORD={stack['DJK_REGISTRY_PASSWORD']}\n"
    )
    (tmp_path / "app.env").write_text("SECRET_KEY=s3cr3t-on-the-laptop-0123456789\n")
    env = {"DIGITALOCEAN_API_URL": stack["DIGITALOCEAN_API_URL"], "HOME": str(tmp_path)}
    if "DOCKER_HOST" in stack:
        env["DOCKER_HOST"] = stack["DOCKER_HOST"]
    sha = "c" * 40
    return deployer(
        "deploy",
        "--image",
        image,
        "--sha",
        sha,
        "--cluster",
        stack["DJK_CLUSTER_NAME"],
        "--namespace",
        namespace,
        "--registry-username",
        stack["DJK_REGISTRY_USER"],
        "--build-network",
        "host",
        "--secrets-file",
        "app.env",
        "--secret-name",
        "app-secrets",
        "--timeout",
        "2m",
        env=env,
        cwd=tmp_path,
    )


def test_wait_reaches_the_cluster_without_the_kubernetes_package_and_no_proxy_for_loopback(
    stack: dict[str, str], namespace: str
) -> None:
    # The stack's kubeconfig authenticates with a client certificate (its CA as data); a proxy
    # in the environment is not used for the API server on 127.0.0.1, as kubectl does.
    manifest = deployment("web").replace("<IMAGE>", "example.invalid/app:1")
    manifest = "\n".join(
        line for line in manifest.splitlines() if "envFrom" not in line and "Ref:" not in line
    )
    applied = kubectl(stack["KUBECONFIG"], "-n", namespace, "apply", "-f", "-", stdin=manifest)
    assert applied.returncode == 0, applied.stderr
    done = kubectl(
        stack["KUBECONFIG"], "-n", namespace, "rollout", "status", "deployment/web", "--timeout=2m"
    )
    assert done.returncode == 0, done.stderr
    env = {"KUBECONFIG": stack["KUBECONFIG"], "HTTPS_PROXY": "http://127.0.0.1:9"}
    args = ["--deployment", "web", "--namespace", namespace, "--settle", "0s"]
    waited = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "deployer", "wait", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **env},
    )
    assert waited.returncode == 0, waited.stdout + waited.stderr[-2000:]
    assert "deployment/web: succeeded" in waited.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in waited.stderr.splitlines()]
    assert "deployer.kube.transport" in imported  # the probe sees the imports
    assert [m for m in imported if m.split(".")[0] == "kubernetes"] == []


def test_wait_on_pods_up_longer_than_the_settle_window_by_the_servers_clock_pays_no_window(
    stack: dict[str, str], namespace: str
) -> None:
    """The settle window credits what the API server's clock shows (the pod's last status write,
    the server's Date over verified TLS): a Deployment whose pods were up before `wait` started
    is green at the first look, one just created is held to the window."""
    for name in ("old", "fresh"):
        manifest = deployment(name).replace("<IMAGE>", "example.invalid/app:1")
        manifest = "\n".join(
            line for line in manifest.splitlines() if "envFrom" not in line and "Ref:" not in line
        )
        applied = kubectl(stack["KUBECONFIG"], "-n", namespace, "apply", "-f", "-", stdin=manifest)
        assert applied.returncode == 0, applied.stderr
        done = kubectl(
            stack["KUBECONFIG"], "-n", namespace, "rollout", "status", f"deployment/{name}",
            "--timeout=2m",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        if name == "old":
            time.sleep(5)  # longer than the window below, plus the timestamps' second
    env = {"KUBECONFIG": stack["KUBECONFIG"]}
    said = {}
    for name in ("old", "fresh"):
        waited = deployer(
            "wait", "--deployment", name, "--namespace", namespace, "--settle", "3s", env=env
        )
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert f"deployment/{name}: succeeded" in waited.stdout
        said[name] = waited.stdout
    assert "settling" not in said["old"], said["old"]
    assert "deployment/fresh: rolled out, settling" in said["fresh"], said["fresh"]


def test_deploy_from_a_laptop_reads_the_token_from_dotenv_and_rolls_out(
    stack: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    result = laptop_deploy(stack, namespace, tmp_path, f"{stack['DJK_REGISTRY']}/djk-e2e/cli")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "::" not in result.stdout, "plain terminal output outside GitHub Actions"
    assert "==> Watch:" in result.stdout
    assert "s3cr3t-on-the-laptop" not in result.stdout + result.stderr
    assert stack["DJK_REGISTRY_PASSWORD"] not in result.stdout + result.stderr
    # This machine's docker CLI has no buildx anywhere: one line says so, and what that costs.
    assert (
        "building with Docker's legacy builder (no docker-buildx plugin in ~/.docker/cli-plugins, "
        "/usr/local/lib/docker/cli-plugins"
    ) in result.stdout
    assert "no registry build cache, no build secrets, no attestations" in result.stdout


def test_deploy_from_a_laptop_builds_with_the_buildx_in_the_users_cli_plugins(
    stack: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    # As `docker buildx install`, Docker Desktop or a manual install leave it: the real buildx
    # (the one the stack builds for the action image) in ~/.docker/cli-plugins only.
    plugins = tmp_path / ".docker" / "cli-plugins"
    plugins.mkdir(parents=True)
    shutil.copy2(binary_paths()["BUILDX_BIN"], plugins / "docker-buildx")
    (tmp_path / ".docker" / "config.json").write_text('{"auths": {}}\n')
    image = f"{stack['DJK_REGISTRY']}/djk-e2e/cli-buildx-{secrets.token_hex(3)}"

    result = laptop_deploy(stack, namespace, tmp_path, image)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "legacy builder" not in result.stdout
    assert "build cache: off" not in result.stdout  # BuildKit reads and writes the cache
    assert f"build cache: {image}:buildcache now points at this image" in result.stdout
    # The registry login stayed in the deployer's private config, not the user's.
    assert (tmp_path / ".docker" / "config.json").read_text() == '{"auths": {}}\n'


VALIDATING_POLICY = """\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups: [apps]
        apiVersions: [v1]
        operations: [CREATE, UPDATE]
        resources: [deployments]
  validations:
    - expression: object.spec.replicas <= 1
      message: at most one replica in this namespace
      reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {namespace}}}
"""


def test_a_validating_admission_policy_refusal_is_the_manifest_at_its_line_not_a_right(
    stack: dict[str, str], namespace: str, tmp_path: Path
) -> None:
    # With `reason: Forbidden` the API server answers such a refusal with 403, as it does a
    # missing RBAC right (the default reason, Invalid, is a 422); only the latter is the
    # identity's to fix.
    name = f"djk-e2e-{namespace}"[:63]
    policy = VALIDATING_POLICY.format(name=name, namespace=namespace)
    applied = kubectl(stack["KUBECONFIG"], "apply", "-f", "-", stdin=policy)
    assert applied.returncode == 0, applied.stderr
    try:
        (tmp_path / "deploy").mkdir()
        (tmp_path / "deploy" / "deployment.yaml").write_text(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
            "  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n"
            "    metadata:\n      labels: {app: web}\n    spec:\n"
            "      containers: [{name: web, image: <IMAGE>}]\n"
        )
        argv = [
            "deploy",
            "--image",
            "registry.example.com/team/web",
            "--sha",
            "0123456789abcdef0123456789abcdef01234567",
            "--build",
            "never",
            "--namespace",
            namespace,
            "--kubeconfig",
            stack["KUBECONFIG"],
            "--dry-run",
            "true",
        ]
        deadline = time.monotonic() + 30
        while True:  # a new binding takes effect within a moment
            result = deployer(*argv, env={}, cwd=tmp_path)
            if "ValidatingAdmissionPolicy" in result.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert result.returncode == 2, result.stdout + result.stderr
        (error,) = [line for line in result.stdout.splitlines() if line.startswith("error:")]
        assert error.startswith("error: deploy/deployment.yaml:1: the API server rejected")
        assert "at most one replica in this namespace" in error
        assert "Fix the manifest" in error
        assert "Grant the identity" not in result.stdout + result.stderr
    finally:
        kubectl(stack["KUBECONFIG"], "delete", "-f", "-", "--ignore-not-found", stdin=policy)


def test_a_namespace_that_does_not_exist_is_found_before_anything_changes_with_the_fix(
    stack: dict[str, str], tmp_path: Path
) -> None:
    """Through DigitalOcean, as a new user would: `namespaces "x" not found` was the answer."""
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "deployment.yaml").write_text(app_manifests())
    env = {
        "DIGITALOCEAN_ACCESS_TOKEN": stack["DIGITALOCEAN_ACCESS_TOKEN"],
        "DIGITALOCEAN_API_URL": stack["DIGITALOCEAN_API_URL"],
        "HOME": str(tmp_path),
    }
    absent = "djk-e2e-no-such-namespace"
    args = [
        "deploy",
        "--image",
        f"{stack['DJK_REGISTRY']}/djk-e2e/cli",
        "--sha",
        "d" * 40,
        "--cluster",
        stack["DJK_CLUSTER_NAME"],
        "--build",
        "never",
        "--dry-run",
    ]
    result = deployer(*args, "--namespace", absent, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr
    assert (
        f"error: --namespace: namespace {absent} does not exist in the cluster. Create it "
        f"(kubectl create namespace {absent}), or add a Namespace object to the manifests"
    ) in result.stdout
    assert "==> Dry run" not in result.stdout  # found with the cluster checks, before the dry run
    assert "not found" not in result.stdout
    # With the Namespace in the manifests, the check passes and the preview is reached.
    namespace_doc = f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {absent}}}\n"
    (tmp_path / "deploy" / "namespace.yaml").write_text(namespace_doc)
    (tmp_path / "app.env").write_text("SECRET_KEY=s3cr3t-0123456789\n")
    result = deployer(
        *args,
        "--namespace",
        absent,
        "--manifests",
        "deploy/*.yaml",
        "--secrets-file",
        "app.env",
        "--secret-name",
        "app-secrets",
        env=env,
        cwd=tmp_path,
    )
    assert "==> Preview: server-side dry run" in result.stdout, result.stdout[-3000:]
    assert "does not exist in the cluster" not in result.stdout
    # The preview itself cannot dry-run objects in a namespace not created yet: it says so.
    assert result.returncode == 2
    assert (
        f"goes to namespace {absent}, which this deploy creates: a dry run cannot check objects "
        "in a namespace that does not exist yet"
    ) in result.stdout
    assert "not found while trying" not in result.stdout
    # An identity that may not read namespaces cannot tell: no false error.
    limited = deployer(
        *args[:5],
        "--kubeconfig",
        stack["DJK_LIMITED_KUBECONFIG"],
        "--namespace",
        "djk-limited",
        "--build",
        "never",
        "--dry-run",
        env={"HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    assert "does not exist in the cluster" not in limited.stdout, limited.stdout[-3000:]
    assert "namespace/djk-limited" not in limited.stdout  # its Forbidden is "cannot tell"
