"""Class 7: secrets in messages and environments. A bad env-file line is named by its number only
(it may be a value pasted without its key); the kubeconfig's credentials are masked, not its
structure; the inputs never reach child processes (see test_outside_answers for docker and exec
plugins)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer import settings
from tests.hostile.support import (
    CLIENT_KEY_DATA,
    KUBE_TOKEN,
    action_env,
    check,
    run_action,
    run_cli,
    workspace,
)

LEAK = "tok/SECRET+val9"  # what a pasted token looks like

ENV_FILES = {
    "export without =": (f"A=1\nexport {LEAK}\n", 2),
    "no = with a comment": (f"A=1\n{LEAK} # prod token\n", 2),
    "bare value": (f"{LEAK}\n", 1),
    "key with a slash": (f"{LEAK}=x\n", 1),
    "key with a blank": (f"A=1\nMY {LEAK}=x\n", 2),
    "repeated key": (f"API_KEY=first-{LEAK}\nAPI_KEY={LEAK}\n", 2),
    "unterminated quote": (f"A=1\nB='{LEAK}\n", 2),
    "key too long": ("K" * 300 + f"={LEAK}\n", 1),
}


@pytest.mark.parametrize("case", list(ENV_FILES))
def test_env_file_problems_name_the_line_never_its_text(tmp_path: Path, case: str) -> None:
    text, line = ENV_FILES[case]
    run = run_action(action_env(workspace(tmp_path), {"secrets": text}))
    check(run, 2, f"secrets line {line}", "7 secrets: env file", extra_secrets=(LEAK,))


def test_env_file_problems_from_the_cli_name_the_file_and_line(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    env_file = ws / "prod.env"
    env_file.write_text(f"A=1\nexport {LEAK}\n")
    run = run_cli(
        [
            "deploy",
            "--image",
            "reg.example/app",
            "--sha",
            "0" * 40,
            "--cluster",
            "c",
            "--manifest",
            "deploy/deployment.yaml",
            "--secrets-file",
            str(env_file),
            "--secret-name",
            "s",
            "--build",
            "never",
            "--env-file",
            "/nonexistent",
        ],
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(ws),
            "DIGITALOCEAN_ACCESS_TOKEN": "dop_v1_x" * 3,
        },
    )
    check(run, 2, f"{env_file} line 2", "7 secrets: env file", extra_secrets=(LEAK,))


KUBECONFIG = f"""\
apiVersion: v1
kind: Config
current-context: c
clusters:
  - name: k
    cluster: {{server: 'https://203.0.113.7:6443'}}
contexts:
  - name: c
    context: {{cluster: k, user: u}}
users:
  - name: u
    user:
      token: {KUBE_TOKEN}
      client-key-data: {CLIENT_KEY_DATA}
  - name: oidc
    user:
      auth-provider: {{name: oidc, config: {{id-token: idtok-{KUBE_TOKEN}, refresh-token: rtok-{KUBE_TOKEN}}}}}
  - name: plugin
    user:
      exec: {{command: doctl, env: [{{name: DIGITALOCEAN_ACCESS_TOKEN, value: envtok-{KUBE_TOKEN}}}]}}
"""


def test_the_kubeconfig_input_masks_credentials_not_structure(tmp_path: Path) -> None:
    masked: list[str] = []
    raw = settings.raw_inputs_from_action_env(
        action_env(
            workspace(tmp_path), {"kubeconfig": KUBECONFIG, "digitalocean-token": "", "cluster": ""}
        )
    )
    settings.parse(raw, {"GITHUB_WORKSPACE": str(tmp_path / "ws")}, mask=masked.append)
    credentials = {
        KUBE_TOKEN,
        CLIENT_KEY_DATA,
        f"idtok-{KUBE_TOKEN}",
        f"rtok-{KUBE_TOKEN}",
        f"envtok-{KUBE_TOKEN}",
    }
    assert credentials <= set(masked)
    structure = [
        m for m in masked if m.startswith(("apiVersion", "kind", "users", "clusters", "- name"))
    ]
    assert structure == [] and not any("\n" in m and "apiVersion" in m for m in masked)


def test_a_kubeconfig_input_that_fails_later_never_shows_its_credentials(tmp_path: Path) -> None:
    # Refused (the namespace input conflicts) after the kubeconfig was read and masked.
    broken = KUBECONFIG.replace("https://203.0.113.7:6443", "not a url")
    run = run_action(
        action_env(
            workspace(tmp_path), {"kubeconfig": broken, "digitalocean-token": "", "cluster": ""}
        )
    )
    check(run, 2, "kubeconfig", "7 secrets: kubeconfig", extra_secrets=(f"idtok-{KUBE_TOKEN}",))
