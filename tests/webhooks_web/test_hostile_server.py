"""Hostile clients against the real web process (gunicorn with webhooks_web/gunicorn.conf.py,
the Procfile's command): issue 9, items 10 (chunked bodies over the limit) and 11 (slow
clients)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.webhooks_web.gunicorn_proc import gunicorn
from tests.webhooks_web.test_receive import rows

pytestmark = pytest.mark.slow
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server(web_settings, tmp_path_factory) -> Iterator[str]:
    with gunicorn(web_settings.broker_url, tmp_path_factory.mktemp("metrics")) as base:
        yield base


def chunks(size: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    """``size`` bytes in pieces: requests sends an iterator with Transfer-Encoding:
    chunked and no Content-Length."""
    sent = 0
    while sent < size:
        n = min(piece, size - sent)
        yield b"x" * n
        sent += n


# -- item 10: over the limit is 413 with or without Content-Length ------------------------

def test_a_chunked_body_over_the_limit_is_413_and_nothing_is_stored(server, make_endpoint,
                                                                    sessions):
    created = make_endpoint(source="plain", scheme="none")
    url = f"{server}/api/v1/webhooks/plain/{created.token}"

    chunked = requests.post(url, data=chunks(MiB + MiB // 2), timeout=30)
    sized = requests.post(url, data=b"x" * (MiB + MiB // 2), timeout=30)

    assert (chunked.status_code, sized.status_code) == (413, 413)
    assert chunked.json()["error"]["code"] == sized.json()["error"]["code"]
    assert rows(sessions, created.id) == []


def test_a_chunked_body_of_exactly_the_limit_is_stored_whole(server, make_endpoint, sessions):
    created = make_endpoint(source="plain", scheme="none")

    response = requests.post(f"{server}/api/v1/webhooks/plain/{created.token}",
                             data=chunks(MiB), timeout=30)

    assert response.status_code == 202
    [row] = rows(sessions, created.id)
    assert len(row.body) == MiB
