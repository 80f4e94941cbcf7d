"""antisocial: a small Django app deployed by django-k8s-deploy."""

# Loading the Celery app with Django makes @shared_task bind to it in every process, so the worker
# and beat see the broker and schedule from settings.
from .celery import app as celery_app

__all__ = ["celery_app"]
