"""What every auth strategy is and what it is given.

A strategy authenticates one prepared request in place (:meth:`AuthStrategy.apply`,
called after the request is prepared, so signatures cover the exact bytes sent)
and forgets what it cached when the provider answered 401
(:meth:`AuthStrategy.invalidate`), so the pipeline can re-authenticate once and
retry once. Build one strategy per call (:func:`hub.calls.auth.strategy_for`): a
strategy remembers the token it applied, so invalidating never drops a newer
token another worker fetched meanwhile.

Settings of a strategy live in ``integration.config["auth"]``; secrets only in
the integration's encrypted credentials.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import redis
import requests
from sqlalchemy.orm import Session, sessionmaker

from hub.platform.config import Settings
from hub.platform.errors import AuthError, ValidationError
from hub.platform.vault import Secret, Vault


@dataclass(frozen=True)
class CredentialFields:
    """The credential keys an auth type reads. Each ``required`` group needs one of its
    names (``("token", "access_token")``: either); ``optional`` names may be given."""

    required: tuple[tuple[str, ...], ...] = ()
    optional: tuple[str, ...] = ()

    def names(self) -> set[str]:
        return {n for group in self.required for n in group} | set(self.optional)

    def __add__(self, other: CredentialFields) -> CredentialFields:
        return CredentialFields(self.required + other.required, self.optional + other.optional)

    def check(self, auth_type: str, keys: Iterable[str]) -> None:
        """Raise ValidationError naming unknown keys and missing ones (names only: the
        values are secrets)."""
        given = set(keys)
        unknown = sorted(given - self.names())
        missing = [" or ".join(g) for g in self.required if not given.intersection(g)]
        if unknown or missing:
            problems = ([f"unknown key(s) {', '.join(unknown)}"] if unknown else []) + (
                [f"missing {', '.join(missing)}"] if missing else [])
            raise ValidationError(
                f"credentials for auth type {auth_type!r}: {'; '.join(problems)} "
                f"(expected: {self.describe()})",
                details={"unknown": unknown, "missing": missing,
                         "expected": sorted(self.names())})

    def describe(self) -> str:
        parts = [" or ".join(g) for g in self.required] + [f"[{n}]" for n in self.optional]
        return ", ".join(parts) or "no credentials"


class AuthStrategy(Protocol):
    def apply(self, request: requests.PreparedRequest) -> None:
        """Add credentials to ``request`` in place. Raises AuthError, RetryableError."""

    def invalidate(self) -> None:
        """Drop cached credentials after a 401 (no-op for static credentials)."""


@dataclass(frozen=True)
class AuthContext:
    """Everything a strategy may use; built by :func:`hub.calls.auth.context_for`."""

    settings: Settings
    redis: redis.Redis
    vault: Vault
    http: requests.Session
    sessions: sessionmaker[Session] | None
    tenant: str
    integration_id: str
    integration_name: str
    base_url: str
    config: Mapping[str, Any]
    credentials: Secret[dict[str, Any]]

    @property
    def owner(self) -> str:
        return f"integration {self.tenant}/{self.integration_name}"

    def credential(self, *names: str) -> str:
        """The first credential present among ``names``. Raises AuthError naming the
        missing field (never a value)."""
        values = self.credentials.reveal()
        for name in names:
            if values.get(name):
                return str(values[name])
        raise AuthError(f"{self.owner} has no {' or '.join(names)} in its credentials "
                          "(set them with `hub credentials set`)")


class NoAuth:
    """auth_type ``none``."""

    credential_fields: ClassVar[CredentialFields] = CredentialFields()

    def __init__(self, ctx: AuthContext) -> None:
        self.ctx = ctx

    def apply(self, request: requests.PreparedRequest) -> None:
        """Leave the request as it is."""

    def invalidate(self) -> None:
        """Nothing cached."""
