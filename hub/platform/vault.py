"""Credential encryption at rest: MultiFernet over HUB_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so keys can be rotated while workers
run: deploy the new key first in the list, then run ``hub keys rotate``.
Decryption fails closed: a secret that no key opens raises VaultError naming
the owner (never the value), because calling a provider without credentials
would only produce confusing 401s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hub.platform.config import Settings
from hub.platform.errors import VaultError
from hub.platform.models import Integration, Subscription, WebhookEndpoint

T = TypeVar("T")

#: Tables and columns that hold Fernet tokens, with how an owner is named in errors.
ENCRYPTED_COLUMNS: tuple[tuple[type[Any], str], ...] = (
    (Integration, "credentials"),
    (WebhookEndpoint, "secret"),
    (Subscription, "secret"),
)


class Secret(Generic[T]):
    """A value that must never be printed: repr and str show a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", id(self)))


def generate_key() -> str:
    """A new random Fernet key (url-safe base64, 32 bytes)."""
    return Fernet.generate_key().decode()


class Vault:
    """Encrypts and decrypts JSON-serialisable secrets."""

    def __init__(self, keys: tuple[str, ...] | list[str]) -> None:
        if not keys:
            raise VaultError("no encryption key configured (HUB_ENCRYPTION_KEYS)")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        return cls(settings.require_encryption_keys())

    def __repr__(self) -> str:
        return "<Vault>"

    def encrypt(self, value: Any) -> str:
        """Encrypt a JSON-serialisable value with the current key."""
        return self._fernet.encrypt(json.dumps(value, sort_keys=True).encode()).decode()

    def decrypt(self, token: str, *, owner: str) -> Any:
        """Decrypt a token made by :meth:`encrypt`.

        ``owner`` names what the secret belongs to (``integration acme/stripe``) for
        the error message. Raises VaultError when no configured key opens it.
        """
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise VaultError(
                f"cannot decrypt the secret of {owner}: none of the keys in "
                "HUB_ENCRYPTION_KEYS opens it (was a key removed before `hub keys rotate`?)"
            ) from None

    def rotate_token(self, token: str, *, owner: str) -> str:
        """Re-encrypt a token under the current key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise VaultError(f"cannot re-encrypt the secret of {owner}: no key opens it") from None


@dataclass
class RotationReport:
    rotated: dict[str, int]
    failed: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        return not any(self.failed.values())


def _owner(row: Any) -> str:
    table = row.__tablename__
    if isinstance(row, Integration):
        return f"integration {row.tenant_id}/{row.name}"
    return f"{table.rstrip('s')} {row.tenant_id}/{row.id}"


def _batches(factory: sessionmaker[Session], model: type[Any], column: str,
             batch_size: int) -> Iterator[tuple[Session, list[Any]]]:
    last_id = None
    while True:
        with factory() as session, session.begin():
            query = select(model).where(getattr(model, column).is_not(None))
            if last_id is not None:
                query = query.where(model.id > last_id)
            # SKIP LOCKED: a row a worker is updating right now is picked up by a
            # later run instead of blocking this one; the worker writes with the
            # current key anyway.
            rows = session.scalars(
                query.order_by(model.id).limit(batch_size).with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return
            last_id = rows[-1].id
            yield session, list(rows)


def rotate_all(factory: sessionmaker[Session], vault: Vault, *,
               batch_size: int = 200) -> RotationReport:
    """Re-encrypt every stored secret with the current key, one short transaction per batch.

    Safe while workers run: every key still decrypts, rows are locked only for
    their batch. Rows no key opens are reported, not changed.
    """
    report = RotationReport(rotated={}, failed={})
    for model, column in ENCRYPTED_COLUMNS:
        table = model.__tablename__
        report.rotated[table] = 0
        report.failed[table] = []
        for _session, rows in _batches(factory, model, column, batch_size):
            for row in rows:
                try:
                    setattr(row, column, vault.rotate_token(getattr(row, column),
                                                            owner=_owner(row)))
                    report.rotated[table] += 1
                except VaultError:
                    report.failed[table].append(_owner(row))
    return report
