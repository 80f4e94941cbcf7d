"""The Celery app for the worker and beat processes (broker from CELERY_BROKER_URL)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "antisocial.settings")

app = Celery("antisocial")
# Every CELERY_* Django setting configures Celery, so the broker comes from the same environment
# variables as the rest of the settings.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
