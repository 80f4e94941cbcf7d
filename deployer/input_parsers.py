"""Each action input's parser: text in, the Settings field out, or `Invalid` with a hint.

`settings.INPUTS` lists the inputs in action.yml's order, each with its parser from here; a
parser may look at the inputs parsed before it through `Inputs` (and report more than one
problem there). Problems are said in the words of whoever gave the inputs (`Inputs.problem`):
the action's input names or the CLI's flags. Nothing here reads the process environment: the
environment is handed in (`Inputs.env`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from deployer import envfile, manifests
from deployer.docr import HOST as DOCR_HOST
from deployer.errors import InputError
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
    parse_duration,
    parse_settle,
    relative,
    split_workload,
)
from deployer.manifests import inside_workspace, shown


class Invalid(Exception):
    """What is wrong with one input's text, and what to do: the input's name is added by
    `parse`, which collects every problem before it raises."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class Inputs:
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
        defaults: Mapping[str, str],
        speak: Callable[[InputError], InputError],
        name_of: Callable[[str], str],
    ) -> None:
        self.raw = raw
        self.defaults = defaults
        self._speak = speak
        self._name_of = name_of
        self.env = env
        self.mask = mask
        self.github = github
        self.secrets_source = secrets_source
        self.workspace = Path(env.get("GITHUB_WORKSPACE") or os.getcwd())
        self.parsed: dict[str, object] = {}
        self.problems: list[InputError] = []

    def problem(self, where: str, message: str, hint: str = "") -> None:
        """One problem, in the words of whoever gave the inputs (`spoken`)."""
        self.problems.append(self._speak(InputError(message, where=where, hint=hint)))

    def name(self, name: str) -> str:
        """The input as this user gives it (`named`): for text the CLI's words do not reach."""
        return self._name_of(name)

    def text(self, name: str) -> str:
        """The input as given (stripped), else its default."""
        got = self.raw.get(name, "").strip()
        return got or self.defaults[name]


Parser = Callable[[str, Inputs], object]


def text(text: str, inputs: Inputs) -> str:
    return text


def image(text: str, inputs: Inputs) -> str:
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


def sha(text: str, inputs: Inputs) -> str:
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


def kubeconfig(text: str, inputs: Inputs) -> str:
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


def manifest_files(text: str, inputs: Inputs) -> tuple[Path, ...]:
    return manifests.find_files(text, inputs.workspace, inputs.problem)


def placeholder(text: str, inputs: Inputs) -> str:
    if not PLACEHOLDER_RE.match(text) or text.isalnum():
        raise Invalid(
            f"{shown(text)} cannot be a placeholder",
            "Use 3-128 characters without blanks or YAML punctuation that no manifest holds by "
            "chance, e.g. <IMAGE> or ${IMAGE}.",
        )
    return text


def namespace(text: str, inputs: Inputs) -> str:
    if text and not DNS_LABEL_RE.match(text):
        raise Invalid(
            f"is not a valid namespace name: {text!r}",
            "Use at most 63 lower-case letters, digits and '-'.",
        )
    return text


def registry_password(text: str, inputs: Inputs) -> str:
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


def context(text: str, inputs: Inputs) -> Path:
    return inputs.workspace / text


def dockerfile(text: str, inputs: Inputs) -> Path:
    context = inputs.parsed["context"]
    assert isinstance(context, Path)
    return context / text


def build_args_lines(text: str, inputs: Inputs) -> tuple[tuple[str, str], ...]:
    return build_args(text, inputs.problem)


def build_mode(text: str, inputs: Inputs) -> str:
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


def build_cache_ref(text: str, inputs: Inputs) -> str:
    return build_cache(text, str(inputs.parsed["image"] or ""), inputs.problem)


def build_secrets(text: str, inputs: Inputs) -> tuple[tuple[str, str], ...]:
    source = inputs.name("build-secrets")
    return envfile.parse_env_file(text, source, inputs.problem, inputs.mask)


def secrets_env(text: str, inputs: Inputs) -> tuple[tuple[str, str], ...]:
    return envfile.parse_env_file(text, inputs.secrets_source, inputs.problem, inputs.mask)


def secret_name(text: str, inputs: Inputs) -> str:
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


def wait_for(text: str, inputs: Inputs) -> tuple[str, ...]:
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


def run_first(text: str, inputs: Inputs) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n for n in re.split(r"[\s,]+", text) if n))
    for name in names:
        if not manifests.is_name(name):
            inputs.problem(
                "run-first",
                f"{name!r} is not a valid Job name",
                "List Job names from the manifests (e.g. migrate), one per line or comma-separated.",
            )
    return names


def timeout(text: str, inputs: Inputs) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise Invalid(str(exc), "Write it like 90s, 10m or 1h30m.") from exc


def apply(text: str, inputs: Inputs) -> bool:
    applying = flag(text, inputs)
    if not applying and not (inputs.parsed.get("wait_for") or inputs.text("selector")):
        inputs.problem(
            "wait-for",
            "apply is false, so there is nothing to wait for unless it is named",
            "Name the workloads another tool applied, as kind/name in wait-for, or give selector.",
        )
    return applying


_SELECTOR_RE = re.compile(r"^[A-Za-z0-9._/=!,() -]{1,1000}$")


def selector(text: str, inputs: Inputs) -> str:
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


def optional_timeout(text: str, inputs: Inputs) -> float | None:
    return timeout(text, inputs) if text else None


def settle(text: str, inputs: Inputs) -> float:
    try:
        return parse_settle(text)
    except ValueError as exc:
        raise Invalid(
            str(exc), "Write it like 10s or 30s, or 0 to call a rollout green as kubectl does."
        ) from exc


def flag(text: str, inputs: Inputs) -> bool:
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise Invalid(f"must be true or false, got {text!r}", "Write true or false.")


def link_registry(text: str, inputs: Inputs) -> bool:
    link = flag(text, inputs)
    if link and (inputs.parsed["kubeconfig"] or not inputs.parsed["digitalocean_token"]):
        raise Invalid(
            f"needs the DigitalOcean API (digitalocean-token and {inputs.name('cluster')}), not "
            + ("a kubeconfig input" if inputs.github else "--kubeconfig"),
            f"Set digitalocean-token and {inputs.name('cluster')}, or integrate the registry once "
            "by hand.",
        )
    return link


def registry_retention(text: str, inputs: Inputs) -> int:
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


def registry_gc(text: str, inputs: Inputs) -> bool:
    gc = flag(text, inputs)
    if gc and not inputs.raw.get("registry-retention", "").strip():
        raise Invalid(
            "needs registry-retention (a garbage collection frees what retention deleted)",
            "Set registry-retention, or remove registry-gc.",
        )
    return gc


def provenance(text: str, inputs: Inputs) -> str:
    value = text.lower().removeprefix("mode=")
    if value in TRUE:
        return "min"
    if value in FALSE or value in ("min", "max"):
        return "false" if value in FALSE else value
    raise Invalid(
        f"must be false, true (mode=min) or max, got {shown(text)}",
        "Write false (the default), true or max.",
    )


def url(text: str, inputs: Inputs) -> str:
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


def pr_comment(text: str, inputs: Inputs) -> PrComment | None:
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


def docr_host_from(env: Mapping[str, str]) -> str:
    """DOCR's host; DIGITALOCEAN_REGISTRY_HOST replaces it (a stand-in, as DIGITALOCEAN_API_URL)."""
    return (env.get("DIGITALOCEAN_REGISTRY_HOST") or DOCR_HOST).strip()
