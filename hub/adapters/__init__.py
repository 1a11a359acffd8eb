"""The adapter registry: every module of this package is scanned for adapters.

Adding a provider means adding one module here that defines an
:class:`~hub.adapters.base.Adapter` subclass with a unique ``name``; nothing
else is registered by hand. Each operation is then callable through
``hub.call`` and as its own task ``hub.<adapter>.<operation>``.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from hub.adapters.base import Adapter, IntegrationView, Operation, OutboundRequest
from hub.platform.errors import ConfigError, NotFound

__all__ = ["Adapter", "IntegrationView", "Operation", "OutboundRequest", "get", "registry"]


@lru_cache(maxsize=1)
def registry() -> dict[str, Adapter]:
    """Every adapter of the package by name (modules imported once per process).

    Raises ConfigError when two adapters claim the same name.
    """
    found: dict[str, Adapter] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name == "base" or module.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{module.name}")
        for value in vars(mod).values():
            if (isinstance(value, type) and issubclass(value, Adapter)
                    and value.__module__ == mod.__name__ and value.name):
                if value.name in found:
                    raise ConfigError(f"two adapters are named {value.name!r}")
                found[value.name] = value()
    return found


def get(name: str) -> Adapter:
    """The adapter called ``name``. Raises NotFound listing the known ones."""
    try:
        return registry()[name]
    except KeyError:
        raise NotFound(f"no adapter named {name!r}",
                       details={"adapters": sorted(registry())}) from None


def task_names() -> dict[str, tuple[str, str]]:
    """``hub.<adapter>.<operation>`` -> (adapter, operation) for every declared operation."""
    return {f"hub.{a.name}.{op.name}": (a.name, op.name)
            for a in registry().values() for op in a.operations}
