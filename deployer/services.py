"""The outside services a deploy uses, as the pipeline sees them.

`deploy()` is handed a `Services` (cli.py builds the real one: docker CLI, DigitalOcean HTTP,
the Kubernetes API) so it can be tested whole against fakes, phase order and all. Each is
a factory: the pipeline opens a service when its phase starts and closes it when done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from deployer.diagnose import DiagnoseSource
from deployer.errors import ServiceError
from deployer.status import Collection
from deployer.watch import WatchSource

if TYPE_CHECKING:  # annotations only: naming a service's values loads none of its clients
    from deployer.digitalocean import DoksCluster, Kubeconfig
    from deployer.digitalocean.answers import GarbageCollection, RegistryTag
    from deployer.docker import BuildRequest
    from deployer.github_api import Comment
    from deployer.kube import Applied, Planned, Rejected, Rollback


class Builder(Protocol):
    """Docker: what build and push need (deployer.docker.Docker has it)."""

    def check_daemon(self) -> str: ...

    def login(self, registry: str, username: str, password: str) -> None: ...

    def exists(self, ref: str) -> bool: ...

    def build(self, request: BuildRequest, line: Callable[[str], None]) -> None: ...

    def push(self, ref: str, line: Callable[[str], None]) -> str: ...

    def remote_digest(self, ref: str) -> str: ...

    def buildkit(self) -> bool: ...

    def stores_attestations(self) -> bool: ...

    def without_buildkit(self) -> str: ...

    def cache_state(self, ref: str) -> str: ...

    def push_cache(self, ref: str, cache_ref: str) -> str: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class CloudApi(Protocol):
    """DigitalOcean: what credentials need (deployer.digitalocean.DigitalOcean has it)."""

    def find_cluster(self, name_or_id: str) -> DoksCluster: ...

    def kubeconfig(self, cluster_id: str, expiry_seconds: int) -> Kubeconfig: ...

    def registry_credentials(self, registry: str, expiry_seconds: int) -> tuple[str, str]: ...

    def registry_name(self) -> str: ...

    def link_registry(self, cluster_id: str) -> bool: ...

    def list_tags(self, registry: str, repository: str) -> list[RegistryTag]: ...

    def delete_tag(self, registry: str, repository: str, tag: str) -> None: ...

    def active_garbage_collection(self, registry: str) -> GarbageCollection | None: ...

    def start_garbage_collection(self, registry: str) -> GarbageCollection: ...

    def close(self) -> None: ...


class ClusterApi(WatchSource, DiagnoseSource, Protocol):
    """One cluster: what preflight, apply, watch, diagnosis and rollback need
    (deployer.kube.Cluster has it)."""

    def server_version(self) -> str: ...

    def exists(
        self, kind: str, name: str, namespace: str | None, *, api_version: str = "v1"
    ) -> bool: ...

    def missing_permissions(
        self,
        documents: Sequence[Mapping[str, Any]],
        also: Sequence[tuple[str, Mapping[str, Any]]] = ...,
    ) -> list[str]: ...

    def namespace_exists(self, name: str) -> bool | None: ...

    def pull_secrets(self, service_account: str, namespace: str) -> list[str] | None: ...

    def server_side_apply(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = ...,
        force_conflicts: bool,
        namespace: str = ...,
        on_applied: Callable[[Applied], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> list[Applied]: ...

    def dry_run(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = ...,
        namespace: str = ...,
        skip: frozenset[int] = ...,
    ) -> int: ...

    def undo_rollout(
        self, deployment_name: str, namespace: str, to_revision: str | None = None
    ) -> Rollback: ...

    def patch_object(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        patch: Mapping[str, Any],
        *,
        content_type: str = ...,
        field_manager: str = ...,
    ) -> dict[str, Any]: ...

    def preview(
        self,
        docs: Sequence[Mapping[str, Any]],
        *,
        field_manager: str = ...,
        force_conflicts: bool,
        namespace: str = ...,
        tolerate: Callable[[Rejected], bool] | None = ...,
    ) -> list[Planned]: ...

    def get_object(
        self, api_version: str, kind: str, name: str, namespace: str
    ) -> dict[str, Any] | None: ...

    def list_collection(
        self, collection: Collection, namespace: str, selector: Mapping[str, Any] | str | None
    ) -> tuple[list[dict[str, Any]], str]: ...

    def preferred_version(self, group: str) -> str | None: ...

    def list_labelled(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[dict[str, Any]]: ...

    def delete_object(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        *,
        propagation: str = ...,
        wait_s: float = ...,
    ) -> None: ...

    def close(self) -> None: ...


class CommentsApi(Protocol):
    """GitHub: a pull request's comments, for the preview comment
    (deployer.github_api.GitHubApi has it)."""

    def comments(self, repository: str, number: int) -> Iterator[Comment]: ...

    def create_comment(self, repository: str, number: int, body: str) -> Comment: ...

    def update_comment(self, repository: str, comment_id: int, body: str) -> Comment | None: ...

    def close(self) -> None: ...


def _no_github(token: str, api_url: str) -> CommentsApi:
    raise ServiceError("GitHub API", "this run was given no GitHub client")


@dataclass(frozen=True)
class Services:
    docker: Callable[[], Builder]
    digitalocean: Callable[[str, str], CloudApi]  # (token, api_url)
    cluster: Callable[[Mapping[str, Any]], ClusterApi]  # from a kubeconfig dict
    github: Callable[[str, str], CommentsApi] = _no_github  # (token, api_url)
