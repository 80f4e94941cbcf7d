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
from deployer.errors import InputError
from deployer.manifests import inside_workspace, shown

BuildMode = Literal["auto", "always", "never"]

DEFAULT_API_URL = "https://api.digitalocean.com"

# Docker's reference grammar (distribution/reference), repository part only: no tag, no digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_REPOSITORY_RE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$")
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


@dataclass(frozen=True)
class InputSpec:
    """One action input; the CLI flag of the same name mirrors it."""

    name: str
    default: str = ""
    help: str = ""
    secret: bool = False


# The action's inputs, in action.yml's order. action.yml is the user-facing copy; a unit test keeps
# the two in step.
INPUTS: tuple[InputSpec, ...] = (
    InputSpec("image", help="image repository without a tag"),
    InputSpec("sha", help="full commit SHA, the image tag"),
    InputSpec("digitalocean-token", secret=True, help="DigitalOcean API token"),
    InputSpec("cluster", help="DigitalOcean Kubernetes cluster name or id"),
    InputSpec("kubeconfig", secret=True, help="kubeconfig text instead of DigitalOcean"),
    InputSpec("manifests", "deploy/deployment.yaml", "manifest files or globs"),
    InputSpec("placeholder", "<IMAGE>", "text replaced by the image reference"),
    InputSpec("namespace", help="namespace for objects that name none"),
    InputSpec("registry-username", help="registry user"),
    InputSpec("registry-password", secret=True, help="registry password"),
    InputSpec("context", ".", "docker build context"),
    InputSpec("dockerfile", "Dockerfile", "Dockerfile, relative to the context"),
    InputSpec("build-args", help="KEY=value lines"),
    InputSpec("target", help="build stage"),
    InputSpec("build-network", help="docker build --network"),
    InputSpec("build", "auto", "auto, always or never"),
    InputSpec("build-cache", help="registry build cache reference, or false"),
    InputSpec("build-secrets", secret=True, help="id=value lines for RUN --mount=type=secret"),
    InputSpec("secrets", secret=True, help="env-file text for the Secret"),
    InputSpec("secret-name", help="name of the Secret made from secrets"),
    InputSpec("wait-for", help="Deployments to watch"),
    InputSpec("timeout", "10m", "time for all rollouts together"),
    InputSpec("rollback-on-failure", "false", "roll failed Deployments back"),
    InputSpec("pin-digest", "false", "render image@digest"),
    InputSpec("force-conflicts", "true", "take over fields owned by other managers"),
    InputSpec("link-registry", "false", "integrate DOCR with the cluster (pull access)"),
)
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
    wait_for: tuple[str, ...] = ()
    timeout_s: float = 600.0
    rollback_on_failure: bool = False
    pin_digest: bool = False
    force_conflicts: bool = True
    link_registry: bool = False
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


def parse(  # noqa: PLR0915 - one check per input, in action.yml's order, reads best as one list
    raw: Mapping[str, str],
    env: Mapping[str, str],
    *,
    mask: Callable[[str], None],
    github: bool = False,
    secrets_source: str = "secrets",
) -> Settings:
    """Validate raw input strings; raise the first InputError after masking every secret.

    `env` supplies what is not an input: the workspace, GitHub context and the API root.
    """
    # Mask first: nothing below may print a secret before it is registered.
    for spec in INPUTS:
        secret = raw.get(spec.name, "")
        if spec.name == "kubeconfig" and secret.strip():
            kubeconfig_input.mask_credentials(secret, mask)  # its credentials, not its structure
        elif spec.secret and secret:
            mask(secret.strip())
    problems: list[InputError] = []

    def value(name: str) -> str:
        got = raw.get(name, "")
        return got.strip() if got.strip() else next(s.default for s in INPUTS if s.name == name)

    def problem(where: str, message: str, hint: str = "") -> None:
        problems.append(InputError(message, where=where, hint=hint))

    workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd())

    image = value("image")
    if not image:
        problem(
            "image",
            "is required",
            "Set it to the image repository, e.g. registry.digitalocean.com/team/app.",
        )
    elif "@" in image or _has_tag(image):
        problem(
            "image",
            f"must be a repository without tag or digest, got {image!r}",
            "Drop the ':tag' part: the tag is the sha input.",
        )
    elif not _REPOSITORY_RE.match(image):
        problem(
            "image",
            f"is not a valid image repository: {image!r}",
            "Use lower-case letters, digits and . _ - / only, e.g. ghcr.io/org/app.",
        )

    sha = value("sha") or env.get("GITHUB_SHA", "")
    if not sha:
        problem(
            "sha",
            "is required",
            "Set it to the full commit SHA (the action defaults to github.sha).",
        )
    elif not _SHA_RE.match(sha):
        problem(
            "sha",
            f"must be a full 40-character commit SHA in lower-case hex, got {sha!r}",
            "Use the full SHA so the tag matches the image built on push (git rev-parse HEAD).",
        )

    token = value("digitalocean-token")
    cluster = value("cluster")
    kubeconfig = raw.get("kubeconfig", "").strip()
    if kubeconfig and (token or cluster):
        problem(
            "kubeconfig",
            "cannot be combined with digitalocean-token or cluster",
            "Give either a kubeconfig, or digitalocean-token and cluster.",
        )
    elif not kubeconfig:
        if not token:
            problem(
                "digitalocean-token" if github else "DIGITALOCEAN_ACCESS_TOKEN",
                "is required",
                "Pass a DigitalOcean token from a secret, e.g. ${{ secrets.DIGITALOCEAN_ACCESS_TOKEN }}."
                if github
                else "Export it, or put it in .env (or give --kubeconfig).",
            )
        if not cluster:
            problem("cluster", "is required", "Set it to the cluster's name or id.")
        elif not _CLUSTER_RE.match(cluster):
            problem(
                "cluster",
                f"{shown(cluster)} is not a cluster name or id",
                "Use the cluster's name (letters, digits, '-', '.', '_') or its id.",
            )

    manifests = _manifest_paths(value("manifests"), workspace, problem)

    placeholder = raw.get("placeholder", "")
    placeholder = placeholder.strip() if placeholder.strip() else "<IMAGE>"
    if not _PLACEHOLDER_RE.match(placeholder) or placeholder.isalnum():
        problem(
            "placeholder",
            f"{shown(placeholder)} cannot be a placeholder",
            "Use 3-128 characters without blanks or YAML punctuation that no manifest holds by "
            "chance, e.g. <IMAGE> or ${IMAGE}.",
        )

    namespace = value("namespace")
    if namespace and not _DNS_LABEL_RE.match(namespace):
        problem(
            "namespace",
            f"is not a valid namespace name: {namespace!r}",
            "Use at most 63 lower-case letters, digits and '-'.",
        )

    user, password = value("registry-username"), raw.get("registry-password", "").strip()
    if bool(user) != bool(password):
        missing = "registry-password" if user else "registry-username"
        problem(
            missing,
            "is required when the other registry credential is set",
            "Give both registry-username and registry-password, or neither.",
        )

    context = workspace / value("context")
    dockerfile = context / value("dockerfile")
    build = value("build")
    if build not in ("auto", "always", "never"):
        problem(
            "build",
            f"must be auto, always or never, got {build!r}",
            "auto skips the build when the image exists; never deploys an existing image.",
        )
    elif build != "never":
        if not inside_workspace(workspace, context):
            problem(
                "context",
                f"{shown(value('context'))} resolves to a place outside the workspace",
                "The build context must be a directory of the checked-out repository.",
            )
        elif not inside_workspace(workspace, dockerfile):
            problem(
                "dockerfile",
                f"{shown(value('dockerfile'))} resolves to a place outside the workspace",
                "Give the Dockerfile relative to the context, inside the repository.",
            )
        elif not context.is_dir():
            problem(
                "context",
                f"directory {value('context')!r} does not exist in the workspace",
                "Check out the repository first (actions/checkout) or fix the path.",
            )
        elif not dockerfile.is_file():
            problem(
                "dockerfile",
                f"{_rel(dockerfile, workspace)} does not exist",
                "Set dockerfile relative to the context, or build: never to deploy an existing image.",
            )

    build_args = _build_args(raw.get("build-args", ""), problem)
    build_cache = _build_cache(value("build-cache"), image, problem)
    build_secrets = _env_file(raw.get("build-secrets", ""), "build-secrets", problem, mask)

    secrets_text = raw.get("secrets", "")
    secrets = _env_file(secrets_text, secrets_source, problem, mask)
    secret_name = value("secret-name")
    if secrets and not secret_name:
        problem(
            "secret-name",
            "is required when secrets is set",
            "Name the Secret your manifests reference, e.g. app-secrets.",
        )
    if secret_name and not _DNS_SUBDOMAIN_RE.match(secret_name):
        problem(
            "secret-name",
            f"is not a valid Secret name: {secret_name!r}",
            "Use lower-case letters, digits, '-' and '.'.",
        )

    wait_for = tuple(n for n in re.split(r"[\s,]+", value("wait-for")) if n)
    for name in wait_for:
        if not _DNS_SUBDOMAIN_RE.match(name):
            problem(
                "wait-for",
                f"{name!r} is not a valid Deployment name",
                "List Deployment names from the manifests, one per line or comma-separated.",
            )

    timeout_s = 0.0
    try:
        timeout_s = parse_duration(value("timeout"))
    except ValueError as exc:
        problem("timeout", str(exc), "Write it like 90s, 10m or 1h30m.")

    flags = {}
    for name in ("rollback-on-failure", "pin-digest", "force-conflicts", "link-registry"):
        text = value(name)
        if text in _TRUE:
            flags[name] = True
        elif text in _FALSE:
            flags[name] = False
        else:
            problem(name, f"must be true or false, got {text!r}", "Write true or false.")
            flags[name] = False

    if flags["link-registry"] and (kubeconfig or not token):
        problem(
            "link-registry",
            "needs the DigitalOcean API (digitalocean-token and cluster), not a kubeconfig input",
            "Set digitalocean-token and cluster, or integrate the registry once by hand.",
        )

    if problems:
        raise problems[0] if len(problems) == 1 else InputErrors(problems)

    server, repo = env.get("GITHUB_SERVER_URL", ""), env.get("GITHUB_REPOSITORY", "")
    run_id = env.get("GITHUB_RUN_ID", "")
    # The run URL lands in cluster annotations: only a plain URL of plain parts, or nothing.
    plain = (
        re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?", server)
        and re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo)
        and re.fullmatch(r"[0-9]{1,20}", run_id)
    )
    run_url = f"{server}/{repo}/actions/runs/{run_id}" if plain else ""
    return Settings(
        image=image,
        sha=sha,
        workspace=workspace,
        manifests=manifests,
        placeholder=placeholder,
        digitalocean_token=token,
        cluster=cluster,
        kubeconfig=kubeconfig,
        api_url=api_url_from(env),
        namespace=namespace,
        registry_username=user,
        registry_password=password,
        context=context,
        dockerfile=dockerfile,
        build_args=build_args,
        target=value("target"),
        build_network=value("build-network"),
        build=build,  # type: ignore[arg-type]  # checked against the literal above
        build_cache=build_cache,
        build_secrets=build_secrets,
        secrets=secrets,
        secret_name=secret_name,
        wait_for=wait_for,
        timeout_s=timeout_s,
        rollback_on_failure=flags["rollback-on-failure"],
        pin_digest=flags["pin-digest"],
        force_conflicts=flags["force-conflicts"],
        link_registry=flags["link-registry"],
        source_url=f"{server}/{repo}" if server and repo else "",
        run_url=run_url,
        github=github,
    )


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


def _manifest_paths(
    text: str, workspace: Path, problem: Callable[[str, str, str], None]
) -> tuple[Path, ...]:
    return manifests.find_files(text, workspace, problem)


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
