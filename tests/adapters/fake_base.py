"""What the provider fakes of these tests share: a scripted fault, JSON answers, and
serving a fake on a local port under the path prefix of its API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from werkzeug.wrappers import Request, Response

from tests.hub.fake_http import LocalServer, serve


@dataclass
class Fault:
    """An answer instead of the real one: ``status`` (0: none, answer normally after
    ``delay``), a JSON ``body`` and ``headers``, after ``delay`` seconds."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def json_answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    content_type="application/json")


@dataclass
class Fake:
    """A provider served by :func:`serving`; its API lives under :attr:`prefix`."""

    server: LocalServer | None = None
    prefix: ClassVar[str] = ""

    @property
    def url(self) -> str:
        """The base URL an integration is registered with."""
        assert self.server is not None
        return self.server.url + self.prefix

    def hits(self, path: str) -> int:
        """Requests seen on ``path`` (relative to the prefix)."""
        assert self.server is not None
        return self.server.count(self.prefix + path)

    def handle(self, request: Request) -> Response:
        raise NotImplementedError


F = TypeVar("F", bound=Fake)


@contextmanager
def serving(fake: F) -> Iterator[F]:
    with serve(fake.handle) as server:
        fake.server = server
        yield fake
