"""The `secrets` input (env-file text, already parsed and masked by settings) as a Secret object."""

from __future__ import annotations

import base64
from typing import Any


def secret_manifest(
    name: str, namespace: str, pairs: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    """An Opaque Secret holding exactly these keys.

    `data` (base64) rather than `stringData`: stringData is write-only, so server-side apply could
    not drop a key the env file no longer has. With `data` our field manager owns each key, and a
    key removed from the env file is removed from the Secret on the next deploy.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "django-k8s-deploy"},
        },
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in pairs},
    }
