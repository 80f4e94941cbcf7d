"""What the registry holds with each `provenance`/`sbom` setting, on each Docker engine the
hosted runners run, through the action: Docker 28 (classic image store) cannot hold attestations
(a one-line warning, the image alone); Docker 29 (containerd store) pushes the image alone by
default, and with `provenance` an OCI index whose second manifest is the attestation
(platform unknown/unknown, `vnd.docker.reference.type: attestation-manifest`). `sbom: true` on
Docker 29 reaches BuildKit, which then pulls its scanner image from Docker Hub: unreachable here,
so that build fails naming it (on a runner it is pulled)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import requests

from tests.e2e.support import (
    MANIFEST_TYPES,
    stack_env,
    stack_inputs,
    web_deployment,
    workspace_with,
)
from tests.harness.runner import ActionRun, run_action

pytestmark = [pytest.mark.stack, pytest.mark.docker]


@pytest.fixture
def stack(engine_stack: dict[str, str]) -> dict[str, str]:
    return engine_stack


def manifest(stack: dict[str, str], repo: str, tag: str) -> tuple[str, dict[str, object]]:
    name = repo.split("/", 1)[1]
    answer = requests.get(
        f"http://{stack['DJK_REGISTRY']}/v2/{name}/manifests/{tag}",
        auth=(stack["DJK_REGISTRY_USER"], stack["DJK_REGISTRY_PASSWORD"]),
        headers={"Accept": MANIFEST_TYPES},
        timeout=30,
    )
    assert answer.status_code == 200, (tag, answer.status_code)
    return answer.headers["Content-Type"], json.loads(answer.content)


def test_the_registry_holds_what_provenance_and_sbom_ask_for(
    stack: dict[str, str], tmp_path: Path, namespace: str
) -> None:
    engine = stack["DJK_DOCKER_ENGINE"]
    repo = f"{stack['DJK_REGISTRY']}/djk-e2e/attest-{secrets.token_hex(4)}"
    workspace = workspace_with(
        tmp_path,
        web_deployment(),
        f"FROM {stack['DJK_BASE_IMAGE']}\nRUN echo {secrets.token_hex(4)} > /stamp\n",
    )

    def deploy(**inputs: str) -> tuple[ActionRun, str]:
        sha = secrets.token_hex(20)
        result = run_action(
            stack_inputs(stack, image=repo, sha=sha, namespace=namespace, **inputs),
            workspace,
            stack=stack,
            extra_env=stack_env(stack, sha),
        )
        return result, sha

    default, sha = deploy()
    assert default.exit_code == 0, default.visible_log[-3000:]
    media_type, body = manifest(stack, repo, sha)
    # The image alone: no index, nothing listed as unknown/unknown.
    assert "index" not in media_type and "list" not in media_type, media_type
    assert "attestations" not in default.log

    chosen, sha = deploy(provenance="max", **({"sbom": "true"} if engine == "28" else {}))
    assert chosen.exit_code == 0, chosen.visible_log[-3000:]
    media_type, body = manifest(stack, repo, sha)
    if engine == "28":
        assert "::warning title=No attestations::provenance (max) and SBOM attestations are " in (
            chosen.log
        )
        assert "classic image store cannot hold them" in chosen.log
        assert "index" not in media_type, media_type
    else:
        assert "attestations: provenance (max), pushed with the image" in chosen.log
        assert media_type == "application/vnd.oci.image.index.v1+json"
        manifests = body["manifests"]
        assert isinstance(manifests, list) and len(manifests) == 2
        attestation = manifests[1]
        assert attestation["platform"] == {"architecture": "unknown", "os": "unknown"}
        assert attestation["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
        assert (
            chosen.outputs["digest"]
            == requests.head(
                f"http://{stack['DJK_REGISTRY']}/v2/{repo.split('/', 1)[1]}/manifests/{sha}",
                auth=(stack["DJK_REGISTRY_USER"], stack["DJK_REGISTRY_PASSWORD"]),
                headers={"Accept": MANIFEST_TYPES},
                timeout=30,
            ).headers["Docker-Content-Digest"]
        )

        sbom, _ = deploy(sbom="true")
        assert sbom.exit_code == 2, sbom.visible_log[-3000:]
        assert "docker/buildkit-syft-scanner" in sbom.log
