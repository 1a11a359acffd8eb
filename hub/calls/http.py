"""Outbound HTTP: pooled sessions, timeouts, a response size limit and the SSRF guard.

Every outbound request of the hub (provider calls, token endpoints, webhook
deliveries) goes through a session from :func:`session_for` and is sent with
:func:`send`::

    session = session_for(str(integration.id), settings)
    prepared = session.prepare_request(requests.Request("GET", url, params=...))
    response = send(session, prepared, settings)      # raises only HubErrors

The SSRF guard lives in the connection itself: the host is resolved once, every
address it resolves to is checked, and the socket connects to the checked
address, so a DNS answer that changes between a check and the connect (DNS
rebinding) cannot slip a private address through. Redirects go through the
same connections and are therefore checked too. ``HUB_ALLOW_PRIVATE_NETWORKS``
switches the guard off (tests and local development).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.util import connection as u3connection

from hub.platform.config import Settings
from hub.platform.errors import (
    ResponseTooLarge,
    RetryableError,
    SSRFRefused,
    TimeoutError_,
    UpstreamError,
    ValidationError,
)
from hub.platform.redaction import MASK, is_sensitive_name, redact_text, redact_url

#: Sessions kept per process; the least recently used is dropped beyond this.
MAX_SESSIONS = 256
#: Connections kept alive per host in one session, at least. A threads worker keeps up
#: to twice ``settings.worker_concurrency`` requests to one host in flight (its task
#: threads, and as many delivery senders posting a batch), and a smaller pool would
#: open and discard a connection for each one over it.
POOL_MAXSIZE = 10
MAX_REDIRECTS = 5
CHUNK_SIZE = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# --- address checks ---------------------------------------------------------------

def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # IPv4 reachable through an IPv6 address: mapped (::ffff:a.b.c.d), 6to4, Teredo, NAT64.
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_forbidden_address(address: str | IPAddress) -> bool:
    """True for any address that is not globally routable unicast: private,
    loopback, link-local, multicast, reserved, unspecified, shared (CGNAT), and
    IPv6 addresses embedding such an IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None and is_forbidden_address(inner):
            return True
    return (not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified
            or ip.is_loopback or ip.is_link_local or ip.is_private)


def resolve_checked(host: str, port: int) -> list[str]:
    """Resolve ``host`` and return its addresses, all of them allowed.

    Raises SSRFRefused when ANY address is forbidden (a name mixing public and
    private answers is a rebinding trick, not a real provider), and lets
    ``socket.gaierror`` through when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        if is_forbidden_address(address):
            raise SSRFRefused(
                f"refusing to connect to {host}: it resolves to {address}, a private, "
                "loopback, link-local or reserved address (set HUB_ALLOW_PRIVATE_NETWORKS "
                "to allow it)", details={"host": host})
    return addresses


def check_url(url: str, settings: Settings) -> None:
    """Validate an outbound URL before use (friendly early error).

    Raises ValidationError for a non-http(s) or host-less URL, SSRFRefused when
    the host resolves to a forbidden address (unless settings allow private
    networks), RetryableError when the name does not resolve right now. The
    connection-level guard of :func:`session_for` re-checks at connect time.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"not an absolute http(s) URL: {redact_url(url)}")
    if settings.allow_private_networks:
        return
    try:
        resolve_checked(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise RetryableError(f"cannot resolve {parts.hostname}: {exc.strerror}") from exc


# --- guarded connections ----------------------------------------------------------

class _GuardedConnectionMixin:
    """Connects only to checked addresses (replaces urllib3's ``_new_conn``)."""

    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any
    _dns_host: str

    def _new_conn(self) -> socket.socket:
        try:
            addresses = resolve_checked(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        last: OSError | None = None
        for address in addresses:
            try:
                return u3connection.create_connection(
                    (address, self.port), self.timeout, source_address=self.source_address,
                    socket_options=self.socket_options)
            except TimeoutError as exc:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out") from exc
            except OSError as exc:
                last = exc
        raise NewConnectionError(self,  # type: ignore[arg-type]
                                 f"Failed to establish a new connection: {last}")


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every connection goes through the SSRF guard."""

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        # A proxy would connect somewhere we never checked.
        raise SSRFRefused("outbound proxies are not supported with the SSRF guard on")


# --- sessions ---------------------------------------------------------------------

_sessions: OrderedDict[tuple[str, bool], requests.Session] = OrderedDict()
_sessions_lock = threading.Lock()


def new_session(settings: Settings) -> requests.Session:
    """A fresh session with the guard mounted (unless private networks are allowed),
    no environment proxies or .netrc, and a bounded redirect count."""
    session = requests.Session()
    session.trust_env = False  # env proxies and .netrc would bypass the guard / leak creds
    session.max_redirects = MAX_REDIRECTS
    adapter_cls = HTTPAdapter if settings.allow_private_networks else GuardedAdapter
    for prefix in ("http://", "https://"):
        session.mount(prefix, adapter_cls(
            pool_connections=4, pool_maxsize=max(POOL_MAXSIZE, 2 * settings.worker_concurrency)))
    return session


def session_for(key: str, settings: Settings) -> requests.Session:
    """The pooled session of ``key`` (an integration id, a subscription id...).

    Sessions are cached per process (threads share them; requests sessions are
    safe for concurrent ``send`` of prepared requests), at most
    :data:`MAX_SESSIONS`, least recently used dropped first.
    """
    cache_key = (key, settings.allow_private_networks)
    with _sessions_lock:
        session = _sessions.get(cache_key)
        if session is None:
            session = _sessions[cache_key] = new_session(settings)
            while len(_sessions) > MAX_SESSIONS:
                # Not closed: another thread may still be using it; GC closes its sockets.
                _sessions.popitem(last=False)
        else:
            _sessions.move_to_end(cache_key)
        return session


def drop_session(key: str) -> None:
    """Forget the cached sessions of ``key`` (e.g. after its base URL changed)."""
    with _sessions_lock:
        for allow in (False, True):
            _sessions.pop((key, allow), None)


# --- sending ----------------------------------------------------------------------

def timeouts(settings: Settings, timeout: float | None = None) -> tuple[float, float]:
    """(connect, read) timeouts; ``timeout`` (a caller's limit) caps both."""
    connect, read = settings.http_connect_timeout, settings.http_read_timeout
    if timeout is not None:
        connect, read = min(connect, timeout), min(read, timeout)
    return connect, read


def send(session: requests.Session, request: requests.PreparedRequest | requests.Request,
         settings: Settings, *, timeout: float | None = None,
         allow_redirects: bool = True, secrets: Iterable[str] = ()) -> requests.Response:
    """Send ``request`` and return the response with its body fully read.

    ``secrets`` are credential values the request carries: they are masked in the
    errors raised and in urllib3's log lines written while sending (a key under a
    query parameter name no redaction rule recognises, e.g. ``appid``).

    The body is read in chunks and reading stops past
    ``settings.http_max_response_bytes``. This is the one boundary where requests'
    exceptions become hub errors:

    - SSRFRefused: the destination (or a redirect) resolves to a forbidden address
    - TimeoutError_: connect or read timeout, or the whole response took longer than
      ``settings.http_response_timeout`` (retryable)
    - RetryableError: connection refused/reset, DNS failure, broken response
    - UpstreamError: TLS certificate verification failed (not retryable)
    - ResponseTooLarge: body over the limit (not retryable)
    - ValidationError: malformed URL, too many redirects
    """
    prepared = session.prepare_request(request) if isinstance(request, requests.Request) \
        else request
    token = _SENDING_SECRETS.set(tuple(secrets))
    try:
        return _send(session, prepared, settings, timeout, allow_redirects)
    finally:
        _SENDING_SECRETS.reset(token)


def _send(session: requests.Session, prepared: requests.PreparedRequest, settings: Settings,
          timeout: float | None, allow_redirects: bool) -> requests.Response:
    where = redact_url(prepared.url, _SENDING_SECRETS.get())
    deadline = time.monotonic() + settings.http_response_timeout
    try:
        response = session.send(prepared, stream=True, timeout=timeouts(settings, timeout),
                                allow_redirects=allow_redirects)
        _read_limited(response, settings.http_max_response_bytes, where, deadline)
    except requests.Timeout as exc:
        raise TimeoutError_(f"{prepared.method} {where} timed out",
                            details={"url": where}) from exc
    except requests.exceptions.SSLError as exc:
        # A certificate that does not verify will not verify on a retry either.
        raise UpstreamError(f"{prepared.method} {where}: TLS verification failed",
                            details={"url": where}) from exc
    except requests.TooManyRedirects as exc:
        raise ValidationError(f"{prepared.method} {where}: more than {MAX_REDIRECTS} "
                              "redirects") from exc
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema) as exc:
        raise ValidationError(f"invalid URL {where}") from exc
    except requests.RequestException as exc:
        raise RetryableError(f"{prepared.method} {where} failed: {type(exc).__name__}",
                             details={"url": where}) from exc
    return response


def never_left(exc: BaseException) -> bool:
    """True when ``exc``, raised by :func:`send`, shows its request never reached the
    provider: refused before connecting (SSRF guard, bad URL), or the connection
    could not be made (refused, unresolvable, connect timeout). Anything else
    (a read timeout, a connection broken mid-exchange) may have come after the
    provider received it."""
    if isinstance(exc, ValidationError):
        return True
    cause = exc.__cause__
    if isinstance(cause, requests.ConnectTimeout):
        return True
    if isinstance(cause, requests.ConnectionError) and cause.args:
        return isinstance(getattr(cause.args[0], "reason", None), NewConnectionError)
    return False


def _read_limited(response: requests.Response, limit: int, where: str | None,
                  deadline: float) -> None:
    # The read timeout bounds each silence, not the whole body: a provider sending a
    # byte every few seconds would keep the call (and its worker thread) forever.
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise ResponseTooLarge(f"response of {where} declares {declared} bytes, "
                               f"over the {limit}-byte limit")
    body = bytearray()
    try:
        for chunk in response.iter_content(CHUNK_SIZE):
            body += chunk
            if len(body) > limit:
                raise ResponseTooLarge(f"response of {where} exceeds the {limit}-byte limit")
            if time.monotonic() > deadline:
                raise requests.Timeout(f"response of {where} still arriving after the "
                                       "response timeout")
    finally:
        response.close()
    response._content = bytes(body)


# --- library logs -----------------------------------------------------------------

_QUERY_PAIR = re.compile(r"([?&])([^=&\s\"]+)=([^&\s\"]*)")


def _mask_pair(match: re.Match[str]) -> str:
    value = MASK if is_sensitive_name(match.group(2)) else match.group(3)
    return f"{match.group(1)}{match.group(2)}={value}"


#: Secret values of the request this thread (or task) is sending; see :func:`send`.
_SENDING_SECRETS: ContextVar[tuple[str, ...]] = ContextVar("hub_http_sending_secrets",
                                                          default=())


class RedactQueryFilter(logging.Filter):
    """Masks credential-bearing query parameters in a logger's messages.

    urllib3 logs every request line (with its query string) at DEBUG, so an API
    key sent as a query parameter would reach the logs of anyone debugging.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(_QUERY_PAIR.sub(_mask_pair, message),
                               _SENDING_SECRETS.get()) or ""
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(RedactQueryFilter())
