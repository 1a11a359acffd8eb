"""A tiny local HTTP server in a thread for tests of the outbound building blocks.

``serve(handler)`` runs ``handler(request) -> werkzeug Response`` on 127.0.0.1:0 and
records every request it saw (method, path, headers, body) in ``server.seen``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    form: dict[str, str]


@dataclass
class LocalServer:
    url: str
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, path: str | None = None) -> int:
        with self.lock:
            return sum(1 for s in self.seen if path is None or s.path == path)


@contextmanager
def serve(handler: Callable[[Request], Response],
          host: str = "127.0.0.1") -> Iterator[LocalServer]:
    state: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data()
        seen = Seen(request.method, request.path, dict(request.args), dict(request.headers),
                    body, dict(request.form))
        with state["server"].lock:
            state["server"].seen.append(seen)
        return handler(request)(environ, start_response)

    httpd = make_server(host, 0, app, threaded=True)
    server = LocalServer(url=f"http://{host}:{httpd.server_port}")
    state["server"] = server
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        thread.join(timeout=5)
