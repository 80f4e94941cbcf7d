"""What the end-to-end deploy tests share: a one-Deployment manifest, a workspace holding it,
and the inputs and env every deploy on the local stack gives the action."""

from __future__ import annotations

from pathlib import Path

# Every media type a registry may answer for a tag (the Accept header of a manifest request).
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


def web_deployment(replicas: int = 1) -> str:
    """A Deployment `web` whose one container runs the placeholder's image."""
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: <IMAGE>
"""


def workspace_with(tmp_path: Path, manifest: str, dockerfile: str | None = None) -> Path:
    """A repository checkout: deploy/deployment.yaml and, if given, a Dockerfile."""
    workspace = tmp_path / "workspace"
    (workspace / "deploy").mkdir(parents=True)
    (workspace / "deploy" / "deployment.yaml").write_text(manifest)
    if dockerfile is not None:
        (workspace / "Dockerfile").write_text(dockerfile)
    return workspace


def stack_inputs(
    stack: dict[str, str], *, image: str, sha: str, namespace: str, **inputs: str
) -> dict[str, str]:
    """The step's `with:` for a deploy to the stack's cluster and registry (`inputs` add or
    replace; timeout 2m, settle 2s and host networking for builds unless replaced)."""
    return {
        "image": image,
        "sha": sha,
        "digitalocean-token": stack["DIGITALOCEAN_ACCESS_TOKEN"],
        "cluster": stack["DJK_CLUSTER_NAME"],
        "namespace": namespace,
        "registry-username": stack["DJK_REGISTRY_USER"],
        "registry-password": stack["DJK_REGISTRY_PASSWORD"],
        "timeout": "2m",
        "build-network": "host",
        # kwok's crash loops end each run 0.3 s after it starts: a 2 s settle window judges them
        # as the default 10 s would, without adding 8 s to every green deploy of the suites.
        "settle": "2s",
        **inputs,
    }


def stack_env(stack: dict[str, str], sha: str) -> dict[str, str]:
    """The step's `env:`: the DigitalOcean stand-in's URL, and the commit as GITHUB_SHA."""
    return {"DIGITALOCEAN_API_URL": stack["DIGITALOCEAN_API_URL"], "GITHUB_SHA": sha}
