# The django-k8s-deploy action image. GitHub builds it from this file in "Set up job" and runs
# it with the workspace at /github/workspace and the runner's Docker socket mounted.
#
# Both images are build arguments so the local tests can build it without pulling anything:
#   DOCKER_BUILDKIT=0 docker build --network=host \
#     --build-arg BASE_IMAGE=djk/base:bookworm --build-arg DOCKER_CLI_IMAGE=djk/docker-cli:29 \
#     --build-arg KUSTOMIZE_IMAGE=djk/kustomize:v5.8.2 .
ARG BASE_IMAGE=python:3.12-slim
ARG DOCKER_CLI_IMAGE=docker.io/library/docker:29-cli
# kustomize builds a `manifests` directory that holds a kustomization. The version is pinned
# with scripts/build-binaries and deployer/manifests/kustomize.py (a unit test checks they agree).
ARG KUSTOMIZE_IMAGE=registry.k8s.io/kustomize/kustomize:v5.8.2

# Hosted runners run Docker Engine 29, which refuses clients older than API 1.44 (Docker 25):
# the distribution's docker CLI is far too old, so ship the upstream 29.x CLI and buildx.
FROM ${DOCKER_CLI_IMAGE} AS docker-cli

# kustomize's own image keeps its one static binary at /app/kustomize.
FROM ${KUSTOMIZE_IMAGE} AS kustomize

# The virtualenv is made in its own stage and copied whole: what the runner pulls in "Set up job"
# is only what runs. pip and setuptools (needed to install, not to run) stay behind, and so does
# kubernetes.aio, the client's 42 MB asyncio copy that nothing here imports
# (tests/unit/test_action_image_contents.py checks that).
FROM ${BASE_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Locked, hashed wheels only: the image gets exactly the reviewed dependencies, nothing built.
# setuptools is in the lock too, so installing the project itself needs no unpinned download.
COPY requirements.lock /tmp/requirements.lock
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps --only-binary=:all: -r /tmp/requirements.lock

# The release's version (`--version`, the first log line, User-Agent, the ApplySet's tooling):
# the release workflow passes vX.Y.Z; a build without it says v0.0.0-dev.
ARG VERSION=v0.0.0-dev
COPY pyproject.toml README.md /tmp/src/
COPY deployer /tmp/src/deployer
RUN case "$VERSION" in ""|*[!A-Za-z0-9.+-]*) echo "VERSION must be like v1.2.3, not '$VERSION'" >&2; exit 1;; esac \
    && printf 'VERSION = "%s"\n' "$VERSION" > /tmp/src/deployer/_release.py \
    && /opt/venv/bin/pip install --no-deps --no-build-isolation /tmp/src \
    && /opt/venv/bin/pip uninstall --yes setuptools pip \
    && rm -rf /opt/venv/lib/python3*/site-packages/kubernetes/aio

FROM ${BASE_IMAGE}

ARG VERSION=v0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="django-k8s-deploy" \
      org.opencontainers.image.description="Build, push and roll out a Django app to DigitalOcean Kubernetes, failing fast with the reason." \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

COPY --from=docker-cli /usr/local/bin/docker /usr/local/bin/docker
COPY --from=docker-cli /usr/local/libexec/docker/cli-plugins/docker-buildx /usr/local/libexec/docker/cli-plugins/docker-buildx
COPY --from=kustomize /app/kustomize /usr/local/bin/kustomize
COPY --from=venv /opt/venv /opt/venv
COPY entrypoint.py /app/entrypoint.py

# Exec form with absolute paths: the runner sets the workdir to /github/workspace and passes
# inputs as INPUT_* variables, never as arguments. No USER: the workspace and the Docker socket
# belong to root as far as the container can tell. -I: a PYTHONPATH or PYTHONHOME leaking in from
# the job's env cannot change what runs.
ENTRYPOINT ["/opt/venv/bin/python", "-I", "/app/entrypoint.py"]
