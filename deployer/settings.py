"""The one frozen Settings object, built from action inputs or CLI flags, validated and typed.

This is the only module that reads the environment: the action's `INPUT_*` variables, the GitHub
variables, and for the CLI the `DIGITALOCEAN_ACCESS_TOKEN` / `REGISTRY_PASSWORD` variables (and a
`.env` file, loaded by the CLI before it calls in here). Every problem found is an `InputError` that
names the input and says what to do; all of them are collected so a user fixes them in one go.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from deployer import envfile, input_values, manifests
from deployer import kubeconfig as kubeconfig_input
from deployer.digitalocean import DEFAULT_API_URL
from deployer.docr import HOST as DOCR_HOST
from deployer.errors import DeployError, InputError
from deployer.input_values import (
    CLUSTER_RE,
    DNS_LABEL_RE,
    FALSE,
    PLACEHOLDER_RE,
    REPOSITORY_RE,
    SHA_RE,
    TRUE,
    build_args,
    build_cache,
    has_tag,
    relative,
    split_workload,
)
from deployer.manifests import inside_workspace, shown

BuildMode = Literal["auto", "always", "never"]

# Moved to input_values, and still reached as `settings.X` by the CLI and the tests.
WaitSettings = input_values.WaitSettings
is_cluster = input_values.is_cluster
load_env_file = input_values.load_env_file
parse_duration = input_values.parse_duration
parse_wait = input_values.parse_wait
parse_settle = input_values.parse_settle
DEFAULT_SETTLE = input_values.DEFAULT_SETTLE


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
        """One problem, in the words of whoever gave the inputs (`spoken`)."""
        self.problems.append(spoken(InputError(message, where=where, hint=hint), self.github))

    def name(self, name: str) -> str:
        """The input as this user gives it (`named`): for text the CLI's words do not reach."""
        return named(name, self.github)

    def text(self, name: str) -> str:
        """The input as given (stripped), else its default."""
        got = self.raw.get(name, "").strip()
        return got or next(s.default for s in INPUTS if s.name == name)


Parser = Callable[[str, _Inputs], object]


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
    unset: str = ""  # what an empty value means, when it means something (the CLI's --help)

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
    if "@" in text or has_tag(text):
        raise Invalid(
            f"must be a repository without tag or digest, got {text!r}",
            "Drop the ':tag' part: the tag is the sha input.",
        )
    if not REPOSITORY_RE.match(text):
        raise Invalid(
            f"is not a valid image repository: {text!r}",
            "Use lower-case letters, digits and . _ - / only, e.g. ghcr.io/org/app.",
        )
    return text


def _sha(text: str, inputs: _Inputs) -> str:
    sha = text or inputs.env.get("GITHUB_SHA", "")
    if not sha and inputs.github:
        raise Invalid(
            "is required", "Set it to the full commit SHA (the action defaults to github.sha)."
        )
    if not sha:  # the CLI asked `git rev-parse HEAD` first (cli._deploy)
        raise Invalid(
            "is required: this is not a git repository with a commit, so `git rev-parse HEAD` "
            "gave none",
            "Pass --sha with the full commit SHA, or run inside the app's git repository.",
        )
    if not SHA_RE.match(sha):
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
            f"cannot be combined with digitalocean-token or {inputs.name('cluster')}",
            f"Give either a kubeconfig, or digitalocean-token and {inputs.name('cluster')}.",
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
        elif not CLUSTER_RE.match(cluster):
            inputs.problem(
                "cluster",
                f"{shown(cluster)} is not a cluster name or id",
                "Use the cluster's name (letters, digits, '-', '.', '_') or its id.",
            )
    return text


def _manifests(text: str, inputs: _Inputs) -> tuple[Path, ...]:
    return manifests.find_files(text, inputs.workspace, inputs.problem)


def _placeholder(text: str, inputs: _Inputs) -> str:
    if not PLACEHOLDER_RE.match(text) or text.isalnum():
        raise Invalid(
            f"{shown(text)} cannot be a placeholder",
            "Use 3-128 characters without blanks or YAML punctuation that no manifest holds by "
            "chance, e.g. <IMAGE> or ${IMAGE}.",
        )
    return text


def _namespace(text: str, inputs: _Inputs) -> str:
    if text and not DNS_LABEL_RE.match(text):
        raise Invalid(
            f"is not a valid namespace name: {text!r}",
            "Use at most 63 lower-case letters, digits and '-'.",
        )
    return text


def _registry_password(text: str, inputs: _Inputs) -> str:
    """Both registry credentials, or neither (checked here, after the username); a dry run
    pushes nothing, so it needs neither."""
    if inputs.text("dry-run") in TRUE:
        return text
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
    return build_args(text, inputs.problem)


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
                f"{relative(dockerfile, inputs.workspace)} does not exist",
                "Give the dockerfile input relative to the context, or set build: never to deploy an "
                "existing image.",
            )
    return text


def _build_cache_input(text: str, inputs: _Inputs) -> str:
    return build_cache(text, str(inputs.parsed["image"] or ""), inputs.problem)


def _build_secrets(text: str, inputs: _Inputs) -> tuple[tuple[str, str], ...]:
    source = inputs.name("build-secrets")
    return envfile.parse_env_file(text, source, inputs.problem, inputs.mask)


def _secrets(text: str, inputs: _Inputs) -> tuple[tuple[str, str], ...]:
    return envfile.parse_env_file(text, inputs.secrets_source, inputs.problem, inputs.mask)


def _secret_name(text: str, inputs: _Inputs) -> str:
    if inputs.parsed["secrets"] and not text:
        inputs.problem(
            "secret-name",
            f"is required when {inputs.name('secrets')} is set",
            "Name the Secret your manifests reference, e.g. app-secrets.",
        )
    if text and not manifests.is_name(text):
        raise Invalid(
            f"is not a valid Secret name: {text!r}", "Use lower-case letters, digits, '-' and '.'."
        )
    return text


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


def _apply(text: str, inputs: _Inputs) -> bool:
    applying = _flag(text, inputs)
    if not applying and not (inputs.parsed.get("wait_for") or inputs.text("selector")):
        inputs.problem(
            "wait-for",
            "apply is false, so there is nothing to wait for unless it is named",
            "Name the workloads another tool applied, as kind/name in wait-for, or give selector.",
        )
    return applying


_SELECTOR_RE = re.compile(r"^[A-Za-z0-9._/=!,() -]{1,1000}$")


def _selector(text: str, inputs: _Inputs) -> str:
    if not text:
        return ""
    if inputs.parsed.get("apply", True):
        raise Invalid(
            "is only read with apply: false", "Remove it, or set apply: false to watch only."
        )
    if not _SELECTOR_RE.match(text):
        raise Invalid(
            f"{shown(text)} is not a label selector",
            "Write it as kubectl does, e.g. app.kubernetes.io/instance=shop,tier!=cache.",
        )
    return text


def _optional_timeout(text: str, inputs: _Inputs) -> float | None:
    return _timeout(text, inputs) if text else None


def _settle(text: str, inputs: _Inputs) -> float:
    try:
        return parse_settle(text)
    except ValueError as exc:
        raise Invalid(
            str(exc), "Write it like 10s or 30s, or 0 to call a rollout green as kubectl does."
        ) from exc


def _flag(text: str, inputs: _Inputs) -> bool:
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise Invalid(f"must be true or false, got {text!r}", "Write true or false.")


def _link_registry(text: str, inputs: _Inputs) -> bool:
    link = _flag(text, inputs)
    if link and (inputs.parsed["kubeconfig"] or not inputs.parsed["digitalocean_token"]):
        raise Invalid(
            f"needs the DigitalOcean API (digitalocean-token and {inputs.name('cluster')}), not "
            + ("a kubeconfig input" if inputs.github else "--kubeconfig"),
            f"Set digitalocean-token and {inputs.name('cluster')}, or integrate the registry once "
            "by hand.",
        )
    return link


def _registry_retention(text: str, inputs: _Inputs) -> int:
    if not text:
        return 0
    if not re.fullmatch(r"[0-9]{1,6}", text) or int(text) < 1:
        raise Invalid(
            f"must be a whole number of commit tags to keep, 1 or more, got {text!r}",
            "Write e.g. 10, or leave it empty for no retention.",
        )
    image = str(inputs.parsed.get("image") or "")
    host = docr_host_from(inputs.env)
    if image and image.split("/", 1)[0] != host:
        raise Invalid(
            f"works only on DigitalOcean Container Registry ({host}), and the image is "
            f"{image.split('/', 1)[0]}",
            "Remove registry-retention, or clean that registry with its own tools.",
        )
    if not inputs.parsed.get("digitalocean_token"):
        raise Invalid(
            "needs digitalocean-token (tags are deleted through the DigitalOcean API)",
            "Set digitalocean-token, with the registry:read and registry:delete scopes.",
        )
    return int(text)


def _registry_gc(text: str, inputs: _Inputs) -> bool:
    gc = _flag(text, inputs)
    if gc and not inputs.raw.get("registry-retention", "").strip():
        raise Invalid(
            "needs registry-retention (a garbage collection frees what retention deleted)",
            "Set registry-retention, or remove registry-gc.",
        )
    return gc


def _provenance(text: str, inputs: _Inputs) -> str:
    value = text.lower().removeprefix("mode=")
    if value in TRUE:
        return "min"
    if value in FALSE or value in ("min", "max"):
        return "false" if value in FALSE else value
    raise Invalid(
        f"must be false, true (mode=min) or max, got {shown(text)}",
        "Write false (the default), true or max.",
    )


def _url(text: str, inputs: _Inputs) -> str:
    if text and not re.fullmatch(r"https?://[^\s\x00-\x1f\x7f<>\"'`]{1,2000}", text):
        raise Invalid(
            f"must be an http:// or https:// address on one line, got {shown(text)}",
            "Write e.g. https://app.example.com, or leave it empty to find it from the manifests.",
        )
    return text


# The one event a preview comment can go to. pull_request_target is left out on purpose: its
# token can write even for a fork's pull request, and a step given it with the fork's manifests
# is the pattern GitHub's security guides warn about.
PR_COMMENT_EVENT = "pull_request"
GITHUB_API_DEFAULT = "https://api.github.com"
_EVENT_LIMIT = 64 * 1024 * 1024  # the runner's event file; far larger than any real one


@dataclass(frozen=True)
class PrComment:
    """Where the dry-run preview is posted: one comment on this pull request, kept up to date."""

    token: str = field(repr=False)
    api_url: str
    repository: str  # owner/name
    number: int
    read_only: bool  # a fork's pull request or Dependabot's: GitHub gives a read-only token


def _pr_comment(text: str, inputs: _Inputs) -> PrComment | None:
    """github-token: with dry-run on a pull_request event, post the preview there. Decided here,
    before anything is built: a token without dry-run, or outside a pull_request event, is a
    mistake (nothing would be posted), said in one line."""
    if not text:
        return None
    if not inputs.parsed.get("dry_run"):
        raise Invalid(
            "posts the dry-run preview on the pull request, and dry-run is not true",
            "Set dry-run: true on this step, or remove github-token.",
        )
    if not re.fullmatch(r"[\x21-\x7e]+", text):
        raise Invalid(
            "contains spaces, line breaks or non-ASCII characters",
            "Pass ${{ github.token }} (or one token) alone.",
        )
    env = inputs.env
    event = env.get("GITHUB_EVENT_NAME", "")
    if event != PR_COMMENT_EVENT:
        raise Invalid(
            f"posts the preview on a pull request, but this run is "
            f"{'a ' + shown(event) + ' event' if event else 'not a GitHub Actions event'}",
            "Run the dry run on: pull_request, or pass github-token only there "
            "(github-token: ${{ github.event_name == 'pull_request' && github.token || '' }}).",
        )
    repository = env.get("GITHUB_REPOSITORY", "")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise Invalid(
            f"needs GITHUB_REPOSITORY as owner/name, got {shown(repository) or 'nothing'}",
            "The runner sets it; set it as owner/name when running elsewhere.",
        )
    api_url = (env.get("GITHUB_API_URL") or GITHUB_API_DEFAULT).strip().rstrip("/")
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise Invalid(
            f"needs GITHUB_API_URL as an http(s) URL, got {shown(api_url)}",
            f"The runner sets it; leave it unset for {GITHUB_API_DEFAULT}.",
        )
    number, fork = _pull_request_event(env.get("GITHUB_EVENT_PATH", ""))
    read_only = fork or env.get("GITHUB_ACTOR", "") == "dependabot[bot]"
    return PrComment(text, api_url, repository, number, read_only)


def _pull_request_event(path: str) -> tuple[int, bool]:
    """The pull request's number and whether it comes from a fork, from the runner's event file."""
    hint = "The runner writes it for every job; outside Actions set GITHUB_EVENT_PATH to one."
    if not path:
        raise Invalid("needs the pull_request event, and GITHUB_EVENT_PATH is not set", hint)
    try:
        with open(path, "rb") as f:
            raw = f.read(_EVENT_LIMIT + 1)
    except OSError as exc:
        raise Invalid(
            f"cannot read the pull_request event at {shown(path)} ({exc.strerror or 'unreadable'})",
            hint,
        ) from None
    try:
        payload = json.loads(raw) if len(raw) <= _EVENT_LIMIT else None
    except ValueError:
        payload = None
    if payload is None:
        raise Invalid(f"the event at {shown(path)} is not a JSON object of a sane size", hint)
    pr = payload.get("pull_request") if isinstance(payload, dict) else None
    number = pr.get("number") if isinstance(pr, dict) else None
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise Invalid(f"the event at {shown(path)} names no pull request number", hint)
    assert isinstance(pr, dict)

    def full_name(side: str) -> object:
        repo = (pr.get(side) or {}).get("repo") if isinstance(pr.get(side), dict) else None
        return repo.get("full_name") if isinstance(repo, dict) else None

    head, base = full_name("head"), full_name("base")
    return number, head is None or head != base


# The action's inputs, in action.yml's order (the order they are parsed and their problems
# listed). action.yml is the user-facing copy; a unit test keeps the two in step.
INPUTS: tuple[InputSpec, ...] = (
    InputSpec("image", help="image repository without a tag", parse=_image),
    InputSpec(
        "sha",
        help="full commit SHA, the image tag",
        parse=_sha,
        unset="$GITHUB_SHA, else `git rev-parse HEAD`",
    ),
    InputSpec("digitalocean-token", secret=True, help="DigitalOcean API token", parse=_text),
    InputSpec("cluster", help="DigitalOcean Kubernetes cluster name or id", parse=_text),
    InputSpec(
        "kubeconfig", secret=True, help="kubeconfig text instead of DigitalOcean", parse=_kubeconfig
    ),
    InputSpec(
        "manifests",
        "deploy/deployment.yaml",
        "manifest files or globs, or a kustomization directory",
        parse=_manifests,
    ),
    InputSpec("placeholder", "<IMAGE>", "text replaced by the image reference", parse=_placeholder),
    InputSpec(
        "namespace",
        help="namespace for objects that name none",
        parse=_namespace,
        unset="what the manifests say, else default",
    ),
    InputSpec(
        "registry-username",
        help="registry user (its password: REGISTRY_PASSWORD)",
        parse=_text,
        unset="none; for registry.digitalocean.com short-lived credentials from the token",
    ),
    InputSpec("registry-password", secret=True, help="registry password", parse=_registry_password),
    InputSpec("context", ".", "docker build context", parse=_context),
    InputSpec("dockerfile", "Dockerfile", "Dockerfile, relative to the context", parse=_dockerfile),
    InputSpec("build-args", help="KEY=value lines", parse=_build_args_input, raw=True),
    InputSpec("target", help="build stage", parse=_text),
    InputSpec(
        "build-network",
        help="docker build --network (host to reach the local stack's registry)",
        parse=_text,
        unset="Docker's default",
    ),
    InputSpec("build", "auto", "auto, always or never", parse=_build),
    InputSpec(
        "provenance",
        "false",
        "provenance attestation: false, true (mode=min) or max",
        parse=_provenance,
    ),
    InputSpec("sbom", "false", "SBOM attestation (true or false)", parse=_flag),
    InputSpec(
        "build-cache",
        help="registry build cache reference, or false",
        parse=_build_cache_input,
        unset="<image>:buildcache",
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
    InputSpec(
        "secret-name", help="name of the Secret made from the secrets input", parse=_secret_name
    ),
    InputSpec(
        "wait-for",
        help="workloads to wait for: kind/name, or a Deployment's name",
        parse=_wait_for,
        unset="every Deployment, StatefulSet, DaemonSet and Job in the manifests",
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
    InputSpec(
        "rollback-on-failure",
        "false",
        "put the whole release back when the deploy fails, and wait for it",
        parse=_flag,
    ),
    InputSpec("pin-digest", "false", "render image@digest", parse=_flag),
    InputSpec("force-conflicts", "true", "take over fields owned by other managers", parse=_flag),
    InputSpec(
        "link-registry",
        "false",
        "integrate DOCR with the cluster (pull access)",
        parse=_link_registry,
    ),
    InputSpec(
        "registry-retention",
        help="DOCR: keep the N newest commit tags (and what runs); delete the rest",
        parse=_registry_retention,
    ),
    InputSpec(
        "registry-gc",
        "false",
        "DOCR: start a garbage collection after retention deleted tags",
        parse=_registry_gc,
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
    InputSpec(
        "run-first-timeout",
        help="time for the run-first Jobs (default: their activeDeadlineSeconds, else timeout)",
        parse=_optional_timeout,
        field="run_first_timeout_s",
    ),
    InputSpec(
        "apply",
        "true",
        "false: only watch workloads another tool applied (wait-for or selector)",
        parse=_apply,
    ),
    InputSpec("selector", help="with apply false: a label selector of workloads", parse=_selector),
    InputSpec("dry-run", "false", "preview: server-side dry-run apply and a diff", parse=_flag),
    InputSpec("url", help="the app's address for the url output (default: found)", parse=_url),
    InputSpec(
        "github-token",
        secret=True,
        help="with dry-run on a pull_request event: post the preview on the pull request",
        parse=_pr_comment,
        field="pr_comment",
    ),
    InputSpec(
        "prune",
        "false",
        "delete objects of the app's ApplySet the manifests no longer hold, once green",
        parse=_flag,
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
FLAGS = (_flag, _link_registry)  # the parsers of true/false inputs (a bare CLI flag is true)

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


def docr_host_from(env: Mapping[str, str]) -> str:
    """DOCR's host; DIGITALOCEAN_REGISTRY_HOST replaces it (a stand-in, as DIGITALOCEAN_API_URL)."""
    return (env.get("DIGITALOCEAN_REGISTRY_HOST") or DOCR_HOST).strip()


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
    inputs = _Inputs(raw, env, mask=mask, github=github, secrets_source=secrets_source)
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


def _refuse_deploy_inputs(raw: Mapping[str, str], inputs: _Inputs) -> None:
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
    if parser is _registry_retention:
        return 0
    if parser is _provenance:
        return "false"
    return False if parser in (_flag, _link_registry, _registry_gc) else ""


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
