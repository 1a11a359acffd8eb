"""Fixtures of the call pipeline tests: a fake provider and integrations pointing at it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from hub.calls import integrations
from hub.calls.integrations import IntegrationSpec
from hub.platform.models import Integration
from hub.platform.services import Services
from tests.calls.fake_geo import (
    FakeGoogleMaps,
    FakeYandex,
    fake_google_maps,
    fake_yandex,
)
from tests.calls.fake_google import FakeGoogle, fake_google
from tests.calls.fake_provider import FakeProvider, fake_provider


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with fake_provider() as p:
        yield p


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    """Google's token endpoint and Sheets API v4."""
    with fake_google() as fake:
        yield fake


@pytest.fixture
def google_maps() -> Iterator[FakeGoogleMaps]:
    with fake_google_maps() as fake:
        yield fake


@pytest.fixture
def yandex() -> Iterator[FakeYandex]:
    with fake_yandex() as fake:
        yield fake


MakeIntegration = Callable[..., Integration]


@pytest.fixture
def make_integration(sessions: sessionmaker[Session], services: Services, tenant: str,
                     provider: FakeProvider) -> MakeIntegration:
    """Create an integration of ``tenant`` (default: api_key auth on the fake provider)."""

    def make(name: str | None = None, *, auth_type: str = "api_key",
             credentials: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
             base_url: str | None = None, **spec: Any) -> Integration:
        name = name or f"int-{uuid.uuid4().hex[:6]}"
        config = {"retry": {"base": 0.01, "cap": 0.05, "max_attempts": 3}, **(config or {})}
        with sessions() as session, session.begin():
            row = integrations.create(session, IntegrationSpec(
                tenant_id=tenant, name=name, adapter=spec.pop("adapter", "rest"),
                base_url=base_url or provider.url, auth_type=auth_type, config=config,
                cost_per_call=spec.pop("cost_per_call", Decimal("0.002")), **spec))
            if credentials is None and auth_type == "api_key":
                credentials = {"api_key": provider.api_key}
            if credentials:
                integrations.set_credentials(session, services.vault, tenant, name,
                                             credentials)
        return row

    return make
