"""WSGI entry point for gunicorn (run.sh web)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "antisocial.settings")

application = get_wsgi_application()
