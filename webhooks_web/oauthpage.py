"""The page a person sees after granting (or refusing) access: plain HTML, or JSON
for a client that asks for it. Presentation only: what happened is decided by
``hub.calls.auth.connect``."""

from __future__ import annotations

import json
from html import escape

from flask import Response

from hub.calls.auth.connect import CallbackOutcome

# The callback URL carried a one-time code: never let it leak through a Referer,
# a cache, a frame or a script (there is nothing to run on this page).
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font-family:sans-serif;max-width:36em;margin:4em auto;padding:0 1em;
line-height:1.5}}h1{{font-size:1.4em}}</style></head>
<body><h1>{title}</h1><p>{message}</p><p>{next_step}</p></body>
</html>
"""


def render(outcome: CallbackOutcome, *, as_json: bool) -> Response:
    """The response for ``outcome``: its status, escaped HTML or JSON, strict headers."""
    if as_json:
        body, mimetype = json.dumps(outcome.as_json()), "application/json"
    else:
        body = _PAGE.format(title=escape(outcome.title), message=escape(outcome.message),
                            next_step=escape(outcome.next_step))
        mimetype = "text/html"
    return Response(body, status=outcome.status, mimetype=mimetype, headers=HEADERS)
