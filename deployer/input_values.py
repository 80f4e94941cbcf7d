"""Parsers of single values, shared by the action's inputs (`settings.INPUTS`) and the CLI.

Image repositories, durations, build args, the build cache reference, workload names, a `.env`
file and `deployer wait`'s flags: each turns one text into a typed value, or reports what is
wrong and what to do. None of them knows the INPUTS table or the other inputs; `settings`
combines them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from deployer import manifests
from deployer.errors import InputError
from deployer.manifests import shown

# Docker's reference grammar (distribution/reference), repository part only: no tag, no digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
REPOSITORY_RE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")
CLUSTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_BUILD_ARG_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")

# Longer than any GitHub-hosted job may run (6 h) and any DigitalOcean kubeconfig token lives.
MAX_TIMEOUT_S = 24 * 3600.0
# A placeholder is replaced wherever it occurs: it must be a token no manifest holds by chance.
PLACEHOLDER_RE = re.compile(
    r"^[^\s:#'\"\\{}\[\],&*!|%@`]{3,128}$|^\$\{[A-Za-z_][A-Za-z0-9_]{0,62}\}$"
    r"|^\{\{ ?[A-Za-z_][A-Za-z0-9_.]{0,62} ?\}\}$"
)

TRUE = {"true", "True", "TRUE"}
FALSE = {"false", "False", "FALSE"}

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


def split_workload(item: str) -> tuple[str | None, str]:
    """`kind/name` → (Kind, name), the kind None when it is not one we wait for; a plain name
    is a Deployment, as in every v1 release. The name is for the caller to check."""
    kind_text, _, name = item.rpartition("/")
    return (WAIT_KINDS.get(kind_text.lower()) if kind_text else "Deployment"), name


def is_cluster(value: str) -> bool:
    return bool(CLUSTER_RE.match(value))


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


def has_tag(image: str) -> bool:
    last = image.rsplit("/", 1)[-1]
    return ":" in last


def relative(path: Path, workspace: Path) -> str:
    try:
        return str(path.relative_to(workspace))
    except ValueError:
        return str(path)


DEFAULT_CACHE_TAG = "buildcache"


def build_cache(text: str, image: str, problem: Callable[[str, str, str], None]) -> str:
    """Empty input: `<image>:buildcache`, next to the image (same registry, same login)."""
    if text in FALSE:
        return ""
    if not text:
        return f"{image}:{DEFAULT_CACHE_TAG}" if image else ""
    repository, _, tag = text.rpartition(":")
    if "@" in text or not has_tag(text) or not REPOSITORY_RE.match(repository):
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


def build_args(text: str, problem: Callable[[str, str, str], None]) -> tuple[tuple[str, str], ...]:
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


@dataclass(frozen=True)
class WaitSettings:
    """`deployer wait`'s flags, checked before anything shows them (they are echoed in every
    progress line): how long, which workloads (Kind, name, the flag that named it), where."""

    timeout_s: float
    workloads: tuple[tuple[str, str, str], ...]
    namespace: str
    settle_s: float = 0.0


def parse_wait(
    *,
    timeout: str,
    deployments: Sequence[str],
    workloads: Sequence[str],
    namespace: str,
    settle: str = "0",
) -> WaitSettings:
    try:
        timeout_s = parse_duration(timeout)
    except ValueError as exc:
        raise InputError(
            str(exc), where="--timeout", hint="Write it like 90s, 10m or 1h30m."
        ) from exc
    try:
        settle_s = parse_settle(settle)
    except ValueError as exc:
        raise InputError(str(exc), where="--settle", hint="Write it like 10s, or 0.") from exc
    for name in deployments:
        if not manifests.is_name(name):
            raise InputError(
                f"{shown(name)} is not a Deployment name",
                where="--deployment",
                hint="Use lower-case letters, digits, '-' and '.'.",
            )
    wanted = [("Deployment", n, "--deployment") for n in deployments]
    for item in workloads:
        kind, name = split_workload(str(item))
        if "/" not in str(item) or kind is None or not manifests.is_name(name):
            raise InputError(
                f"{shown(item)} is not kind/name",
                where="--workload",
                hint="Write e.g. statefulset/db or job/migrate "
                "(kinds: deployment, statefulset, daemonset, job).",
            )
        wanted.append((kind, name, "--workload"))
    if not wanted:
        raise InputError(
            "nothing to wait for",
            where="--deployment",
            hint="Name at least one --deployment NAME or --workload KIND/NAME.",
        )
    if namespace and not manifests.is_namespace(namespace):
        raise InputError(
            f"{shown(namespace)} is not a namespace name",
            where="--namespace",
            hint="Use at most 63 lower-case letters, digits and '-'.",
        )
    return WaitSettings(timeout_s, tuple(wanted), namespace, settle_s)


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
