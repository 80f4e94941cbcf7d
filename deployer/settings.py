"""The one frozen Settings object, built from action inputs or CLI flags, validated and typed.

This is the only module that reads the environment: the action's `INPUT_*` variables, the GitHub
variables, and for the CLI the `DIGITALOCEAN_ACCESS_TOKEN` / `REGISTRY_PASSWORD` variables (and a
`.env` file, loaded by the CLI before it calls in here). Every problem found is an `InputError` that
names the input and says what to do; all of them are collected so a user fixes them in one go.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from deployer import input_parsers as parsers
from deployer import input_values
from deployer import kubeconfig as kubeconfig_input
from deployer.digitalocean import DEFAULT_API_URL
from deployer.docr import HOST as DOCR_HOST
from deployer.errors import DeployError, InputError
from deployer.input_parsers import Inputs, Invalid, Parser, PrComment, docr_host_from

BuildMode = Literal["auto", "always", "never"]

# Moved to input_values, and still reached as `settings.X` by the CLI and the tests.
WaitSettings = input_values.WaitSettings
is_cluster = input_values.is_cluster
load_env_file = input_values.load_env_file
parse_duration = input_values.parse_duration
parse_wait = input_values.parse_wait
parse_settle = input_values.parse_settle
DEFAULT_SETTLE = input_values.DEFAULT_SETTLE


@dataclass(frozen=True)
class InputSpec:
    """One action input; the CLI flag of the same name mirrors it.

    `parse` turns the input's text (stripped, or its default; the raw text when `raw`) into the
    Settings field `field` (default: the name with '_' for '-'), raising `Invalid` with a hint;
    it may also check the inputs parsed before it, which it reaches through `Inputs`."""

    name: str
    default: str = ""
    help: str = ""
    secret: bool = False
    parse: Parser | None = None
    raw: bool = False
    field: str = ""
    unset: str = ""  # what an empty value means, when it means something (the CLI's --help)

    @property
    def setting(self) -> str:
        return self.field or self.name.replace("-", "_")


# The action's inputs, in action.yml's order (the order they are parsed and their problems
# listed). action.yml is the user-facing copy; a unit test keeps the two in step.
INPUTS: tuple[InputSpec, ...] = (
    InputSpec("image", help="image repository without a tag", parse=parsers.image),
    InputSpec(
        "sha",
        help="full commit SHA, the image tag",
        parse=parsers.sha,
        unset="$GITHUB_SHA, else `git rev-parse HEAD`",
    ),
    InputSpec("digitalocean-token", secret=True, help="DigitalOcean API token", parse=parsers.text),
    InputSpec("cluster", help="DigitalOcean Kubernetes cluster name or id", parse=parsers.text),
    InputSpec(
        "kubeconfig",
        secret=True,
        help="kubeconfig text instead of DigitalOcean",
        parse=parsers.kubeconfig,
    ),
    InputSpec(
        "manifests",
        "deploy/deployment.yaml",
        "manifest files or globs, or a kustomization directory",
        parse=parsers.manifest_files,
    ),
    InputSpec(
        "placeholder", "<IMAGE>", "text replaced by the image reference", parse=parsers.placeholder
    ),
    InputSpec(
        "namespace",
        help="namespace for objects that name none",
        parse=parsers.namespace,
        unset="what the manifests say, else default",
    ),
    InputSpec(
        "registry-username",
        help="registry user (its password: REGISTRY_PASSWORD)",
        parse=parsers.text,
        unset="none; for registry.digitalocean.com short-lived credentials from the token",
    ),
    InputSpec(
        "registry-password", secret=True, help="registry password", parse=parsers.registry_password
    ),
    InputSpec("context", ".", "docker build context", parse=parsers.context),
    InputSpec(
        "dockerfile", "Dockerfile", "Dockerfile, relative to the context", parse=parsers.dockerfile
    ),
    InputSpec("build-args", help="KEY=value lines", parse=parsers.build_args_lines, raw=True),
    InputSpec("target", help="build stage", parse=parsers.text),
    InputSpec(
        "build-network",
        help="docker build --network (host to reach the local stack's registry)",
        parse=parsers.text,
        unset="Docker's default",
    ),
    InputSpec("build", "auto", "auto, always or never", parse=parsers.build_mode),
    InputSpec(
        "provenance",
        "false",
        "provenance attestation: false, true (mode=min) or max",
        parse=parsers.provenance,
    ),
    InputSpec("sbom", "false", "SBOM attestation (true or false)", parse=parsers.flag),
    InputSpec(
        "build-cache",
        help="registry build cache reference, or false",
        parse=parsers.build_cache_ref,
        unset="<image>:buildcache",
    ),
    InputSpec(
        "build-secrets",
        secret=True,
        help="id=value lines for RUN --mount=type=secret",
        parse=parsers.build_secrets,
        raw=True,
    ),
    InputSpec(
        "secrets",
        secret=True,
        help="env-file text for the Secret",
        parse=parsers.secrets_env,
        raw=True,
    ),
    InputSpec(
        "secret-name",
        help="name of the Secret made from the secrets input",
        parse=parsers.secret_name,
    ),
    InputSpec(
        "wait-for",
        help="workloads to wait for: kind/name, or a Deployment's name",
        parse=parsers.wait_for,
        unset="every Deployment, StatefulSet, DaemonSet and Job in the manifests",
    ),
    InputSpec(
        "timeout", "10m", "time for all rollouts together", parse=parsers.timeout, field="timeout_s"
    ),
    InputSpec(
        "settle",
        DEFAULT_SETTLE,
        "how long new containers must stay up after kubectl's done before green (0: off)",
        parse=parsers.settle,
        field="settle_s",
    ),
    InputSpec(
        "rollback-on-failure",
        "false",
        "put the whole release back when the deploy fails, and wait for it",
        parse=parsers.flag,
    ),
    InputSpec("pin-digest", "false", "render image@digest", parse=parsers.flag),
    InputSpec(
        "force-conflicts", "true", "take over fields owned by other managers", parse=parsers.flag
    ),
    InputSpec(
        "link-registry",
        "false",
        "integrate DOCR with the cluster (pull access)",
        parse=parsers.link_registry,
    ),
    InputSpec(
        "registry-retention",
        help="DOCR: keep the N newest commit tags (and what runs); delete the rest",
        parse=parsers.registry_retention,
    ),
    InputSpec(
        "registry-gc",
        "false",
        "DOCR: start a garbage collection after retention deleted tags",
        parse=parsers.registry_gc,
    ),
    InputSpec(
        "run-first",
        help="Jobs to run to completion before anything else changes",
        parse=parsers.run_first,
    ),
    InputSpec(
        "rerun-first",
        "false",
        "run run-first Jobs again at a commit where they completed",
        parse=parsers.flag,
    ),
    InputSpec(
        "run-first-timeout",
        help="time for the run-first Jobs (default: their activeDeadlineSeconds, else timeout)",
        parse=parsers.optional_timeout,
        field="run_first_timeout_s",
    ),
    InputSpec(
        "apply",
        "true",
        "false: only watch workloads another tool applied (wait-for or selector)",
        parse=parsers.apply,
    ),
    InputSpec(
        "selector", help="with apply false: a label selector of workloads", parse=parsers.selector
    ),
    InputSpec(
        "dry-run", "false", "preview: server-side dry-run apply and a diff", parse=parsers.flag
    ),
    InputSpec(
        "url", help="the app's address for the url output (default: found)", parse=parsers.url
    ),
    InputSpec(
        "github-token",
        secret=True,
        help="with dry-run on a pull_request event: post the preview on the pull request",
        parse=parsers.pr_comment,
        field="pr_comment",
    ),
    InputSpec(
        "prune",
        "false",
        "delete objects of the app's ApplySet the manifests no longer hold, once green",
        parse=parsers.flag,
    ),
)
# What watching workloads another tool applied (apply: false) reads; every other input is about
# building or applying and is refused when set, so nothing the user wrote is silently ignored.
WATCH_INPUTS = frozenset(
    {
        "digitalocean-token",
        "cluster",
        "kubeconfig",
        "namespace",
        "wait-for",
        "timeout",
        "settle",
        "apply",
        "selector",
        "url",
    }
)
# What a field holds when its input was invalid, so the later checks still run.
_FALLBACK: dict[str, object] = {
    "context": Path(),
    "dockerfile": Path("Dockerfile"),
    "timeout_s": 0.0,
    "run_first_timeout_s": None,
    "pr_comment": None,
    "settle_s": 0.0,
}

INPUT_NAMES = tuple(spec.name for spec in INPUTS)
FLAGS = (
    parsers.flag,
    parsers.link_registry,
)  # the parsers of true/false inputs (a bare CLI flag is true)

# How the CLI is given what the action calls an input: secrets from the environment or a file,
# everything else a flag of the input's name. The one place the two vocabularies meet.
CLI_NAMES = {
    "digitalocean-token": "DIGITALOCEAN_ACCESS_TOKEN",
    "registry-password": "REGISTRY_PASSWORD",
    "kubeconfig": "--kubeconfig",
    "secrets": "--secrets-file",
    "build-secrets": "--build-secrets-file",
}


def named(name: str, action: bool) -> str:
    """An input as its user gave it: the action's input name, or the CLI's flag or variable."""
    if action or name not in INPUT_NAMES:
        return name
    return CLI_NAMES.get(name, f"--{name}")


_HYPHENATED = "|".join(re.escape(n) for n in sorted(INPUT_NAMES, key=len, reverse=True) if "-" in n)
# Input names in running text: a hyphenated name alone ("registry-username and ..."), and the
# forms "build: never" and "the manifests input" for names that are also plain words.
# (`where` is translated only when it is an input's name: a file:line stays as it is.)
_IN_TEXT = re.compile(
    rf"(?:(?<=[\s(])|^)(?:(?P<hyphenated>{_HYPHENATED})(?![\w-])"
    rf"|(?P<setting>{'|'.join(INPUT_NAMES)}): (?P<value>true|false|auto|always|never)\b"
    rf"|the (?P<input>{'|'.join(INPUT_NAMES)}) input\b)"
)


def cli_words(text: str) -> str:
    """`text` with the inputs it mentions (as `_IN_TEXT` finds them) named as the CLI takes them."""

    def one(m: re.Match[str]) -> str:
        if m["hyphenated"]:
            return named(m["hyphenated"], action=False)
        if m["setting"]:
            return f"{named(m['setting'], action=False)} {m['value']}"
        return named(m["input"], action=False)

    return _IN_TEXT.sub(one, text)


E = TypeVar("E", bound=DeployError)


def spoken(error: E, action: bool) -> E:
    """`error` in the words of whoever gave the inputs: for the CLI, the input it names (`where`)
    and the inputs its message and hint mention become flags and variables (`named`)."""
    if action:
        return error
    told = type(error).__new__(type(error), *error.args)  # a copy: the original stays as raised
    told.__dict__.update(vars(error))
    told.__cause__, told.__traceback__ = error.__cause__, error.__traceback__
    if isinstance(told, InputError):
        name, line, number = told.where.partition(" line ")  # e.g. "build-args line 2"
        if name in INPUT_NAMES:
            told.where = named(name, action=False) + line + number
    told.message = cli_words(told.message)
    told.hint = cli_words(told.hint)
    return told


@dataclass(frozen=True)
class Settings:
    image: str
    sha: str
    workspace: Path
    manifests: tuple[Path, ...]
    placeholder: str = "<IMAGE>"
    digitalocean_token: str = field(default="", repr=False)
    cluster: str = ""
    kubeconfig: str = field(default="", repr=False)
    api_url: str = DEFAULT_API_URL
    namespace: str = ""
    registry_username: str = ""
    registry_password: str = field(default="", repr=False)
    context: Path = Path()
    dockerfile: Path = Path("Dockerfile")
    build_args: tuple[tuple[str, str], ...] = ()
    target: str = ""
    build_network: str = ""
    build: BuildMode = "auto"
    build_cache: str = ""  # the cache reference; empty: no registry cache
    provenance: str = "false"  # false, min or max
    sbom: bool = False
    build_secrets: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    secrets: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    secret_name: str = ""
    wait_for: tuple[str, ...] = ()  # "Kind/name" (a plain name in the input is a Deployment)
    timeout_s: float = 600.0
    settle_s: float = 10.0  # DEFAULT_SETTLE
    rollback_on_failure: bool = False
    pin_digest: bool = False
    force_conflicts: bool = True
    link_registry: bool = False
    registry_retention: int = 0  # 0: off
    registry_gc: bool = False
    docr_host: str = DOCR_HOST  # DIGITALOCEAN_REGISTRY_HOST: the stack's registry plays DOCR
    run_first: tuple[str, ...] = ()
    rerun_first: bool = False
    run_first_timeout_s: float | None = None  # None: the Jobs' own deadlines, else timeout_s
    dry_run: bool = False
    pr_comment: PrComment | None = None  # github-token: the preview also goes to the pull request
    apply: bool = True  # False: watch only, what another tool applied
    selector: str = ""  # with apply False: a label selector of workloads to wait for
    url: str = ""  # the app's address, stated; empty: found from an Ingress or LoadBalancer
    prune: bool = False  # the deploy is an ApplySet; members no longer in the manifests go
    source_url: str = ""
    run_url: str = ""  # this Actions run, for the change cause; empty outside Actions
    github: bool = False  # the action's inputs (INPUT_*); False: the CLI's flags (see `named`)

    @property
    def registry(self) -> str:
        """The registry host of `image` (docker.io when the image names none)."""
        first, _, rest = self.image.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return first
        return "docker.io"

    @property
    def image_ref(self) -> str:
        return f"{self.image}:{self.sha}"

    def secret_values(self) -> list[str]:
        """Every secret value these settings hold, for masking."""
        values = [self.digitalocean_token, self.registry_password, self.kubeconfig]
        values += [value for _, value in self.secrets]
        values += [value for _, value in self.build_secrets]
        values += [self.pr_comment.token] if self.pr_comment else []
        return [v for v in values if v]


@dataclass(frozen=True)
class GitHubContext:
    github: bool
    output_file: Path | None
    summary_file: Path | None


def github_context(env: Mapping[str, str]) -> GitHubContext:
    """Inside GitHub Actions (a container action, or the CLI in a `run:` step) speak workflow commands."""
    output = env.get("GITHUB_OUTPUT", "")
    summary = env.get("GITHUB_STEP_SUMMARY", "")
    return GitHubContext(
        github=env.get("GITHUB_ACTIONS") == "true",
        output_file=Path(output) if output else None,
        summary_file=Path(summary) if summary else None,
    )


def api_url_from(env: Mapping[str, str]) -> str:
    return (env.get("DIGITALOCEAN_API_URL") or DEFAULT_API_URL).rstrip("/")


def raw_inputs_from_action_env(env: Mapping[str, str]) -> dict[str, str]:
    """The runner passes every declared input as INPUT_<NAME> (hyphens kept, empty when not given)."""
    raw: dict[str, str] = {}
    for spec in INPUTS:
        upper = spec.name.upper()
        value = env.get(f"INPUT_{upper}")
        if value is None:
            value = env.get(f"INPUT_{upper.replace('-', '_')}")
        raw[spec.name] = value if value is not None else ""
    return raw


def forget_inputs(environ: MutableMapping[str, str]) -> None:
    """Drop the action's inputs from the process environment once read, so no child process
    (docker, a kubeconfig exec plugin) inherits the token, the env file or the registry password."""
    for name in [n for n in environ if n.upper().startswith("INPUT_")]:
        del environ[name]


def from_action_env(env: Mapping[str, str], mask: Callable[[str], None]) -> Settings:
    raw = raw_inputs_from_action_env(env)
    return parse(raw, env, mask=mask, github=True)


def parse(
    raw: Mapping[str, str],
    env: Mapping[str, str],
    *,
    mask: Callable[[str], None],
    github: bool = False,
    secrets_source: str = "secrets",
) -> Settings:
    """Validate raw input strings; raise the first InputError after masking every secret.

    Each input's own parser (in `INPUTS`) turns its text into its Settings field; every problem
    is collected, so a user fixes them in one go. `env` supplies what is not an input: the
    workspace, GitHub context and the API root.
    """
    # Mask first: nothing below may print a secret before it is registered.
    for spec in INPUTS:
        secret = raw.get(spec.name, "")
        if spec.name == "kubeconfig" and secret.strip():
            kubeconfig_input.mask_credentials(secret, mask)  # its credentials, not its structure
        elif spec.secret and secret:
            mask(secret.strip())
    inputs = Inputs(
        raw,
        env,
        mask=mask,
        github=github,
        secrets_source=secrets_source,
        defaults={spec.name: spec.default for spec in INPUTS},
        speak=lambda error: spoken(error, github),
        name_of=lambda name: named(name, github),
    )
    watching = inputs.text("apply").lower() == "false"
    if watching:
        _refuse_deploy_inputs(raw, inputs)
    for spec in INPUTS:
        assert spec.parse is not None
        if watching and spec.name not in WATCH_INPUTS:
            if spec.setting in _UNSET_WHEN_WATCHING:  # the rest keep Settings' defaults
                inputs.parsed[spec.setting] = _UNSET_WHEN_WATCHING[spec.setting]
            continue
        text = raw.get(spec.name, "") if spec.raw else inputs.text(spec.name)
        try:
            inputs.parsed[spec.setting] = spec.parse(text, inputs)
        except Invalid as bad:
            inputs.problem(spec.name, bad.message, bad.hint)
            inputs.parsed[spec.setting] = _FALLBACK.get(spec.setting, _empty(spec.parse))
    if inputs.problems:
        problems = inputs.problems
        raise problems[0] if len(problems) == 1 else InputErrors(problems)
    server, repo = env.get("GITHUB_SERVER_URL", ""), env.get("GITHUB_REPOSITORY", "")
    return Settings(
        workspace=inputs.workspace,
        api_url=api_url_from(env),
        docr_host=docr_host_from(env),
        source_url=f"{server}/{repo}" if server and repo else "",
        run_url=_run_url(env),
        github=github,
        **inputs.parsed,  # type: ignore[arg-type]  # each parser returns its field's type
    )


# Settings fields without a default, for a run that only watches.
_UNSET_WHEN_WATCHING: dict[str, object] = {"image": "", "sha": "", "manifests": ()}


def _refuse_deploy_inputs(raw: Mapping[str, str], inputs: Inputs) -> None:
    """With apply: false nothing is built or applied: an input about that which is set (not
    left at its default) is one problem, naming them all, rather than silently ignored. The
    sha is exempt: the runner fills it in for every run."""
    defaults = {s.name: s.default for s in INPUTS}
    given = [
        name
        for name, text in raw.items()
        if name in defaults
        and name not in WATCH_INPUTS
        and name != "sha"
        and text.strip()
        and text.strip() != defaults[name]
    ]
    if given:
        inputs.problem(
            given[0],
            f"{', '.join(given)} {'has' if len(given) == 1 else 'have'} no effect with apply: false "
            "(nothing is built, pushed or applied)",
            "Remove them, or set apply: true to deploy.",
        )


def _empty(parser: Parser) -> object:
    """An invalid flag is False, any other invalid input empty (the deploy stops anyway)."""
    if parser is parsers.registry_retention:
        return 0
    if parser is parsers.provenance:
        return "false"
    return False if parser in (parsers.flag, parsers.link_registry, parsers.registry_gc) else ""


def _run_url(env: Mapping[str, str]) -> str:
    """This Actions run's URL: it lands in cluster annotations, so only plain parts, or nothing."""
    server, repo = env.get("GITHUB_SERVER_URL", ""), env.get("GITHUB_REPOSITORY", "")
    run_id = env.get("GITHUB_RUN_ID", "")
    plain = (
        re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?", server)
        and re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo)
        and re.fullmatch(r"[0-9]{1,20}", run_id)
    )
    return f"{server}/{repo}/actions/runs/{run_id}" if plain else ""


class InputErrors(InputError):
    """Several input problems at once; the first line is the first problem."""

    def __init__(self, problems: list[InputError]) -> None:
        first = problems[0]
        super().__init__(first.message, where=first.where, hint=first.hint)
        self.problems = problems

    def __str__(self) -> str:
        return "; ".join(str(p) for p in self.problems)
