"""The CLI as a user meets it: a real subprocess, exit codes, one line per problem, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SHA = "0123456789abcdef0123456789abcdef01234567"


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "deployer", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_render_prints_the_manifests_with_the_image(tmp_path: Path) -> None:
    write(
        tmp_path / "d.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec: {template: {spec: {containers: [{name: a, image: <IMAGE>}]}}}\n",
    )
    result = run("render", "--manifest", "d.yaml", "--image", "reg/app:1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (doc,) = yaml.safe_load_all(result.stdout)
    assert doc["spec"]["template"]["spec"]["containers"][0]["image"] == "reg/app:1"


def test_render_without_placeholder_exits_2_with_one_line(tmp_path: Path) -> None:
    write(
        tmp_path / "d.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec: {template: {spec: {containers: [{name: a, image: 'old/app:1'}]}}}\n",
    )
    result = run("render", "--manifest", "d.yaml", "--image", "reg/app:1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        "error: d.yaml:1: no container runs the image being deployed (reg/app:1)"
    )
    assert len(result.stderr.splitlines()) == 1


def test_render_of_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    write(
        tmp_path / "d.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: <IMAGE>\n  - broken\n",
    )
    result = run("render", "--manifest", "d.yaml", "--image", "x", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: d.yaml:5: invalid YAML")
    assert "Traceback" not in result.stderr


def test_deploy_with_bad_inputs_exits_2_listing_each_problem_once(tmp_path: Path) -> None:
    result = run("deploy", "--image", "Bad Image", "--sha", "123", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "--image",
        "--sha",
        "DIGITALOCEAN_ACCESS_TOKEN",
        "--cluster",
        "--manifests",
        "--dockerfile",
    ]
    assert all(line.startswith("error: ") for line in lines)
    assert "Traceback" not in result.stdout + result.stderr


def test_deploy_reads_the_token_from_a_dotenv_file_and_never_prints_it(tmp_path: Path) -> None:
    write(tmp_path / ".env", "DIGITALOCEAN_ACCESS_TOKEN=dop_v1_supersecret\n")
    result = run("deploy", "--image", "app", "--sha", SHA, "--cluster", "c", cwd=tmp_path)
    assert result.returncode == 2
    assert "digitalocean-token" not in result.stdout  # found in .env
    assert "supersecret" not in result.stdout + result.stderr


def test_unknown_flag_is_a_usage_error_with_exit_2(tmp_path: Path) -> None:
    result = run("deploy", "--no-such-flag", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: unrecognized arguments: --no-such-flag")


def test_kubeconfig_without_a_token_exits_2(tmp_path: Path) -> None:
    result = run("kubeconfig", "--cluster", "prod", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: DIGITALOCEAN_ACCESS_TOKEN: is not set. Export a DigitalOcean token with "
        "kubernetes:read and kubernetes:access_cluster.\n"
    )


def test_action_entrypoint_reads_inputs_and_writes_annotations(tmp_path: Path) -> None:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(tmp_path),
        "INPUT_IMAGE": "app:latest",
        "INPUT_SHA": SHA,
        "INPUT_DIGITALOCEAN-TOKEN": "dop_v1_abcdefgh",
        "INPUT_CLUSTER": "prod",
        "INPUT_BUILD": "never",
        "GITHUB_OUTPUT": str(tmp_path / "out"),
    }
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py")],
        cwd=tmp_path,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout.splitlines()[1] == "::add-mask::dop_v1_abcdefgh"
    assert (
        "::error title=Invalid input::image: must be a repository without tag or digest"
        in result.stdout
    )


def test_bad_action_inputs_also_reach_the_job_summary_and_outputs(tmp_path: Path) -> None:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(tmp_path),
        "INPUT_IMAGE": "app",
        "INPUT_SHA": "short",
        "INPUT_CLUSTER": "prod",
        "INPUT_DIGITALOCEAN-TOKEN": "dop_v1_abcdefgh",
        "INPUT_BUILD": "never",
        "GITHUB_OUTPUT": str(tmp_path / "out"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    summary = (tmp_path / "summary").read_text()
    assert summary.startswith(
        "## django-k8s-deploy: failed\n\n- **Invalid input:** sha: must be a full"
    )
    assert "State: nothing was applied to the cluster." in summary
    assert "result<<ghadelimiter_" in (tmp_path / "out").read_text()
    assert "\nfailed\n" in (tmp_path / "out").read_text()


def test_wait_workload_takes_kind_slash_name_and_refuses_anything_else(tmp_path: Path) -> None:
    for bad in ("web", "cronjob/nightly", "job/Bad_Name", "sts/db..x", "job/a/b"):
        result = run("wait", "--workload", bad, "--kubeconfig", "missing.yaml", cwd=tmp_path)
        assert result.returncode == 2, (bad, result.stderr)
        lines = (result.stdout + result.stderr).strip().splitlines()
        assert len(lines) == 1 and "is not kind/name" in lines[0] and "--workload" in lines[0]
    # A well-formed reference passes this check and stops at the next: the missing kubeconfig.
    result = run("wait", "--workload", "sts/db", "--kubeconfig", "missing.yaml", cwd=tmp_path)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "is not kind/name" not in output and "missing.yaml" in output


# -- the CLI speaks CLI: its flags and variables, its defaults, no action words --------------------


def test_outside_a_git_repository_a_missing_sha_names_the_flag_not_the_action(
    tmp_path: Path,
) -> None:
    result = run("deploy", "--image", "reg/app", "--cluster", "c", cwd=tmp_path)
    assert result.returncode == 2
    (sha,) = [line for line in result.stdout.splitlines() if "sha" in line]
    assert sha.startswith("error: --sha: is required: this is not a git repository")
    assert "git rev-parse HEAD" in sha
    assert "github.sha" not in result.stdout and "the action" not in result.stdout


def test_registry_credentials_are_named_as_the_cli_takes_them(tmp_path: Path) -> None:
    result = run(
        "deploy", "--image", "reg/app", "--sha", SHA, "--registry-username", "bot", cwd=tmp_path
    )
    assert result.returncode == 2
    (line,) = [x for x in result.stdout.splitlines() if "registry" in x]
    assert line == (
        "error: REGISTRY_PASSWORD: is required when the other registry credential is set. "
        "Give both --registry-username and REGISTRY_PASSWORD, or neither."
    )
    assert "registry-password" not in result.stdout


def test_a_dry_run_needs_no_push_credentials(tmp_path: Path) -> None:
    for dry_run in (["--dry-run"], ["--dry-run", "true"]):
        result = run(
            "deploy",
            "--image",
            "reg/app",
            "--sha",
            SHA,
            "--registry-username",
            "bot",
            *dry_run,
            cwd=tmp_path,
        )
        assert result.returncode == 2  # the token and cluster are missing here
        assert "error: DIGITALOCEAN_ACCESS_TOKEN: is required" in result.stdout, result.stderr
        said = (result.stdout + result.stderr).lower()
        assert "registry_password" not in said and "registry-password" not in said


def test_errors_found_after_the_inputs_also_name_flags(tmp_path: Path) -> None:
    """A later phase's error names the action's input; the CLI's report names the flag."""
    write(
        tmp_path / "deploy" / "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec: {template: {spec: {containers: [{name: a, image: <IMAGE>}]}}}\n",
    )
    write(tmp_path / "Dockerfile", "FROM scratch\n")
    write(
        tmp_path / "kubeconfig",
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n",
    )
    result = run(
        "deploy",
        "--image",
        "reg/app",
        "--sha",
        SHA,
        "--kubeconfig",
        "kubeconfig",
        "--run-first",
        "migrate",
        "--env-file",
        "/nonexistent",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "error: --run-first: Job migrate is not in the manifests" in result.stdout


def test_help_shows_the_real_defaults_and_no_internals(tmp_path: Path) -> None:
    top = run("--help", cwd=tmp_path).stdout
    assert "action_main" not in top and "entry" not in top
    deploy = " ".join(run("deploy", "--help", cwd=tmp_path).stdout.split())
    assert "(default: none)" not in deploy
    for shown in (
        "--sha VALUE full commit SHA, the image tag (default: $GITHUB_SHA, else `git rev-parse HEAD`)",
        "(default: deploy/deployment.yaml)",
        "(default: <IMAGE>)",
        "(default: what the manifests say, else default)",
        "(default: <image>:buildcache)",
        "(default: 10m)",
        "--run-first VALUE Jobs to run to completion",
        "--rerun-first [true|false] run --run-first Jobs again",
    ):
        assert shown in deploy, shown
    for command in ("deploy", "render", "kubeconfig", "wait"):
        text = run(command, "--help", cwd=tmp_path).stdout
        assert "action_main" not in text
        options = text.split("options:")[1].splitlines()[2:]  # after -h
        flags = [line for line in options if line.startswith("  -")]
        # every option has its help text (on its line or the next)
        for i, line in enumerate(options):
            if line in flags:
                rest = line.strip().split("  ", 1)
                helped = len(rest) == 2 or (
                    i + 1 < len(options) and options[i + 1].startswith(" " * 10)
                )
                assert helped, (command, line)
    listing = run("--help", cwd=tmp_path).stdout
    for command in ("deploy", "render", "kubeconfig", "wait"):
        (line,) = [x for x in listing.splitlines() if x.strip().startswith(command + " ")]
        assert len(line.split()) > 2, line  # a help text after the name


def test_render_accepts_what_deploy_accepts_globs_and_several_manifests(tmp_path: Path) -> None:
    web = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: %s}\n"
        "spec: {template: {spec: {containers: [{name: a, image: <IMAGE>}]}}}\n"
    )
    write(tmp_path / "deploy" / "a.yaml", web % "a")
    write(tmp_path / "deploy" / "b.yaml", web % "b")
    write(tmp_path / "extra" / "c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    result = run(
        "render",
        "--manifests",
        "deploy/*.yaml",
        "--manifest",
        "extra/c.yaml",
        "--image",
        "reg/app",
        "--sha",
        SHA,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert sorted(d["metadata"]["name"] for d in docs) == ["a", "b", "c"]
    images = [
        d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in docs
        if d["kind"] == "Deployment"
    ]
    assert images == [f"reg/app:{SHA}"] * 2
    missing = run("render", "--manifests", "nothing/*.yaml", "--image", "r/a:1", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: --manifests: 'nothing/*.yaml' matches no file")


def test_wait_settle_is_a_duration_or_zero_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    for bad, says in (("10", "has no unit"), ("forever", "is not a duration"), ("1h", "at most")):
        result = run("wait", "--deployment", "web", "--settle", bad, cwd=tmp_path)
        assert result.returncode == 2, (bad, result.stderr)
        lines = (result.stdout + result.stderr).strip().splitlines()
        assert len(lines) == 1 and "--settle" in lines[0] and says in lines[0], lines
    # 0 (off) and a duration pass this check and stop at the next: the missing kubeconfig.
    for good in ("0", "5s"):
        result = run(
            "wait",
            "--deployment",
            "web",
            "--settle",
            good,
            "--kubeconfig",
            "missing.yaml",
            cwd=tmp_path,
        )
        assert result.returncode == 2
        assert "--settle" not in result.stdout + result.stderr
