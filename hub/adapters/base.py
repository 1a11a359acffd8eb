"""Adapters: what an operation of a provider looks like on the wire.

An adapter declares its operations (:class:`Operation`) and turns one
operation plus its params into an :class:`OutboundRequest`, and a provider
response back into data. It never sends anything itself, never sees
credentials (``hub.calls.auth`` signs the request afterwards) and never touches the
database: the pipeline in ``hub.calls`` does all of that, the same way for every
adapter. Adding a provider means adding one module under ``hub/adapters/`` with
one :class:`Adapter` subclass.

What the pipeline asks of an adapter, in order (each has a default):

- :meth:`Adapter.exchange`: the requests of one operation. Most operations are one
  request (:meth:`Adapter.build_request`); an operation that needs several (a
  distance between two geocoded addresses, following pages) yields each request
  and receives the parsed answer of each, like httpx's ``Auth.auth_flow``.
- :meth:`Adapter.parse_error` for a non-2xx answer, :meth:`Adapter.parse_response`
  for a 2xx one. Both speak in :mod:`hub.platform.errors`: a provider that reports
  errors inside a 200 body (Google's ``status: OVER_QUERY_LIMIT``) raises the hub
  error it means from ``parse_response``, and the pipeline retries, fails over or
  fails exactly as it would for the equivalent HTTP status.
- Declarations: :attr:`Operation.provider_dedup` (the provider de-duplicates on the
  Idempotency-Key header: a lost answer may be re-sent), :attr:`Adapter.auth_defaults`
  (where the provider expects its key),
  :attr:`Adapter.default_limits` (quotas given to a new integration),
  :attr:`Operation.invalidates` (a write that makes cached reads stale),
  :attr:`Operation.pagination` (cursor pages the default exchange follows up to a
  limit the caller sets, :class:`Pagination`), :attr:`Operation.requires_idempotency_key`
  (a write refused without one), :attr:`Operation.alert_on_dead_letter` (a supervisor
  is told when it is dead-lettered), :meth:`Adapter.health_request` /
  :meth:`Adapter.health_error` (beat's probe).
- Bodies besides JSON: :class:`OutboundRequest` ``data`` (raw bytes), ``form`` (a
  form) and ``files`` (a multipart/form-data upload, RFC 7578).
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar
from urllib.parse import quote, unquote

from hub.adapters import transform
from hub.platform.errors import (
    HubError,
    UnknownOperation,
    UpstreamError,
    ValidationError,
)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_PLACEHOLDER = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class Pagination:
    """Cursor pagination of an operation's answer, followed by the default exchange.

    Each page is a JSON object: ``items`` (a JMESPath expression) selects its list,
    ``cursor`` (a JMESPath expression) the next page's cursor (null or empty on the
    last page). The next page is the same request with the cursor in the query
    parameter ``cursor_param``, which a caller may also pass to continue where an
    earlier answer stopped. The caller's param ``limit_param`` (default
    ``default_limit``, at most ``max_limit``) caps the items collected over all
    pages; each page asks for at most ``max_page_size`` in ``page_size_param``.

    The data is ``{"items": [...], "next_cursor": cursor or None, "pages": n}``
    (``next_cursor`` set when the provider has more than the limit), before the
    operation's ``response_map``.
    """

    items: str
    cursor: str
    cursor_param: str = "cursor"
    limit_param: str = "limit"
    page_size_param: str = "limit"
    default_limit: int = 10
    max_limit: int = 1000
    max_page_size: int = 100
    #: Never more requests than this for one call, whatever the provider answers.
    max_pages: int = 100

    def limit(self, params: Mapping[str, Any]) -> int:
        """The most items the caller wants, within [1, max_limit]. Raises
        ValidationError for a value that is not a whole number."""
        value = params.get(self.limit_param, self.default_limit)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{self.limit_param} must be a whole number")
        return max(1, min(value, self.max_limit))

    def page_query(self, wanted: int, cursor: Any) -> dict[str, Any]:
        """The query parameters asking for the next ``wanted`` items after ``cursor``."""
        query: dict[str, Any] = {self.page_size_param: min(wanted, self.max_page_size)}
        if cursor not in (None, ""):
            query[self.cursor_param] = cursor
        return query

    def items_of(self, page: Any) -> list[Any]:
        """The items of one page. Raises UpstreamError when the page has no list there."""
        items = transform.apply(self.items, page)
        if not isinstance(items, list):
            raise UpstreamError(f"a page of the provider's answer has no list at {self.items!r}")
        return items

    def cursor_of(self, page: Any) -> Any:
        """The next page's cursor in ``page``, or None on the last page."""
        cursor = transform.apply(self.cursor, page)
        return None if cursor in ("", False) else cursor


@dataclass(frozen=True)
class Operation:
    """One declared operation of an adapter.

    ``path`` is a template relative to the integration's base URL; its
    ``{placeholders}`` are filled from params of the same name (URL-quoted).
    Params named in ``query`` go to the query string; the rest (minus path
    params) form the JSON body of methods that carry one, unless ``body`` lists
    them explicitly (a path param listed there is sent in both places).
    ``request_map`` / ``response_map`` are JMESPath expressions applied to the JSON
    body and to the provider's JSON answer.

    ``invalidates`` names a param (e.g. ``spreadsheet_id``): after a successful
    call, the integration's cached answers whose params carry the same value of
    it are dropped, so a write is never followed by a stale cached read.
    """

    name: str
    method: str = "GET"
    path: str = "/"
    params_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    cacheable: bool = False
    cache_ttl: int = 0
    idempotent: bool | None = None
    query: tuple[str, ...] = ()
    body: tuple[str, ...] | None = None
    request_map: str | None = None
    response_map: str | Mapping[str, Any] | None = None
    description: str = ""
    invalidates: str | None = None
    pagination: Pagination | None = None
    #: A write that must never run twice: refused (VALIDATION_ERROR) without the
    #: caller's idempotency key.
    requires_idempotency_key: bool = False
    #: When its retries are exhausted, publish ``integration.supervisor.alert``
    #: besides the dead letter (seed 003: "notify supervisor").
    alert_on_dead_letter: bool = False
    #: The provider de-duplicates requests carrying the same ``Idempotency-Key``
    #: header (Stripe: a repeat gets the first request's answer; IETF draft
    #: "The Idempotency-Key HTTP Header Field"), so a write whose answer was lost may
    #: be sent again with its key. An integration can say so for any operation with
    #: ``config.provider_dedup`` (true, or a list of operation names).
    provider_dedup: bool = False

    @property
    def is_idempotent(self) -> bool:
        """Declared idempotency, else what the HTTP method promises (RFC 9110 §9.2.2)."""
        if self.idempotent is not None:
            return self.idempotent
        return self.method.upper() in IDEMPOTENT_METHODS

    def path_params(self) -> tuple[str, ...]:
        return tuple(_PLACEHOLDER.findall(self.path))


@dataclass(frozen=True)
class FilePart:
    """One file of a multipart/form-data body (RFC 7578 §4.2: filename, content type)."""

    filename: str
    content: bytes = field(repr=False)
    content_type: str = "application/octet-stream"


@dataclass
class OutboundRequest:
    """A provider request before authentication: plain data, no secrets yet.

    The body is at most one of: ``json``; ``data`` (raw bytes); ``form`` alone
    (application/x-www-form-urlencoded); ``files``, with ``form`` as its other fields
    (multipart/form-data). Whatever it is, it is signed as the exact bytes sent.
    """

    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: bytes | None = None
    form: dict[str, str] | None = None
    files: dict[str, FilePart] | None = None


#: What :meth:`Adapter.exchange` is: yields requests, is sent each parsed answer,
#: returns the operation's data.
Exchange = Generator[OutboundRequest, Any, Any]


@dataclass(frozen=True)
class IntegrationView:
    """What an adapter may know of an integration: no credentials, no session."""

    name: str
    base_url: str
    config: Mapping[str, Any]


def join_url(base_url: str, path: str) -> str:
    """``base_url`` + a relative ``path`` (which may end in a ``?query``).

    Raises ValidationError for a path that could reach anything outside the base
    URL's path: an absolute URL or ``//host``, a backslash, a fragment (``#`` is
    never sent, so what follows it would be dropped silently: encode it as
    ``%23``), or a ``.``/``..`` segment in any spelling a server may resolve.
    Servers percent-decode a path before removing dot segments (RFC 3986
    §5.2.4), some twice, and some drop ``;parameters`` from a segment first
    (``..;``), so segments are checked after two rounds of decoding.
    """
    if not path.startswith("/"):
        path = "/" + path
    route = path.split("?", 1)[0]
    decoded = unquote(unquote(route))
    if decoded.startswith("//") or "://" in decoded or "\\" in decoded or "#" in path \
            or _has_dot_segment(decoded):
        raise ValidationError(f"path {path!r} must stay under the integration's base URL")
    return base_url.rstrip("/") + path


def _has_dot_segment(path: str) -> bool:
    return any(segment.split(";", 1)[0] in (".", "..") for segment in path.split("/"))


class Adapter:
    """Base adapter: declarative operations, generic request building and parsing.

    Subclasses set :attr:`name` and :attr:`operations`, and override
    :meth:`build_request` / :meth:`parse_response` (or :meth:`exchange`,
    :meth:`parse_error`) only when the declaration is not enough.
    """

    name: ClassVar[str] = ""
    #: ``MAJOR.MINOR``: raise MINOR for a change old callers still fit (a new operation,
    #: a new optional param), MAJOR for one that can break them (see hub.adapters.versions).
    version: ClassVar[str] = "1.0"
    operations: ClassVar[tuple[Operation, ...]] = ()
    #: Path probed by :meth:`health_request` (relative to the base URL).
    health_path: ClassVar[str] = "/"
    #: Defaults of ``config["auth"]`` (e.g. an API key sent as the ``key`` query
    #: parameter); the integration's own ``config["auth"]`` overrides them key by key.
    auth_defaults: ClassVar[Mapping[str, Any]] = {}
    #: Quotas a new integration of this adapter gets when the operator sets none:
    #: ``per_minute``, ``per_hour``, ``per_day`` (the provider's documented limits).
    default_limits: ClassVar[Mapping[str, int]] = {}

    def operation(self, name: str) -> Operation:
        """The declared operation ``name``. Raises UnknownOperation (a NotFound)."""
        for op in self.operations:
            if op.name == name:
                return op
        raise UnknownOperation(f"adapter {self.name!r} has no operation {name!r}",
                       details={"operations": [o.name for o in self.operations]})

    def validate(self, op: Operation, params: Mapping[str, Any]) -> None:
        """Check ``params`` against the operation's JSON Schema (``hub.adapters.transform``).
        Raises ValidationError listing the problems, never secret values."""
        transform.validate(dict(params), op.params_schema,
                           what=f"params of {self.name}.{op.name}")

    def build_request(self, integration: IntegrationView, op: Operation,
                      params: Mapping[str, Any]) -> OutboundRequest:
        """Fill the path template, split params into query and body; a paginated
        operation asks for its first page (:class:`Pagination`)."""
        path_names = op.path_params()
        missing = [n for n in path_names if params.get(n) in (None, "")]
        if missing:
            raise ValidationError(f"missing path parameter(s): {', '.join(missing)}")
        path = _PLACEHOLDER.sub(lambda m: quote(str(params[m.group(1)]), safe=""), op.path)
        paging = op.pagination
        control = {paging.limit_param, paging.cursor_param} if paging else set()
        query = {k: params[k] for k in op.query if k in params and k not in control}
        if op.body is not None:
            rest = {k: params[k] for k in op.body if k in params}
        else:
            rest = {k: v for k, v in params.items()
                    if k not in path_names and k not in op.query and k not in control}
        body = rest if op.method.upper() not in ("GET", "HEAD", "DELETE") and rest else None
        if body is not None and op.request_map:
            body = transform.apply(op.request_map, body)
        if paging is not None:
            query.update(paging.page_query(paging.limit(params), params.get(paging.cursor_param)))
        return OutboundRequest(method=op.method.upper(),
                               url=join_url(integration.base_url, path),
                               params=query, json=body)

    def exchange(self, integration: IntegrationView, op: Operation,
                 params: Mapping[str, Any]) -> Exchange:
        """The requests of one call: yield each :class:`OutboundRequest`, receive its
        parsed answer (what :meth:`parse_response` returned), return the operation's
        data. The default is one request, :meth:`build_request`, whose answer is the
        data, or the pages of a paginated operation (:func:`follow_pages`). An
        operation answered without the provider yields nothing.

        The pipeline authenticates, sends and checks every request (a failure ends
        the exchange with the hub error) inside one breaker call. Raises what
        :meth:`build_request` raises.
        """
        first = self.build_request(integration, op, params)
        if op.pagination is not None:
            return (yield from follow_pages(op.pagination, params, first))
        data = yield first
        return data

    def parse_response(self, op: Operation, status: int, headers: Mapping[str, str],
                       content: bytes) -> Any:
        """A 2xx answer as data: JSON when it is JSON, else text (None if empty).

        A provider that reports failures inside a 2xx body overrides this and raises
        the hub error the body means (RateLimited, RetryableError, AuthError,
        UpstreamError, ValidationError from :mod:`hub.platform.errors`).
        """
        if not content:
            return None
        if "json" in headers.get("Content-Type", "").lower():
            try:
                return json.loads(content)
            except ValueError:
                pass
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(content)} bytes>"

    def parse_error(self, op: Operation, status: int, headers: Mapping[str, str],
                    content: bytes) -> HubError | None:
        """A more precise hub error for a non-2xx answer, or None for the hub's
        default mapping (401/403 AuthError, 429 RateLimited, 5xx RetryableError,
        other 4xx UpstreamError). Overridden by providers whose error bodies say more
        than their status (a 403 that means "quota spent"). A RetryableError without
        ``retry_after`` gets the answer's Retry-After."""
        return None

    def cache_ttl(self, op: Operation, config: Mapping[str, Any]) -> int:
        """Seconds a cacheable answer is kept: ``config.cache_ttl`` (a number, or an
        object by operation name) overrides the operation's declared TTL."""
        ttl = config.get("cache_ttl")
        if isinstance(ttl, Mapping):
            ttl = ttl.get(op.name)
        return max(int(ttl if ttl is not None else op.cache_ttl), 0)

    def health_request(self, integration: IntegrationView) -> OutboundRequest:
        """The request that tells whether the provider is reachable and accepts us."""
        path = str(integration.config.get("health_path", self.health_path))
        return OutboundRequest(method="GET", url=join_url(integration.base_url, path))

    def health_error(self, status: int, headers: Mapping[str, str],
                     content: bytes) -> str | None:
        """What is wrong with a health answer whose status looked fine (a provider
        that reports errors inside 2xx bodies), or None when it is healthy."""
        return None


def follow_pages(paging: Pagination, params: Mapping[str, Any],
                 first: OutboundRequest) -> Exchange:
    """Yield ``first``, then the request of each next page, until the provider has no
    more, the caller's limit is reached or ``paging.max_pages`` were asked for; return
    ``{"items", "next_cursor", "pages"}``. Raises UpstreamError for a page without its
    item list."""
    limit, items, pages, request = paging.limit(params), [], 0, first
    while True:
        page = yield request
        pages += 1
        items.extend(paging.items_of(page))
        cursor = paging.cursor_of(page)
        if cursor is None or len(items) >= limit or pages >= paging.max_pages:
            return {"items": items[:limit], "next_cursor": cursor, "pages": pages}
        request = replace(request, params={**request.params,
                                           **paging.page_query(limit - len(items), cursor)})


def json_body(content: bytes) -> Any:
    """``content`` parsed as JSON, or None when it is empty or not JSON (an error
    page from a proxy in front of the provider)."""
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None
