"""django-k8s-deploy: build, push, render, fetch a DigitalOcean kubeconfig, apply, watch."""

__version__ = "0.1.0"
