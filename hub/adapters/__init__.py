"""The adapter registry: the built-in modules of this package, then plugins.

Built-ins: every module of this package is scanned for
:class:`~hub.adapters.base.Adapter` subclasses with a ``name``, so adding a
provider means adding one module here and nothing else. Plugins: a package of
its own declares entry points in the group ``hub.adapters``, each naming an
Adapter subclass (or a module, scanned the same way)::

    # the plugin's pyproject.toml
    [project.entry-points."hub.adapters"]
    acme_crm = "acme_hub_crm:AcmeCrmAdapter"

Both end up in one registry: each operation is callable through ``hub.call``
and as its own task ``hub.<adapter>.<operation>`` in every process that has the
package installed (the worker reads the registry once, at start-up).

A plugin that fails to import is left out and logged (the other adapters keep
working; ``hub adapters list`` shows the failure); two adapters claiming one name
stop the process (ConfigError), since which one runs would be a guess.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from types import ModuleType
from typing import Any

from hub.adapters.base import Adapter, IntegrationView, Operation, OutboundRequest
from hub.platform.errors import ConfigError, NotFound

__all__ = ["Adapter", "IntegrationView", "Operation", "OutboundRequest", "get", "registry"]

log = logging.getLogger(__name__)

#: The entry point group third-party adapters register in.
ENTRY_POINT_GROUP = "hub.adapters"
BUILTIN = "builtin"


@dataclass(frozen=True)
class PluginProblem:
    """A plugin entry point that could not be loaded."""

    entry_point: str
    distribution: str | None
    error: str


@dataclass
class _Registry:
    adapters: dict[str, Adapter]
    sources: dict[str, str]
    problems: list[PluginProblem]


def _adapters_in(module: ModuleType) -> list[type[Adapter]]:
    return [value for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, Adapter)
            and value.__module__ == module.__name__ and value.name]


def _add(found: _Registry, adapter_class: type[Adapter], source: str) -> None:
    name = adapter_class.name
    if name in found.adapters:
        raise ConfigError(f"two adapters are named {name!r} ({found.sources[name]} and "
                          f"{source}); uninstall or rename one")
    found.adapters[name] = adapter_class()
    found.sources[name] = source


def _builtins(found: _Registry) -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name == "base" or module.name.startswith("_"):
            continue
        for adapter_class in _adapters_in(importlib.import_module(f"{__name__}.{module.name}")):
            _add(found, adapter_class, BUILTIN)


def _plugin_classes(entry_point: metadata.EntryPoint) -> list[type[Adapter]]:
    loaded: Any = entry_point.load()
    if isinstance(loaded, ModuleType):
        return _adapters_in(loaded)
    if isinstance(loaded, type) and issubclass(loaded, Adapter) and loaded.name:
        return [loaded]
    raise TypeError(f"{entry_point.value} is neither an Adapter subclass with a name "
                    "nor a module")


def _plugins(found: _Registry) -> None:
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist.name if entry_point.dist else None
        source = f"plugin {dist or '?'} ({entry_point.value})"
        try:
            classes = _plugin_classes(entry_point)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the others
            log.error("adapter plugin %s (%s) not loaded: %s: %s", entry_point.name, dist,
                      type(exc).__name__, exc)
            found.problems.append(PluginProblem(entry_point.name, dist,
                                                f"{type(exc).__name__}: {exc}"))
            continue
        for adapter_class in classes:
            _add(found, adapter_class, source)


@lru_cache(maxsize=1)
def _load() -> _Registry:
    found = _Registry({}, {}, [])
    _builtins(found)
    _plugins(found)
    return found


def registry() -> dict[str, Adapter]:
    """Every adapter by name: built-ins, then plugins (loaded once per process).

    Raises ConfigError when two adapters claim the same name.
    """
    return _load().adapters


def source_of(name: str) -> str:
    """Where adapter ``name`` comes from: ``builtin`` or ``plugin <distribution> (...)``
    (``registered`` for one added at run time)."""
    return _load().sources.get(name, "registered")


def plugin_problems() -> list[PluginProblem]:
    """Plugin entry points that failed to load in this process."""
    return list(_load().problems)


def reload() -> dict[str, Adapter]:
    """Scan built-ins and entry points again (after installing a plugin in a running
    process, e.g. a test); returns the new registry. Raises ConfigError."""
    _load.cache_clear()
    importlib.invalidate_caches()
    return registry()


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
