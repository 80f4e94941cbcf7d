"""A kubeconfig given by the user (the `kubeconfig` input, `--kubeconfig`, KUBECONFIG): read as
hostile YAML, checked for the shape `kube.endpoint` reads, and its credentials named so that
exactly they are masked — not its structure (`apiVersion: v1`, `users:` …), which would turn every
later log line that happens to contain such text into `***`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from deployer import manifests
from deployer.errors import InputError

MAX_BYTES = 256 * 1024
_SERVER = re.compile(r"^https?://[^\s/?#]+(?:/[^\s]*)?$")
# Fields of users[].user that hold a credential (client-go's AuthInfo).
_USER_SECRETS = ("token", "client-key-data", "client-certificate-data", "password")
_AUTH_PROVIDER_SECRETS = ("id-token", "refresh-token", "client-secret", "access-token")
_HINT = "Pass the text of a kubeconfig file (kubectl config view --raw --minify)."


def load(text: str, where: str) -> dict[str, Any]:
    """The kubeconfig as a dict, or one InputError naming `where` (its text is never quoted)."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise InputError(f"is larger than {MAX_BYTES // 1024} KiB", where=where, hint=_HINT)
    try:
        documents = manifests.load_yaml(text)
    except (yaml.YAMLError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise InputError(f"is not valid YAML{at}", where=where, hint=_HINT) from None
    config = documents[0][1] if len(documents) == 1 else None
    if not isinstance(config, dict):
        raise InputError("is not a kubeconfig (not one YAML mapping)", where=where, hint=_HINT)
    for key in ("clusters", "users", "contexts"):
        entries = config.get(key)
        if entries is not None and (
            not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries)
        ):
            raise InputError(f"is not a kubeconfig ({key} is not a list of mappings)", where=where)
    clusters = config.get("clusters") or []
    if not clusters:
        raise InputError("is not a kubeconfig (no clusters)", where=where, hint=_HINT)
    for entry in clusters:
        cluster = entry.get("cluster")
        server = cluster.get("server") if isinstance(cluster, dict) else None
        if not isinstance(server, str) or len(server) > 2048 or not _SERVER.match(server):
            raise InputError(
                "has a cluster without a valid server URL (https://host:port)",
                where=where,
                hint=_HINT,
            )
    for entry in config.get("users") or []:
        if entry.get("user") is not None and not isinstance(entry.get("user"), dict):
            raise InputError("is not a kubeconfig (a user is not a mapping)", where=where)
    return config


def credentials(config: dict[str, Any]) -> list[str]:
    """Every credential in a loaded kubeconfig, for masking."""
    found: list[str] = []
    for entry in config.get("users") or []:
        user = entry.get("user") or {}
        found += [str(user[k]) for k in _USER_SECRETS if user.get(k)]
        provider = user.get("auth-provider")
        provider_config = provider.get("config") if isinstance(provider, dict) else None
        if isinstance(provider_config, dict):
            found += [
                str(provider_config[k]) for k in _AUTH_PROVIDER_SECRETS if provider_config.get(k)
            ]
        exec_config = user.get("exec")
        env = exec_config.get("env") if isinstance(exec_config, dict) else None
        for var in env if isinstance(env, list) else []:
            if isinstance(var, dict) and var.get("value"):
                found.append(str(var["value"]))
    return found


def mask_credentials(text: str, mask: Callable[[str], None]) -> None:
    """Mask the credentials of a kubeconfig text; one that does not parse is masked line by line
    (it is refused anyway, and nothing in it can be told apart)."""
    try:
        config = load(text, "kubeconfig")
    except InputError:
        mask(text.strip())
        return
    for secret in credentials(config):
        mask(secret)


def read_files(path: str | None, env: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """The kubeconfig file(s) the CLI's `wait` loads, each with its path, read here so that
    garbage is one line and exit 2: `path` (--kubeconfig), else KUBECONFIG's files (joined with
    os.pathsep; those that do not exist are skipped, as kubectl skips them), else ~/.kube/config."""
    if path:
        paths, where = [path], "--kubeconfig"
    elif env.get("KUBECONFIG"):
        paths, where = [p for p in env["KUBECONFIG"].split(os.pathsep) if p], "KUBECONFIG"
    else:
        paths, where = (
            [str(Path(env.get("HOME") or "~").expanduser() / ".kube" / "config")],
            "KUBECONFIG",
        )
    found: list[tuple[str, dict[str, Any]]] = []
    for candidate in dict.fromkeys(str(Path(p).expanduser()) for p in paths):
        if where == "KUBECONFIG" and not Path(candidate).exists():
            continue
        try:
            data = Path(candidate).read_bytes()[: MAX_BYTES + 1]
        except OSError as exc:
            raise InputError(
                f"cannot read {candidate}: {exc.strerror}", where=where, hint="Check the path."
            ) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{candidate} is not UTF-8 text", where=where, hint=_HINT) from None
        found.append((candidate, load(text, f"{where} {candidate}")))
    return found
