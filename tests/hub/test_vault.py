from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, select

from hub.calls import integrations
from hub.platform.errors import VaultError
from hub.platform.models import Integration
from hub.platform.vault import Secret, Vault, generate_key, rotate_all


@pytest.fixture
def foreign_keys(sessions, tenant):
    """The test writes its tenant's credentials under keys of its own: they are deleted
    after it, since `hub keys rotate` (tests/cli/test_keys_cli.py) exits 1 on any secret
    the session's key cannot open in the shared database, whichever test left it."""
    yield
    with sessions() as session, session.begin():
        session.execute(delete(Integration).where(Integration.tenant_id == tenant))


def _add(session, vault, tenant, name, secret):
    integrations.create(session, integrations.IntegrationSpec(
        tenant_id=tenant, name=name, adapter="rest", base_url="https://api.example.com",
        auth_type="api_key"))
    integrations.set_credentials(session, vault, tenant, name, {"api_key": secret})


def test_round_trip_and_ciphertext_hides_the_value():
    vault = Vault([generate_key()])

    token = vault.encrypt({"api_key": "sk_live_123"})

    assert "sk_live_123" not in token
    assert vault.decrypt(token, owner="x") == {"api_key": "sk_live_123"}


def test_secret_never_shows_in_repr_str_or_logs(caplog):
    secret = Secret({"api_key": "sk_live_123"})
    caplog.set_level(logging.INFO)

    logging.getLogger("test").info("credentials: %s %r", secret, secret)

    assert "sk_live_123" not in repr(secret) + str(secret) + caplog.text
    assert secret.reveal() == {"api_key": "sk_live_123"}


def test_wrong_key_names_the_integration_not_the_secret(sessions, tenant, foreign_keys):
    writer = Vault([generate_key()])
    reader = Vault([generate_key()])
    with sessions() as session, session.begin():
        _add(session, writer, tenant, "maps", "sk_live_123")
        row = integrations.get(session, tenant, "maps")

    with pytest.raises(VaultError) as info:
        integrations.credentials_of(reader, row)

    assert f"integration {tenant}/maps" in str(info.value)
    assert "sk_live_123" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_key_is_a_clear_error():
    with pytest.raises(VaultError, match="HUB_ENCRYPTION_KEYS"):
        Vault([])


def test_rotation_across_two_keys_with_live_rows(sessions, tenant, foreign_keys):
    old_key, new_key = generate_key(), generate_key()
    with sessions() as session, session.begin():
        for n in range(5):
            _add(session, Vault([old_key]), tenant, f"svc{n}", f"secret-{n}")

    report = rotate_all(sessions, Vault([new_key, old_key]), batch_size=2)

    # The session's database is shared: other tests left rows under other keys.
    assert report.rotated["integrations"] >= 5
    assert [o for o in report.failed["integrations"] if o.startswith(f"integration {tenant}/")] == []
    only_new = Vault([new_key])
    with sessions() as session:
        rows = session.scalars(select(Integration).where(Integration.tenant_id == tenant)).all()
        values = {r.name: integrations.credentials_of(only_new, r).reveal()["api_key"]
                  for r in rows}
    assert values == {f"svc{n}": f"secret-{n}" for n in range(5)}
    for row in rows:
        with pytest.raises(InvalidToken):
            Fernet(old_key).decrypt(row.credentials.encode())


def test_rotation_reports_rows_no_key_opens(sessions, tenant, foreign_keys):
    stray_key, current = generate_key(), generate_key()
    with sessions() as session, session.begin():
        _add(session, Vault([stray_key]), tenant, "orphan", "sk_orphan")

    report = rotate_all(sessions, Vault([current]))

    assert f"integration {tenant}/orphan" in report.failed["integrations"]
    assert not report.ok
