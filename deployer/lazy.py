"""Names a package exports but loads only when first asked for: what imports a heavy client
library (`kubernetes`, `requests`) is paid for when a run first uses it, not at start-up."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: each name in `where` comes from the module it maps
    to, imported the first time the name is asked for."""

    def load(attribute: str) -> Any:
        module = where.get(attribute)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {attribute!r}")
        return getattr(importlib.import_module(module), attribute)

    return load
