"""django-k8s-deploy: build, push, render, fetch a DigitalOcean kubeconfig, apply, watch."""

try:
    # The release's version, written by the action image's build (Dockerfile, build-arg VERSION).
    from deployer._release import VERSION as __version__  # type: ignore[import-not-found]
except ImportError:  # a source checkout: `python -m deployer` from a clone
    __version__ = "v0.0.0-dev"

__all__ = ["__version__"]
