"""The /healthz endpoint for Kubernetes probes."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

HEALTH_PATH = "/healthz"


class HealthCheckMiddleware:
    """Answers /healthz before any other middleware runs.

    It must come first: kubelet probes send the pod IP as Host, which ALLOWED_HOSTS rightly rejects,
    and plain HTTP, which SECURE_SSL_REDIRECT would redirect. It touches no database, so a slow or
    migrating database never gets healthy web pods restarted by the liveness probe.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == HEALTH_PATH:
            return HttpResponse("ok\n", content_type="text/plain")
        return self.get_response(request)
