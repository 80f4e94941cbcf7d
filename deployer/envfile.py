"""The `secrets` input: env-file text parsed (values masked first) and made into a Secret object.

Every line of that text may be a secret, including the ones that are not valid: a mistyped line
is often a value pasted without its key. So nothing here ever quotes a line, a key or a value:
problems name the line number only.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from typing import Any

from dotenv.parser import parse_stream

# Secret data keys (Kubernetes IsConfigMapKey).
_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


def parse_env_file(
    text: str,
    source: str,
    problem: Callable[[str, str, str], None],
    mask: Callable[[str], None],
) -> tuple[tuple[str, str], ...]:
    """python-dotenv's syntax (no interpolation), stricter: a line without `=`, a key Kubernetes
    refuses and a key given twice are errors. Every value is masked before anything is reported."""
    if not text.strip():
        return ()
    bindings = list(parse_stream(io.StringIO(text)))
    for binding in bindings:
        if binding.value:
            mask(binding.value)
    pairs: list[tuple[str, str]] = []
    first_line: dict[str, int] = {}
    for binding in bindings:
        line = binding.original.line
        where = f"{source} line {line}"
        if binding.error and "=" not in binding.original.string:
            problem(where, "has no '=' (a KEY=value line was expected)", "Write KEY=value.")
            continue
        if binding.error:
            problem(
                where,
                "could not be parsed as KEY=value",
                "Quote values with spaces or '#', e.g. KEY=\"a value\".",
            )
            continue
        if binding.key is None:
            continue  # blank line or comment
        if binding.value is None:
            problem(where, "has no '=' (a KEY=value line was expected)", "Write KEY=value.")
            continue
        if not _KEY.match(binding.key):
            problem(
                where,
                "does not start with a valid Secret key",
                "Keys use letters, digits, '-', '_' and '.' only (the line is not shown: it may be "
                "a secret).",
            )
            continue
        if binding.key in first_line:
            problem(
                where,
                f"repeats the key of line {first_line[binding.key]}",
                "Give each key once; which value is meant is not clear.",
            )
            continue
        first_line[binding.key] = line
        pairs.append((binding.key, binding.value))
    return tuple(pairs)


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
