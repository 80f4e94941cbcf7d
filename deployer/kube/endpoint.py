"""Where one cluster is and how to prove who we are to it, read from kubeconfigs as kubectl reads
them. Light: it imports neither an HTTP library nor the `kubernetes` package.

Several kubeconfigs (KUBECONFIG's files, joined with os.pathsep) merge as kubectl merges them:
the first that names a cluster, user or context, or sets current-context, wins; a relative path
(certificate-authority, client-certificate, client-key, tokenFile) is relative to the file that
holds it. `--context` picks the context, else current-context; its namespace is the default one.

Credentials stay in memory here (a token, CA, certificate and key data); `kube.transport` puts a
client certificate and key given as data in the connection's private directory only as long as it
takes to load them. A user with `exec` (a credential plugin, e.g. doctl's `exec-credential`) or
`auth-provider` is left to the `kubernetes` package's loader, imported only then
(`client_loaded`), so those keep working exactly as before.
"""

from __future__ import annotations

import base64
import binascii
import copy
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A header value is visible ASCII: http.client would refuse anything else, quoting the value
# (the token) in its exception.
_HEADER_CHARS = re.compile(r"^[\x21-\x7e]+$")


class KubeconfigError(ValueError):
    """Why a kubeconfig cannot be used, in one line; never quotes a credential."""


def _no_authorization() -> str | None:
    return None


@dataclass(frozen=True)
class Endpoint:
    """What the transport needs to reach one cluster. `authorization` gives the Authorization
    header's value for each request (a plugin's token may be refreshed), None for none."""

    server: str
    namespace: str = "default"
    ca_data: bytes | None = field(default=None, repr=False)  # PEM or DER
    ca_file: str | None = None
    cert_data: bytes | None = field(default=None, repr=False)
    key_data: bytes | None = field(default=None, repr=False)
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    authorization: Callable[[], str | None] = field(default=_no_authorization, repr=False)


@dataclass(frozen=True)
class Source:
    """One kubeconfig as read: the file it came from ("" for one held in memory) and its
    content (a mapping already checked by `deployer.kubeconfig.load`, or the DigitalOcean API's)."""

    path: str
    config: Mapping[str, Any]


@dataclass(frozen=True)
class Chosen:
    """The context a connection uses: its cluster and user entries (each with the directory of
    the file that holds it) and its namespace."""

    context: str
    namespace: str
    cluster: Mapping[str, Any]
    cluster_dir: str
    user: Mapping[str, Any]
    user_dir: str

    @property
    def needs_client_loader(self) -> bool:
        """A credential plugin or an auth provider: the `kubernetes` package's loader runs it."""
        return "exec" in self.user or "auth-provider" in self.user


def choose(sources: Sequence[Source], context: str | None) -> Chosen:
    """The context `context` (else current-context) of the merged `sources`."""
    merged: dict[str, dict[str, tuple[Mapping[str, Any], str]]] = {
        "clusters": {},
        "users": {},
        "contexts": {},
    }
    if not sources:
        raise KubeconfigError("no such file")
    current = ""
    for source in sources:
        config = source.config
        if not isinstance(config, Mapping):
            raise KubeconfigError("it is not one YAML mapping")
        where = os.path.dirname(os.path.abspath(source.path)) if source.path else ""
        for key, entries in merged.items():
            listed = config.get(key) or []
            if not isinstance(listed, list):
                raise KubeconfigError(f"its {key} is not a list")
            for entry in listed:
                name = entry.get("name") if isinstance(entry, Mapping) else None
                if not isinstance(name, str):
                    raise KubeconfigError(f"an entry of its {key} has no name")
                entries.setdefault(name, (entry, where))
        named = config.get("current-context")
        if not current and isinstance(named, str):
            current = named
    name = context or current
    if not name:
        raise KubeconfigError("it sets no current-context; pass --context")
    if name not in merged["contexts"]:
        raise KubeconfigError(f'it has no context "{_shown(name)}"')
    entry, _ = merged["contexts"][name]
    body = _mapping(entry, "context", f'context "{_shown(name)}"')
    cluster_name = body.get("cluster")
    if not isinstance(cluster_name, str) or cluster_name not in merged["clusters"]:
        raise KubeconfigError(f'its context "{_shown(name)}" names no cluster it defines')
    cluster_entry, cluster_dir = merged["clusters"][cluster_name]
    user: Mapping[str, Any] = {}
    user_dir = ""
    user_name = body.get("user")
    if user_name:
        if not isinstance(user_name, str) or user_name not in merged["users"]:
            raise KubeconfigError(f'its context "{_shown(name)}" names a user it does not define')
        user_entry, user_dir = merged["users"][user_name]
        user = _mapping(user_entry, "user", f'user "{_shown(user_name)}"', optional=True)
    namespace = body.get("namespace")
    return Chosen(
        context=name,
        namespace=namespace if isinstance(namespace, str) and namespace else "default",
        cluster=_mapping(cluster_entry, "cluster", f'cluster "{_shown(cluster_name)}"'),
        cluster_dir=cluster_dir,
        user=user,
        user_dir=user_dir,
    )


def endpoint(chosen: Chosen) -> Endpoint:
    """The endpoint of a context whose user holds its credentials itself (token, tokenFile,
    username/password, client certificate)."""
    cluster, user = chosen.cluster, chosen.user
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise KubeconfigError("its cluster has no http(s) server URL")
    tls = server.startswith("https://")
    server_name = cluster.get("tls-server-name")
    return Endpoint(
        server=server.rstrip("/"),
        namespace=chosen.namespace,
        ca_data=_data(cluster, "certificate-authority-data") if tls else None,
        ca_file=_file(cluster, "certificate-authority", chosen.cluster_dir) if tls else None,
        cert_data=_data(user, "client-certificate-data") if tls else None,
        key_data=_data(user, "client-key-data") if tls else None,
        cert_file=_file(user, "client-certificate", chosen.user_dir) if tls else None,
        key_file=_file(user, "client-key", chosen.user_dir) if tls else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=server_name if isinstance(server_name, str) and server_name else None,
        authorization=_static(_user_authorization(user, chosen.user_dir)),
    )


def client_loaded(sources: Sequence[Source], chosen: Chosen, private_dir: str) -> Endpoint:
    """The endpoint as the `kubernetes` package's loader makes it, for a user with `exec` or
    `auth-provider`: it runs the plugin (again when its token expires) and writes what it needs
    as files into `private_dir`."""
    from kubernetes.client import Configuration
    from kubernetes.config import kube_config
    from kubernetes.config.config_exception import ConfigException

    configuration = Configuration()
    try:
        if all(source.path for source in sources):
            kube_config.load_kube_config(
                config_file=os.pathsep.join(source.path for source in sources),
                context=chosen.context,
                client_configuration=configuration,
                persist_config=False,
                temp_file_path=private_dir,
            )
        else:
            kube_config.KubeConfigLoader(
                config_dict=copy.deepcopy(dict(sources[0].config)),
                active_context=chosen.context,
                temp_file_path=private_dir,
            ).load_and_set(configuration)
    except (ConfigException, OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise KubeconfigError(" ".join(str(exc).split())) from exc
    lock = threading.Lock()

    def authorization() -> str | None:
        # As the client's ApiClient does before each request: the hook runs the plugin again
        # when the token it gave has expired.
        with lock:
            hook = configuration.refresh_api_key_hook
            if hook is not None:
                hook(configuration)
            value = configuration.api_key.get("BearerToken")
        return str(value) if value else None

    return Endpoint(
        server=str(configuration.host).rstrip("/"),
        namespace=chosen.namespace,
        ca_file=configuration.ssl_ca_cert,
        cert_file=configuration.cert_file,
        key_file=configuration.key_file,
        insecure=not configuration.verify_ssl,
        tls_server_name=configuration.tls_server_name or None,
        authorization=authorization,
    )


# --- helpers --------------------------------------------------------------------------------


def _static(value: str | None) -> Callable[[], str | None]:
    def authorization() -> str | None:
        return value

    return authorization


def _user_authorization(user: Mapping[str, Any], base: str) -> str | None:
    """`Bearer <token>` (token before tokenFile, as both kubectl and the client read them), else
    basic auth from username/password, else None."""
    token = user.get("token")
    if not token and user.get("tokenFile"):
        path = _file(user, "tokenFile", base)
        try:
            token = Path(str(path)).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise KubeconfigError(f"cannot read its tokenFile {path}") from exc
    if token:
        if not isinstance(token, str) or not _HEADER_CHARS.match(token):
            raise KubeconfigError(
                "its user's token contains spaces, line breaks or non-ASCII characters"
            )
        return f"Bearer {token}"
    username, password = user.get("username"), user.get("password")
    if username and password:
        pair = f"{username}:{password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")
    return None


def _data(entry: Mapping[str, Any], key: str) -> bytes | None:
    value = entry.get(key)
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise KubeconfigError(f"its {key} is not base64") from exc


def _file(entry: Mapping[str, Any], key: str, base: str) -> str | None:
    """The file named by `key`, relative to `base`, unless the entry holds the data itself."""
    value = entry.get(key)
    if not value or entry.get(f"{key}-data"):
        return None
    path = os.path.normpath(os.path.join(base, os.path.expanduser(str(value))))
    if not os.path.isfile(path):
        raise KubeconfigError(f"its {key} {path} does not exist")
    return path


def _mapping(
    entry: Mapping[str, Any], key: str, what: str, *, optional: bool = False
) -> Mapping[str, Any]:
    value = entry.get(key)
    if value is None and optional:
        return {}
    if not isinstance(value, Mapping):
        raise KubeconfigError(f"its {what} is not a mapping")
    return value


def _shown(name: str) -> str:
    text = " ".join(name.split())
    return text if len(text) <= 80 else text[:79] + "…"
