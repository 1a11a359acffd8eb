"""A webhook request's body, read within a total deadline (``WEB_BODY_TIMEOUT``).

Under the default gevent workers a slow client holds only its own greenlet, but with
no deadline a body sent a byte a second was held for minutes and then accepted
(issue 9, item 11). Gunicorn bounds the request line and headers (``keepalive``);
this bounds the body: past ``WEB_BODY_TIMEOUT`` seconds from the start of its read the
request is answered 408, nothing is stored, and the connection is closed.

The deadline is a ``gevent.Timeout`` around the read, so it needs a worker whose
socket reads yield to gevent (gunicorn's gevent worker patches them). gthread and
sync workers read the body as before, without this deadline: they must run behind a
proxy that buffers whole requests (webhooks_web/gunicorn.conf.py).
"""

from __future__ import annotations

import logging
import os
import socket

from flask import Request
from werkzeug.exceptions import RequestTimeout

log = logging.getLogger(__name__)

#: Seconds a request body may take to arrive, whole, by default.
DEFAULT_BODY_TIMEOUT = 30.0


def body_timeout(environ: dict[str, str] | None = None) -> float:
    """``WEB_BODY_TIMEOUT`` in seconds (0 or less: no deadline)."""
    raw = (os.environ if environ is None else environ).get("WEB_BODY_TIMEOUT", "")
    try:
        return float(raw) if raw.strip() else DEFAULT_BODY_TIMEOUT
    except ValueError:
        raise ValueError(f"WEB_BODY_TIMEOUT is malformed: {raw!r} is no number of "
                         "seconds") from None


def _cooperative() -> bool:
    """Whether socket reads yield to gevent here (a gevent worker patched them)."""
    try:
        from gevent import monkey  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return bool(monkey.is_module_patched("socket"))


def read_body(request: Request, seconds: float) -> bytes:
    """The whole body of ``request``; raises RequestTimeout (408) when it has not
    arrived ``seconds`` after its read began (gevent workers only, see above)."""
    if seconds <= 0 or not _cooperative():
        return request.get_data(cache=False)
    import gevent

    deadline = gevent.Timeout(seconds)
    try:
        with deadline:
            return request.get_data(cache=False)
    except gevent.Timeout as expired:
        if expired is not deadline:
            raise
    log.warning("webhook body from %s not received within %.0fs: answered 408",
                request.remote_addr, seconds)
    _stop_reading(request)
    raise RequestTimeout(f"the request body did not arrive within {seconds:g} seconds")


def _stop_reading(request: Request) -> None:
    """Read no more of this connection: gunicorn would otherwise drain the rest of the
    slow body (for keep-alive) after answering, holding the greenlet for it. With its
    read side shut the drain ends at once and the connection is closed after the 408."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass  # already gone
