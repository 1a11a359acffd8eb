"""Adapter versions: what an integration was created against, and whether it still fits.

An adapter declares a ``version`` (``MAJOR.MINOR``). When an integration is created
(or ``hub integrations upgrade`` accepts the installed adapter) it records that
version and a snapshot of every operation's param schema. :func:`check` compares
the snapshot with the installed adapter and lists the changes that would break
callers built against the snapshot: an operation removed, a param newly required,
a param no longer accepted, a type or an enum narrowed. The rule (README,
"Adapter versions"): such changes are flagged by ``hub integrations list`` and
``show`` (status ``breaking``) rather than refused at start-up, so one tenant's
stale integration never stops the workers serving everybody else; additions are
``compatible``. A breaking change also asks for a MAJOR version bump; a snapshot
whose schemas changed while the version stayed the same says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hub.adapters.base import Adapter

Status = Literal["current", "compatible", "breaking", "missing", "unrecorded"]


def snapshot(adapter: Adapter) -> dict[str, Any]:
    """Every operation's param schema, by operation name (what an integration records)."""
    return {op.name: dict(op.params_schema) for op in adapter.operations}


@dataclass(frozen=True)
class Compatibility:
    """How an integration's recorded adapter version compares with the installed one."""

    status: Status
    recorded: str | None
    installed: str | None
    problems: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "recorded": self.recorded,
                "installed": self.installed, "problems": list(self.problems),
                "summary": self.summary}

    @property
    def summary(self) -> str:
        """One cell for a table: ``current``, ``compatible 1.0->1.2``, ``BREAKING ...``."""
        if self.status in ("current", "missing", "unrecorded"):
            return self.status
        change = f"{self.recorded}->{self.installed}"
        if self.status == "compatible":
            return f"compatible {change}"
        return f"BREAKING {change}: {'; '.join(self.problems)}"


def check(adapter: Adapter | None, recorded_version: str | None,
          recorded_schemas: Mapping[str, Any] | None) -> Compatibility:
    """Compare what an integration recorded with the installed ``adapter`` (None when
    no adapter of that name is installed). Never raises."""
    installed = adapter.version if adapter is not None else None
    if adapter is None:
        return Compatibility("missing", recorded_version, None,
                             ("the adapter is not installed",))
    if recorded_version is None or recorded_schemas is None:
        return Compatibility("unrecorded", None, installed)
    current = snapshot(adapter)
    problems = tuple(breaking_changes(recorded_schemas, current))
    if problems:
        if _major(recorded_version) == _major(installed):
            bump = (f"version {installed} keeps major {_major(installed)}: "
                    "a breaking change needs a new major version")
            problems += (bump,)
        return Compatibility("breaking", recorded_version, installed, problems)
    if recorded_version == installed and dict(recorded_schemas) == current:
        return Compatibility("current", recorded_version, installed)
    return Compatibility("compatible", recorded_version, installed)


def _major(version: str | None) -> str:
    return (version or "").split(".", 1)[0]


def breaking_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[str]:
    """What in ``new`` (schemas by operation) refuses params ``old`` accepted."""
    for name, old_schema in old.items():
        if name not in new:
            yield f"operation {name!r} was removed"
            continue
        for problem in _object_changes(old_schema or {}, new[name] or {}):
            yield f"{name}: {problem}"


def _object_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[str]:
    old_props: Mapping[str, Any] = old.get("properties") or {}
    new_props: Mapping[str, Any] = new.get("properties") or {}
    newly_required = sorted(set(new.get("required") or ()) - set(old.get("required") or ()))
    for param in newly_required:
        yield f"param {param!r} is now required"
    closed = new.get("additionalProperties") is False
    if closed and old.get("additionalProperties") is not False:
        yield "params outside the schema are now refused"
    for param, old_prop in old_props.items():
        if param not in new_props:
            if closed:
                yield f"param {param!r} is no longer accepted"
            continue
        yield from (f"param {param!r} {problem}"
                    for problem in _value_changes(old_prop or {}, new_props[param] or {}))


def _value_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[str]:
    old_types, new_types = _types(old), _types(new)
    if new_types is not None and (old_types is None or not old_types <= new_types):
        lost = sorted((old_types or {"any"}) - new_types)
        yield f"no longer accepts type {', '.join(lost)}"
    if "enum" in new and "enum" not in old:
        yield f"now accepts only {list(new['enum'])}"
    elif "enum" in new:
        dropped = [v for v in old["enum"] if v not in new["enum"]]
        if dropped:
            yield f"no longer accepts {dropped}"


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    types = {kind} if isinstance(kind, str) else set(kind)
    if "number" in types:  # JSON Schema: every integer is a number
        types.add("integer")
    return types
