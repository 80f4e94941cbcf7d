"""Inputs: validation, one clear problem per input, secrets masked before anything else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from deployer import settings
from deployer.errors import InputError

SHA = "0123456789abcdef0123456789abcdef01234567"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "deployment.yaml").write_text("kind: Deployment\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def parse(workspace: Path, **inputs: str) -> tuple[settings.Settings, list[str]]:
    raw = {
        "image": "registry.example.com/team/app",
        "sha": SHA,
        "digitalocean-token": "dop_v1_secret",
        "cluster": "prod",
    }
    raw.update({k.replace("_", "-"): v for k, v in inputs.items()})
    masked: list[str] = []
    return settings.parse(
        raw, {"GITHUB_WORKSPACE": str(workspace)}, mask=masked.append, github=True
    ), masked


def problems(workspace: Path, **inputs: str) -> list[str]:
    with pytest.raises(InputError) as info:
        parse(workspace, **inputs)
    return [str(p) for p in getattr(info.value, "problems", [info.value])]


def test_defaults_give_a_deployable_configuration(workspace: Path) -> None:
    config, masked = parse(workspace)
    assert config.image_ref == f"registry.example.com/team/app:{SHA}"
    assert config.manifests == (workspace / "deploy" / "deployment.yaml",)
    assert config.placeholder == "<IMAGE>"
    assert config.timeout_s == 600
    assert config.build == "auto"
    assert (config.rollback_on_failure, config.pin_digest, config.force_conflicts) == (
        False,
        False,
        True,
    )
    assert config.registry == "registry.example.com"
    assert masked == ["dop_v1_secret"]


def test_action_inputs_are_read_with_hyphens_kept_and_empty_means_default(workspace: Path) -> None:
    env = {f"INPUT_{spec.name.upper()}": "" for spec in settings.INPUTS}
    env.update(
        {
            "INPUT_IMAGE": "ghcr.io/org/app",
            "INPUT_SHA": SHA,
            "INPUT_DIGITALOCEAN-TOKEN": "tok-abcdef",
            "INPUT_CLUSTER": "prod",
            "INPUT_WAIT-FOR": "web\nworker",
            "INPUT_TIMEOUT": "90s",
            "GITHUB_WORKSPACE": str(workspace),
        }
    )
    config = settings.from_action_env(env, mask=lambda _: None)
    assert config.wait_for == ("Deployment/web", "Deployment/worker")
    assert config.timeout_s == 90
    assert config.github is True


def test_action_yml_declares_exactly_the_inputs_the_code_reads() -> None:
    declared = yaml.safe_load((ROOT / "action.yml").read_text())["inputs"]
    assert tuple(declared) == settings.INPUT_NAMES
    for spec in settings.INPUTS:
        assert str(declared[spec.name].get("default", "")) == spec.default or spec.name == "sha"


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"image": ""}, "image: is required"),
        ({"image": "ghcr.io/org/app:latest"}, "image: must be a repository without tag or digest"),
        ({"image": "ghcr.io/Org/App"}, "image: is not a valid image repository"),
        ({"sha": "abc1234"}, "sha: must be a full 40-character commit SHA"),
        ({"sha": SHA.upper()}, "sha: must be a full 40-character commit SHA"),
        ({"digitalocean_token": ""}, "digitalocean-token: is required"),
        ({"cluster": ""}, "cluster: is required"),
        ({"manifests": "deploy/missing.yaml"}, "manifests: 'deploy/missing.yaml' matches no file"),
        ({"namespace": "Prod_NS"}, "namespace: is not a valid namespace name"),
        (
            {"registry_username": "bot"},
            "registry-password: is required when the other registry credential",
        ),
        ({"build": "sometimes"}, "build: must be auto, always or never"),
        (
            {"dockerfile": "docker/Dockerfile.prod"},
            "dockerfile: docker/Dockerfile.prod does not exist",
        ),
        ({"build_args": "GOOD=1\nno equals sign"}, "build-args line 2: expected KEY=value"),
        ({"timeout": "ten minutes"}, "timeout: is not a duration"),
        ({"timeout": "0s"}, "timeout: must be more than zero"),
        ({"pin_digest": "yes"}, "pin-digest: must be true or false"),
        ({"secrets": "A=1"}, "secret-name: is required when secrets is set"),
        ({"wait_for": "web, Bad_Name"}, "wait-for: 'Bad_Name' is not a valid Deployment name"),
        ({"wait_for": "cronjob/nightly"}, "wait-for: 'cronjob/nightly': 'cronjob' is not a kind"),
        ({"wait_for": "job/Bad_Name"}, "wait-for: 'Bad_Name' is not a valid Job name"),
        # DNS-1123 as the API server (and manifests.is_name) has it: no empty label.
        ({"wait_for": "web..x"}, "wait-for: 'web..x' is not a valid Deployment name"),
        ({"run_first": "migrate.-x"}, "run-first: 'migrate.-x' is not a valid Job name"),
        ({"run_first": "migrate, Bad_Name"}, "run-first: 'Bad_Name' is not a valid Job name"),
        ({"dry_run": "maybe"}, "dry-run: must be true or false"),
    ],
)
def test_each_bad_input_is_named_with_what_to_do(
    workspace: Path, inputs: dict[str, str], expected: str
) -> None:
    found = problems(workspace, **inputs)
    assert len(found) == 1, found
    assert found[0].startswith(expected)
    assert len(found[0].split(expected, 1)[1].strip()) > 10, "every problem says what to do"


def test_kubeconfig_replaces_digitalocean_but_not_both(workspace: Path) -> None:
    config, masked = parse(
        workspace, digitalocean_token="", cluster="", kubeconfig="apiVersion: v1\n"
    )
    assert config.kubeconfig.startswith("apiVersion")
    assert masked == ["apiVersion: v1"]
    assert problems(workspace, kubeconfig="apiVersion: v1")[0].startswith(
        "kubeconfig: cannot be combined"
    )


def test_link_registry_needs_the_digitalocean_api(workspace: Path) -> None:
    config, _ = parse(workspace, link_registry="true")
    assert config.link_registry is True
    assert parse(workspace)[0].link_registry is False
    found = problems(
        workspace,
        digitalocean_token="",
        cluster="",
        kubeconfig="apiVersion: v1\n",
        link_registry="true",
    )
    assert found == [
        "link-registry: needs the DigitalOcean API (digitalocean-token and cluster), not a "
        "kubeconfig input. Set digitalocean-token and cluster, or integrate the registry once "
        "by hand."
    ]


def test_all_problems_are_reported_at_once(workspace: Path) -> None:
    found = problems(workspace, image="", sha="nope", cluster="")
    assert [p.split(":")[0] for p in found] == ["image", "sha", "cluster"]


def test_secrets_are_parsed_as_an_env_file_and_every_value_is_masked_first(workspace: Path) -> None:
    text = 'SECRET_KEY="s3cr3t value#x"\nDATABASE_URL=postgres://u:p4ss@db/app\n# comment\nEMPTY=\n'
    config, masked = parse(workspace, secrets=text, secret_name="app-secrets")
    assert config.secrets == (
        ("SECRET_KEY", "s3cr3t value#x"),
        ("DATABASE_URL", "postgres://u:p4ss@db/app"),
        ("EMPTY", ""),
    )
    assert "s3cr3t value#x" in masked and "postgres://u:p4ss@db/app" in masked
    assert "s3cr3t value#x" in config.secret_values()
    assert "s3cr3t" not in repr(config)


def test_unparsable_env_file_line_is_named_without_echoing_its_value(
    workspace: Path, capsys
) -> None:
    text = "GOOD=1\nthis line is bad\nOTHER=2\nQUOTED='unterminated value\nexport ALONE"
    found = problems(workspace, secrets=text, secret_name="s")
    assert found == [
        # A line without '=' says exactly that (not advice about quoting).
        "secrets line 2: has no '=' (a KEY=value line was expected). Write KEY=value.",
        "secrets line 4: could not be parsed as KEY=value. Quote values with spaces or '#', "
        'e.g. KEY="a value".',
        "secrets line 5: has no '=' (a KEY=value line was expected). Write KEY=value.",
    ]
    captured = capsys.readouterr()
    said = captured.out + captured.err + " ".join(found)
    assert "this line is bad" not in said and "unterminated" not in said


def test_manifest_globs_expand_in_order_without_duplicates(workspace: Path) -> None:
    (workspace / "deploy" / "service.yaml").write_text("kind: Service\n")
    config, _ = parse(workspace, manifests="deploy/*.yaml\ndeploy/deployment.yaml")
    assert [p.name for p in config.manifests] == ["deployment.yaml", "service.yaml"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("10m", 600), ("1h30m", 5400), ("2.5m", 150), ("45s", 45)]
)
def test_durations(text: str, seconds: float) -> None:
    assert settings.parse_duration(text) == seconds


def test_a_timeout_without_a_unit_is_refused_with_both_readings(workspace: Path) -> None:
    [problem] = problems(workspace, timeout="30")
    assert problem.startswith(
        "timeout: `30` has no unit (seconds to kubectl, minutes to Azure/k8s-deploy): "
        "write 30s or 30m"
    )
    assert "\n" not in problem


@pytest.mark.parametrize(
    ("text", "seconds"), [("", 10.0), ("10s", 10.0), ("1m30s", 90.0), ("0", 0.0), ("0s", 0.0)]
)
def test_the_settle_window_is_a_duration_or_zero(
    workspace: Path, text: str, seconds: float
) -> None:
    config, _ = parse(workspace, **({"settle": text} if text else {}))
    assert config.settle_s == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10", "settle: `10` has no unit (seconds to kubectl, minutes to Azure/k8s-deploy)"),
        ("-5s", "settle: is not a duration: '-5s'"),
        ("11m", "settle: must be at most 10m, got '11m'"),
    ],
)
def test_a_settle_window_that_is_not_one_is_one_line(
    workspace: Path, text: str, message: str
) -> None:
    [problem] = problems(workspace, settle=text)
    assert problem.startswith(message)
    assert "\n" not in problem


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("thraxil/antisocial", "docker.io"),
        ("registry.digitalocean.com/team/app", "registry.digitalocean.com"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000"),
        ("localhost/app", "localhost"),
    ],
)
def test_registry_host_is_derived_from_the_image(
    workspace: Path, image: str, registry: str
) -> None:
    config, _ = parse(workspace, image=image)
    assert config.registry == registry


@pytest.mark.parametrize(
    ("server", "repo", "run_id", "expected"),
    [
        ("https://github.com", "team/app", "42", "https://github.com/team/app/actions/runs/42"),
        ("https://github.com", "team/app", "", ""),
        ("https://github.com", "team/app", "42\nkubectl", ""),
        ("https://evil.example/x?y=", "team/app", "42", ""),
        ("https://github.com", "team/app /x", "42", ""),
    ],
)
def test_the_run_url_for_the_change_cause_is_built_only_from_plain_parts(
    workspace: Path, server: str, repo: str, run_id: str, expected: str
) -> None:
    env = {
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_SERVER_URL": server,
        "GITHUB_REPOSITORY": repo,
        "GITHUB_RUN_ID": run_id,
    }
    raw = {
        "image": "registry.example.com/team/app",
        "sha": SHA,
        "digitalocean-token": "dop_v1_secret",
        "cluster": "prod",
    }
    assert settings.parse(raw, env, mask=lambda _: None, github=True).run_url == expected


def test_build_cache_defaults_to_a_tag_next_to_the_image(workspace: Path) -> None:
    config, _ = parse(workspace)
    assert config.build_cache == "registry.example.com/team/app:buildcache"
    assert parse(workspace, build_cache="false")[0].build_cache == ""
    other = parse(workspace, build_cache="ghcr.io/org/cache:main")[0]
    assert other.build_cache == "ghcr.io/org/cache:main"


@pytest.mark.parametrize(
    "given", ["ghcr.io/org/cache", "ghcr.io/org/cache@sha256:" + "a" * 64, "Bad/Ref:x"]
)
def test_build_cache_must_be_a_tagged_reference_or_false(workspace: Path, given: str) -> None:
    (problem,) = problems(workspace, build_cache=given)
    assert problem.startswith("build-cache:"), problem


def test_build_secrets_are_id_value_lines_each_value_masked_before_anything_else(
    workspace: Path,
) -> None:
    config, masked = parse(
        workspace, build_secrets="pip_token=pypi-secret-1\nnpm.rc='//r/:_t=s2'\n"
    )
    assert config.build_secrets == (("pip_token", "pypi-secret-1"), ("npm.rc", "//r/:_t=s2"))
    assert {"pypi-secret-1", "//r/:_t=s2"} <= set(masked)
    assert "pypi-secret-1" not in repr(config)
    assert "pypi-secret-1" in config.secret_values()


def test_a_build_secret_id_with_a_comma_is_refused(workspace: Path) -> None:
    (problem,) = problems(workspace, build_secrets="a,b=value1234\n")
    assert problem.startswith("build-secrets"), problem
    assert "value1234" not in problem


def test_every_input_carries_its_parser_and_fills_one_settings_field() -> None:
    from dataclasses import fields

    from deployer.settings import INPUTS, Settings

    assert all(spec.parse is not None for spec in INPUTS)
    from_inputs = [spec.setting for spec in INPUTS]
    assert len(set(from_inputs)) == len(from_inputs)
    not_inputs = {"workspace", "api_url", "docr_host", "source_url", "run_url", "github"}
    assert set(from_inputs) | not_inputs == {f.name for f in fields(Settings)}


def test_wait_for_takes_kind_slash_name_and_a_plain_name_is_still_a_deployment(
    workspace: Path,
) -> None:
    config, _ = parse(workspace, wait_for="web\nsts/db, StatefulSet/cache,job/migrate web")
    assert config.wait_for == (
        "Deployment/web",
        "StatefulSet/db",
        "StatefulSet/cache",
        "Job/migrate",
    )


def test_run_first_rerun_first_and_dry_run_default_off(workspace: Path) -> None:
    config, _ = parse(workspace)
    assert (config.run_first, config.rerun_first, config.dry_run) == ((), False, False)
    config, _ = parse(workspace, run_first="migrate\nseed", rerun_first="true", dry_run="true")
    assert (config.run_first, config.rerun_first, config.dry_run) == (
        ("migrate", "seed"),
        True,
        True,
    )


# -- one vocabulary per way in: the action's inputs, the CLI's flags and variables ----------------

EVERY_MISTAKE = {
    "image": "App:latest",
    "sha": "",
    "digitalocean-token": "dop_v1_secret",
    "cluster": "prod",
    "kubeconfig": "apiVersion: v1\nkind: Config\n",
    "manifests": "/etc/passwd\nmissing/*.yaml",
    "placeholder": "x",
    "namespace": "Bad_NS",
    "registry-username": "bot",
    "context": "../outside",
    "build": "sometimes",
    "build-args": "NOEQUALS",
    "build-cache": "Bad Cache",
    "build-secrets": "no equals here",
    "secrets": "no equals here",
    "wait-for": "cronjob/x",
    "run-first": "Bad_Name",
    "timeout": "10",
    "rollback-on-failure": "maybe",
    "link-registry": "true",
}
HYPHENATED = [n for n in settings.INPUT_NAMES if "-" in n]


def every_problem(workspace: Path, github: bool) -> list[InputError]:
    with pytest.raises(InputError) as info:
        settings.parse(
            EVERY_MISTAKE, {"GITHUB_WORKSPACE": str(workspace)}, mask=lambda _: None, github=github
        )
    return list(getattr(info.value, "problems", [info.value]))


def test_the_cli_is_answered_in_flags_and_variables_never_in_input_names(workspace: Path) -> None:
    found = every_problem(workspace, github=False)
    assert len(found) >= 15
    cli_names = {"DIGITALOCEAN_ACCESS_TOKEN", "REGISTRY_PASSWORD"}
    for problem in found:
        assert problem.where.startswith("--") or problem.where.split(" line ")[0] in (
            cli_names | {"--secrets-file", "--build-secrets-file", "secrets"}
        ), problem
        text = f"{problem.message} {problem.hint}"
        for name in HYPHENATED:
            assert re.search(rf"(?<![\w-]){name}(?![\w-])", text) is None, (name, str(problem))
        assert "github.sha" not in text and "the action" not in text
    # The action keeps its own names, for the same mistakes.
    action = every_problem(workspace, github=True)
    assert [p.where.split(" line ")[0] for p in action][:3] == ["image", "sha", "kubeconfig"]
    assert [p.where.split(" line ")[0] for p in found][:3] == ["--image", "--sha", "--kubeconfig"]
