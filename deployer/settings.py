"""The one frozen Settings object, built from action inputs or CLI flags, validated and typed.

This is the only module that reads the environment: the action's `INPUT_*` variables, the GitHub
variables, and for the CLI the `DIGITALOCEAN_ACCESS_TOKEN` / `REGISTRY_PASSWORD` variables (and a
`.env` file, loaded by the CLI before it calls in here). Every problem found is an `InputError` that
names the input and says what to do; all of them are collected so a user fixes them in one go.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values

from deployer import envfile, manifests
from deployer import kubeconfig as kubeconfig_input
from deployer.digitalocean import DEFAULT_API_URL
from deployer.errors import InputError
from deployer.manifests import inside_workspace, shown

BuildMode = Literal["auto", "always", "never"]


# Docker's reference grammar (distribution/reference), repository part only: no tag, no digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_REPOSITORY_RE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_CLUSTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_BUILD_ARG_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")
_ENV_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")

# Longer than any GitHub-hosted job may run (6 h) and any DigitalOcean kubeconfig token lives.
MAX_TIMEOUT_S = 24 * 3600.0
# A placeholder is replaced wherever it occurs: it must be a token no manifest holds by chance.
_PLACEHOLDER_RE = re.compile(
    r"^[^\s:#'\"\\{}\[\],&*!|%@`]{3,128}$|^\$\{[A-Za-z_][A-Za-z0-9_]{0,62}\}$"
    r"|^\{\{ ?[A-Za-z_][A-Za-z0-9_.]{0,62} ?\}\}$"
)

_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}


class Invalid(Exception):
    """What is wrong with one input's text, and what to do: the input's name is added by
    `parse`, which collects every problem before it raises."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class _Inputs:
    """What a parser may look at besides its own text: the raw inputs, the values parsed so far
    (inputs are parsed in action.yml's order), the environment and where to report."""

    def __init__(
        self,
        raw: Mapping[str, str],
        env: Mapping[str, str],
        *,
        mask: Callable[[str], None],
        github: bool,
        secrets_source: str,
    ) -> None:
        self.raw = raw
        self.env = env
        self.mask = mask
        self.github = github
        self.secrets_source = secrets_source
        self.workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd())
        self.parsed: dict[str, object] = {}
        self.problems: list[InputError] = []

    def problem(self, where: str, message: str, hint: str = "") -> None:
        self.problems.append(InputError(message, where=where, hint=hint))

    def text(self, name: str) -> str:
        """The input as given (stripped), else its default."""
        got = self.raw.get(name, "").strip()
        return got or next(s.default for s in INPUTS if s.name == name)


Parser = Callable[[str, _Inputs], object]


# wait-for's kinds, as users write them (kubectl's names and short names).
WAIT_KINDS = {
    "deployment": "Deployment",
    "deployments": "Deployment",
    "deploy": "Deployment",
    "statefulset": "StatefulSet",
    "statefulsets": "StatefulSet",
    "sts": "StatefulSet",
    "daemonset": "DaemonSet",
    "daemonsets": "DaemonSet",
    "ds": "DaemonSet",
    "job": "Job",
    "jobs": "Job",
}


@dataclass(frozen=True)
class InputSpec:
    """One action input; the CLI flag of the same name mirrors it.

    `parse` turns the input's text (stripped, or its default; the raw text when `raw`) into the
    Settings field `field` (default: the name with '_' for '-'), raising `Invalid` with a hint;
    it may also check the inputs parsed before it, which it reaches through `_Inputs`."""

    name: str
    default: str = ""
    help: str = ""
    secret: bool = False
    parse: Parser | None = None
    raw: bool = False
    field: str = ""

    @property
    def setting(self) -> str:
        return self.field or self.name.replace("-", "_")


def _text(text: str, inputs: _Inputs) -> str:
    return text


def _image(text: str, inputs: _Inputs) -> str:
    if not text:
        raise Invalid(
            "is required",
            "Set it to the image repository, e.g. registry.digitalocean.com/team/app.",
        )
    if "@" in text or _has_tag(text):
        raise Invalid(
            f"must be a repository without tag or digest, got {text!r}",
            "Drop the ':tag' part: the tag is the sha input.",
        )
    if not _REPOSITORY_RE.match(text):
        raise Invalid(
            f"is not a valid image repository: {text!r}",
            "Use lower-case letters, digits and . _ - / only, e.g. ghcr.io/org/app.",
        )
    return text


def _sha(text: str, inputs: _Inputs) -> str:
    sha = text or inputs.env.get("GITHUB_SHA", "")
    if not sha:
        raise Invalid(
            "is required", "Set it to the full commit SHA (the action defaults to github.sha)."
        )
    if not _SHA_RE.match(sha):
        raise Invalid(
            f"must be a full 40-character commit SHA in lower-case hex, got {sha!r}",
            "Use the full SHA so the tag matches the image built on push (git rev-parse HEAD).",
        )
    return sha


def _kubeconfig(text: str, inputs: _Inputs) -> str:
    """Either a kubeconfig, or the DigitalOcean token and cluster (checked here, after both)."""
    token, cluster = inputs.parsed["digitalocean_token"], str(inputs.parsed["cluster"])
    if text and (token or cluster):
        raise Invalid(
            "cannot be combined with digitalocean-token or cluster",
            "Give either a kubeconfig, or digitalocean-token and cluster.",
        )
    if not text:
        if not token:
            inputs.problem(
                "digitalocean-token" if inputs.github else "DIGITALOCEAN_ACCESS_TOKEN",
                "is required",
                "Pass a DigitalOcean token from a secret, e.g. ${{ secrets.DIGITALOCEAN_ACCESS_TOKEN }}."
                if inputs.github
                else "Export it, or put it in .env (or give --kubeconfig).",
            )
        if not cluster:
            inputs.problem("cluster", "is required", "Set it to the cluster's name or id.")
        elif not _CLUSTER_RE.match(cluster):
            inputs.problem(
                "cluster",
                f"{shown(cluster)} is not a cluster name or id",
                "Use the cluster's name (letters, digits, '-', '.', '_') or its id.",
            )
    return text


def _manifests(text: str, inputs: _Inputs) -> tuple[Path, ...]:
    return manifests.find_files(text, inputs.workspace, inputs.problem)


def _placeholder(text: str, inputs: _Inputs) -> str:
    if not _PLACEHOLDER_RE.match(text) or text.isalnum():
        raise Invalid(
            f"{shown(text)} cannot be a placeholder",
            "Use 3-128 characters without blanks or YAML punctuation that no manifest holds by "
            "chance, e.g. <IMAGE> or ${IMAGE}.",
        )
    return text


def _namespace(text: str, inputs: _Inputs) -> str:
    if text and not _DNS_LABEL_RE.match(text):
        raise Invalid(
            f"is not a valid namespace name: {text!r}",
            "Use at most 63 lower-case letters, digits and '-'.",
        )
    return text


def _registry_password(text: str, inputs: _Inputs) -> str:
    """Both registry credentials, or neither (checked here, after the username)."""
    if bool(inputs.parsed["registry_username"]) != bool(text):
        inputs.problem(
            "registry-password" if inputs.parsed["registry_username"] else "registry-username",
            "is required when the other registry credential is set",
            "Give both registry-username and registry-password, or neither.",
        )
    return text


def _context(text: str, inputs: _Inputs) -> Path:
    return inputs.workspace / text


def _dockerfile(text: str, inputs: _Inputs) -> Path:
    context = inputs.parsed["context"]
    assert isinstance(context, Path)
    return context / text


def _build_args_input(text: str, inputs: _Inputs) -> tuple[tuple[str, str], ...]:
    return _build_args(text, inputs.problem)


def _build(text: str, inputs: _Inputs) -> str:
    """auto, always or never; unless never, the context and Dockerfile must be there."""
    if text not in ("auto", "always", "never"):
        raise Invalid(
            f"must be auto, always or never, got {text!r}",
            "auto skips the build when the image exists; never deploys an existing image.",
        )
    context, dockerfile = inputs.parsed["context"], inputs.parsed["dockerfile"]
    assert isinstance(context, Path)
    assert isinstance(dockerfile, Path)
    if text != "never":
        if not inside_workspace(inputs.workspace, context):
            inputs.problem(
                "context",
                f"{shown(inputs.text('context'))} resolves to a place outside the workspace",
                "The build context must be a directory of the checked-out repository.",
            )
        elif not inside_workspace(inputs.workspace, dockerfile):
            inputs.problem(
                "dockerfile",
                f"{shown(inputs.text('dockerfile'))} resolves to a place outside the workspace",
                "Give the Dockerfile relative to the context, inside the repository.",
            )
        elif not context.is_dir():
            inputs.problem(
                "context",
                f"directory {inputs.text('context')!r} does not exist in the workspace",
                "Check out the repository first (actions/checkout) or fix the path.",
            )
        elif not dockerfile.is_file():
            inputs.problem(
                "dockerfile",
                f"{_rel(dockerfile, inputs.workspace)} does not exist",
                "Set dockerfile relative to the context, or build: never to deploy an existing image.",
            )
    return text


def _build_cache_input(text: str, inputs: _Inputs) -> str:
    return _build_cache(text, str(inputs.parsed["image"] or ""), inputs.problem)


def _build_secrets(text: str, inputs: _Inputs) -> tuple[tuple[str, str], ...]:
    return _env_file(text, "build-secrets", inputs.problem, inputs.mask)


def _secrets(text: str, inputs: _Inputs) -> tuple[tuple[str, str], ...]:
    return _env_file(text, inputs.secrets_source, inputs.problem, inputs.mask)


def _secret_name(text: str, inputs: _Inputs) -> str:
    if inputs.parsed["secrets"] and not text:
        inputs.problem(
            "secret-name",
            "is required when secrets is set",
            "Name the Secret your manifests reference, e.g. app-secrets.",
        )
    if text and not manifests.is_name(text):
        raise Invalid(
            f"is not a valid Secret name: {text!r}", "Use lower-case letters, digits, '-' and '.'."
        )
    return text


def split_workload(item: str) -> tuple[str | None, str]:
    """`kind/name` → (Kind, name), the kind None when it is not one we wait for; a plain name
    is a Deployment, as in every v1 release. The name is for the caller to check."""
    kind_text, _, name = item.rpartition("/")
    return (WAIT_KINDS.get(kind_text.lower()) if kind_text else "Deployment"), name


def _wait_for(text: str, inputs: _Inputs) -> tuple[str, ...]:
    """ "Kind/name" for each item (see `split_workload`)."""
    wanted: list[str] = []
    for item in (n for n in re.split(r"[\s,]+", text) if n):
        kind, name = split_workload(item)
        if kind is None:
            inputs.problem(
                "wait-for",
                f"{item!r}: {item.rpartition('/')[0]!r} is not a kind we wait for",
                "Write kind/name with kind deployment, statefulset, daemonset or job "
                "(a plain name is a Deployment).",
            )
        elif not manifests.is_name(name):
            inputs.problem(
                "wait-for",
                f"{name!r} is not a valid {kind} name",
                "List workloads from the manifests as kind/name (or a Deployment's name), one "
                "per line or comma-separated.",
            )
        else:
            wanted.append(f"{kind}/{name}")
    return tuple(dict.fromkeys(wanted))


def _run_first(text: str, inputs: _Inputs) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n for n in re.split(r"[\s,]+", text) if n))
    for name in names:
        if not manifests.is_name(name):
            inputs.problem(
                "run-first",
                f"{name!r} is not a valid Job name",
                "List Job names from the manifests (e.g. migrate), one per line or comma-separated.",
            )
    return names


def _timeout(text: str, inputs: _Inputs) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise Invalid(str(exc), "Write it like 90s, 10m or 1h30m.") from exc


DEFAULT_SETTLE = "10s"
MAX_SETTLE_S = 600.0


def parse_settle(text: str) -> float:
    """The settle window in seconds: a duration like `timeout` ('10s', '1m'), or 0 for none.
    Only 0 may go without a unit (it means the same in every unit); '10' is refused like
    `timeout: 10`."""
    text = text.strip()
    if re.fullmatch(r"0+(?:\.0+)?[hms]?", text):
        return 0.0
    seconds = parse_duration(text)
    if seconds > MAX_SETTLE_S:
        raise ValueError(f"must be at most {MAX_SETTLE_S / 60:g}m, got {text!r}")
    return seconds


def _settle(text: str, inputs: _Inputs) -> float:
    try:
        return parse_settle(text)
    except ValueError as exc:
        raise Invalid(
            str(exc), "Write it like 10s or 30s, or 0 to call a rollout green as kubectl does."
        ) from exc


def _flag(text: str, inputs: _Inputs) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise Invalid(f"must be true or false, got {text!r}", "Write true or false.")


def _link_registry(text: str, inputs: _Inputs) -> bool:
    link = _flag(text, inputs)
    if link and (inputs.parsed["kubeconfig"] or not inputs.parsed["digitalocean_token"]):
        raise Invalid(
            "needs the DigitalOcean API (digitalocean-token and cluster), not a kubeconfig input",
            "Set digitalocean-token and cluster, or integrate the registry once by hand.",
        )
    return link


# The action's inputs, in action.yml's order (the order they are parsed and their problems
# listed). action.yml is the user-facing copy; a unit test keeps the two in step.
INPUTS: tuple[InputSpec, ...] = (
    InputSpec("image", help="image repository without a tag", parse=_image),
    InputSpec("sha", help="full commit SHA, the image tag", parse=_sha),
    InputSpec("digitalocean-token", secret=True, help="DigitalOcean API token", parse=_text),
    InputSpec("cluster", help="DigitalOcean Kubernetes cluster name or id", parse=_text),
    InputSpec(
        "kubeconfig", secret=True, help="kubeconfig text instead of DigitalOcean", parse=_kubeconfig
    ),
    InputSpec("manifests", "deploy/deployment.yaml", "manifest files or globs", parse=_manifests),
    InputSpec("placeholder", "<IMAGE>", "text replaced by the image reference", parse=_placeholder),
    InputSpec("namespace", help="namespace for objects that name none", parse=_namespace),
    InputSpec("registry-username", help="registry user", parse=_text),
    InputSpec("registry-password", secret=True, help="registry password", parse=_registry_password),
    InputSpec("context", ".", "docker build context", parse=_context),
    InputSpec("dockerfile", "Dockerfile", "Dockerfile, relative to the context", parse=_dockerfile),
    InputSpec("build-args", help="KEY=value lines", parse=_build_args_input, raw=True),
    InputSpec("target", help="build stage", parse=_text),
    InputSpec("build-network", help="docker build --network", parse=_text),
    InputSpec("build", "auto", "auto, always or never", parse=_build),
    InputSpec(
        "build-cache", help="registry build cache reference, or false", parse=_build_cache_input
    ),
    InputSpec(
        "build-secrets",
        secret=True,
        help="id=value lines for RUN --mount=type=secret",
        parse=_build_secrets,
        raw=True,
    ),
    InputSpec(
        "secrets", secret=True, help="env-file text for the Secret", parse=_secrets, raw=True
    ),
    InputSpec("secret-name", help="name of the Secret made from secrets", parse=_secret_name),
    InputSpec(
        "wait-for", help="workloads to wait for: kind/name, or a Deployment's name", parse=_wait_for
    ),
    InputSpec(
        "timeout", "10m", "time for all rollouts together", parse=_timeout, field="timeout_s"
    ),
    InputSpec(
        "settle",
        DEFAULT_SETTLE,
        "how long new containers must stay up after kubectl's done before green (0: off)",
        parse=_settle,
        field="settle_s",
    ),
    InputSpec("rollback-on-failure", "false", "roll failed Deployments back", parse=_flag),
    InputSpec("pin-digest", "false", "render image@digest", parse=_flag),
    InputSpec("force-conflicts", "true", "take over fields owned by other managers", parse=_flag),
    InputSpec(
        "link-registry",
        "false",
        "integrate DOCR with the cluster (pull access)",
        parse=_link_registry,
    ),
    InputSpec(
        "run-first", help="Jobs to run to completion before anything else changes", parse=_run_first
    ),
    InputSpec(
        "rerun-first",
        "false",
        "run run-first Jobs again at a commit where they completed",
        parse=_flag,
    ),
    InputSpec("dry-run", "false", "preview: server-side dry-run apply and a diff", parse=_flag),
)
# What a field holds when its input was invalid, so the later checks still run.
_FALLBACK: dict[str, object] = {
    "context": Path(),
    "dockerfile": Path("Dockerfile"),
    "timeout_s": 0.0,
    "settle_s": 0.0,
}

INPUT_NAMES = tuple(spec.name for spec in INPUTS)


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
    run_first: tuple[str, ...] = ()
    rerun_first: bool = False
    dry_run: bool = False
    source_url: str = ""
    run_url: str = ""  # this Actions run, for the change cause; empty outside Actions
    github: bool = False

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


def load_env_file(path: Path, env: dict[str, str]) -> None:
    """CLI only: fill `env` from a .env file (values already in the environment win)."""
    if not path.is_file():
        return
    try:
        values = dotenv_values(path, interpolate=False, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", where="--env-file") from exc
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text", where="--env-file") from None
    for key, val in values.items():
        if val is not None and key not in env:
            env[key] = val


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


def is_cluster(value: str) -> bool:
    return bool(_CLUSTER_RE.match(value))


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
    inputs = _Inputs(raw, env, mask=mask, github=github, secrets_source=secrets_source)
    for spec in INPUTS:
        assert spec.parse is not None
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
        source_url=f"{server}/{repo}" if server and repo else "",
        run_url=_run_url(env),
        github=github,
        **inputs.parsed,  # type: ignore[arg-type]  # each parser returns its field's type
    )


def _empty(parser: Parser) -> object:
    """An invalid flag is False, any other invalid input empty (the deploy stops anyway)."""
    return False if parser in (_flag, _link_registry) else ""


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


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h30m', '2.5m' → seconds (> 0). A bare number is refused: `timeout: 30`
    means minutes in Azure/k8s-deploy and seconds in kubectl, so whichever we picked, someone
    coming from the other would get a deploy that gives up after 30 s or waits half an hour."""
    text = text.strip()
    if len(text) > 32:
        raise ValueError(f"is not a duration: {text[:32]!r}…")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        raise ValueError(
            f"`{text}` has no unit (seconds to kubectl, minutes to Azure/k8s-deploy): "
            f"write {text}s or {text}m"
        )
    parts = _DURATION_PART_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"is not a duration: {text!r}")
    seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if not seconds > 0:
        raise ValueError(f"must be more than zero, got {text!r}")
    if seconds > MAX_TIMEOUT_S:  # also float('inf') from 400 nines, and 1e400 never parses
        raise ValueError(f"must be at most {MAX_TIMEOUT_S // 3600:.0f}h, got {text!r}")
    return seconds


def _has_tag(image: str) -> bool:
    last = image.rsplit("/", 1)[-1]
    return ":" in last


def _rel(path: Path, workspace: Path) -> str:
    try:
        return str(path.relative_to(workspace))
    except ValueError:
        return str(path)


DEFAULT_CACHE_TAG = "buildcache"


def _build_cache(text: str, image: str, problem: Callable[[str, str, str], None]) -> str:
    """Empty input: `<image>:buildcache`, next to the image (same registry, same login)."""
    if text in _FALSE:
        return ""
    if not text:
        return f"{image}:{DEFAULT_CACHE_TAG}" if image else ""
    repository, _, tag = text.rpartition(":")
    if "@" in text or not _has_tag(text) or not _REPOSITORY_RE.match(repository):
        problem(
            "build-cache",
            f"must be an image reference with a tag, or false, got {text!r}",
            f"Leave it empty for {image or '<image>'}:{DEFAULT_CACHE_TAG}, or write e.g. "
            "ghcr.io/org/app:buildcache.",
        )
        return ""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag):
        problem("build-cache", f"{tag!r} is not a valid tag", "Use letters, digits, '_', '.', '-'.")
        return ""
    return text


def _build_args(text: str, problem: Callable[[str, str, str], None]) -> tuple[tuple[str, str], ...]:
    args: list[tuple[str, str]] = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, val = line.partition("=")
        if not sep or not _BUILD_ARG_RE.match(key.strip()):
            problem(
                f"build-args line {number}",
                f"expected KEY=value, got {line!r}",
                "Write one KEY=value per line.",
            )
            continue
        args.append((key.strip(), val))
    return tuple(args)


def _env_file(
    text: str,
    source: str,
    problem: Callable[[str, str, str], None],
    mask: Callable[[str], None],
) -> tuple[tuple[str, str], ...]:
    return envfile.parse_env_file(text, source, problem, mask)
