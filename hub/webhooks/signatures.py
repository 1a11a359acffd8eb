"""Inbound webhook signature schemes (DESIGN §5), each as its provider documents it.

======================  ===================================================  =========
scheme                  what is checked                                      tolerance
======================  ===================================================  =========
``stripe``              ``Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>]``,     yes
                        HMAC-SHA256 of ``"<ts>.<body>"`` keyed by the whole
                        ``whsec_...`` string (stripe.com/docs/webhooks)
``github``              ``X-Hub-Signature-256: sha256=<hex>`` of the body     no
``shopify``             ``X-Shopify-Hmac-Sha256``: base64 HMAC of the body    no
``slack``               ``X-Slack-Signature: v0=<hex>`` of                    yes
                        ``"v0:<X-Slack-Request-Timestamp>:<body>"``
``standard-webhooks``   ``webhook-*`` / ``svix-*`` headers, ``whsec_``        yes
(alias ``svix``)        secrets (:mod:`hub.deliveries.standard_webhooks`)
``telegram``            ``X-Telegram-Bot-Api-Secret-Token`` equals the secret no
``google``              ``X-Goog-Channel-Token`` equals the secret (the       no
                        channel's ``token``; Drive/Sheets push notifications)
``hmac-sha256``         configurable header, hex or base64, optional prefix   no
(alias ``generic``)     (``sha256=``), HMAC-SHA256 of the body
``none``                nothing: the unguessable URL token is the credential  no
======================  ===================================================  =========

Every comparison is constant-time (:func:`hmac.compare_digest`); every scheme
accepts any of several secrets (an endpoint holds two during a rotation).
Verification fails closed and its errors never name a secret or an expected
signature. Header mappings passed here have lower-case names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as _secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from hub.deliveries import standard_webhooks
from hub.platform import inbound
from hub.platform.errors import InvalidSignature, MalformedBody, ValidationError

DEFAULT_TOLERANCE = 300
#: Defaults of the generic scheme when the endpoint configures nothing.
GENERIC_HEADER = "x-signature"
ENCODINGS = ("hex", "base64")
MAX_EXTERNAL_ID = 255
GOOGLE_REQUIRED = ("x-goog-channel-id", "x-goog-message-number", "x-goog-resource-state")
#: The kinds of a Telegram Update, as the Bot API lists them.
TELEGRAM_UPDATE_KINDS = (
    "message", "edited_message", "channel_post", "edited_channel_post",
    "business_connection", "business_message", "edited_business_message",
    "deleted_business_messages", "message_reaction", "message_reaction_count",
    "inline_query", "chosen_inline_result", "callback_query", "shipping_query",
    "pre_checkout_query", "purchased_paid_media", "poll", "poll_answer", "my_chat_member",
    "chat_member", "chat_join_request", "chat_boost", "removed_chat_boost",
)

Headers = Mapping[str, str]


@dataclass(frozen=True)
class Options:
    """Per-endpoint parameters of a scheme (from the endpoint's row)."""

    tolerance: int = DEFAULT_TOLERANCE
    header: str = GENERIC_HEADER
    encoding: str = "hex"
    prefix: str = ""
    now: float | None = None  # tests pin the clock; None is time.time()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], tolerance: int) -> Options:
        """Options from an endpoint's ``config`` JSON (``header``, ``encoding``, ``prefix``)."""
        return cls(tolerance=tolerance,
                   header=str(config.get("header") or GENERIC_HEADER).lower(),
                   encoding=str(config.get("encoding") or "hex"),
                   prefix=str(config.get("prefix") or ""))


def _hmac(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def _equal(expected: str | bytes, received: str | bytes) -> bool:
    # compare_digest refuses non-ASCII str; bytes compare in constant time whatever they hold.
    a = expected.encode() if isinstance(expected, str) else expected
    b = received.encode() if isinstance(received, str) else received
    return hmac.compare_digest(a, b)


def _require(headers: Headers, name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise InvalidSignature(f"missing {name} header")
    return value


def _check_age(raw: str, options: Options, header: str) -> int:
    try:
        timestamp = int(raw)
    except ValueError:
        raise InvalidSignature(f"{header} is not a unix timestamp") from None
    now = time.time() if options.now is None else options.now
    if abs(now - timestamp) > options.tolerance:
        raise InvalidSignature(f"{header} is outside the {options.tolerance}s tolerance")
    return timestamp


def _any_secret(secrets: Sequence[str], sign: Callable[[str], str | bytes],
                received: Sequence[str | bytes]) -> None:
    for secret in secrets:
        expected = sign(secret)
        if any(_equal(expected, r) for r in received):
            return
    raise InvalidSignature("signature does not match")


# -- verifiers: (body, headers, secrets, options) -> None, raise InvalidSignature ----------

def verify_stripe(body: bytes, headers: Headers, secrets: Sequence[str],
                  options: Options) -> None:
    """Stripe: ``t=`` timestamp and one or more ``v1=`` signatures; other schemes ignored."""
    pairs = [item.partition("=") for item in _require(headers, "stripe-signature").split(",")]
    stamps = [v.strip() for k, _, v in pairs if k.strip() == "t"]
    received = [v.strip() for k, _, v in pairs if k.strip() == "v1"]
    if len(stamps) != 1 or not received:
        raise InvalidSignature("stripe-signature needs one t= and at least one v1=")
    timestamp = _check_age(stamps[0], options, "stripe-signature timestamp")
    signed = f"{timestamp}.".encode() + body
    _any_secret(secrets, lambda s: _hmac(s, signed).hex(), received)


def verify_github(body: bytes, headers: Headers, secrets: Sequence[str],
                  options: Options) -> None:
    """GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``."""
    received = _require(headers, "x-hub-signature-256")
    _any_secret(secrets, lambda s: "sha256=" + _hmac(s, body).hex(), [received])


def verify_shopify(body: bytes, headers: Headers, secrets: Sequence[str],
                   options: Options) -> None:
    """Shopify: ``X-Shopify-Hmac-Sha256``, base64 of the HMAC-SHA256 of the raw body."""
    received = _require(headers, "x-shopify-hmac-sha256")
    _any_secret(secrets, lambda s: base64.b64encode(_hmac(s, body)), [received])


def verify_slack(body: bytes, headers: Headers, secrets: Sequence[str],
                 options: Options) -> None:
    """Slack: ``v0=<hex>`` of ``v0:<timestamp>:<body>``, timestamp within the tolerance."""
    raw_ts = _require(headers, "x-slack-request-timestamp")
    received = _require(headers, "x-slack-signature")
    _check_age(raw_ts, options, "x-slack-request-timestamp")
    signed = f"v0:{raw_ts}:".encode() + body
    _any_secret(secrets, lambda s: "v0=" + _hmac(s, signed).hex(), [received])


def verify_standard(body: bytes, headers: Headers, secrets: Sequence[str],
                    options: Options) -> None:
    """Standard Webhooks / Svix, delegated to :func:`hub.deliveries.standard_webhooks.verify`."""
    try:
        standard_webhooks.verify(secrets, headers, body, options.tolerance, now=options.now)
    except standard_webhooks.WebhookVerificationError as exc:
        raise InvalidSignature(exc.message) from None
    except ValueError:
        # A stored secret that is not a whsec_ secret: nothing can match it.
        raise InvalidSignature("signature does not match") from None


def verify_telegram(body: bytes, headers: Headers, secrets: Sequence[str],
                    options: Options) -> None:
    """Telegram: the ``secret_token`` given to setWebhook comes back verbatim in a header."""
    received = _require(headers, "x-telegram-bot-api-secret-token")
    _any_secret(secrets, lambda s: s, [received])


def verify_google(body: bytes, headers: Headers, secrets: Sequence[str],
                  options: Options) -> None:
    """Google push notifications: the ``token`` given to ``files.watch`` comes back in
    ``X-Goog-Channel-Token`` (developers.google.com/drive/api/guides/push). A request
    without the channel id, message number and resource state is not a notification."""
    received = _require(headers, "x-goog-channel-token")
    _any_secret(secrets, lambda s: s, [received])
    missing = [h for h in GOOGLE_REQUIRED if not headers.get(h, "").strip()]
    if missing:
        raise MalformedBody(f"not a Google push notification: no {', '.join(missing)}")


def verify_generic(body: bytes, headers: Headers, secrets: Sequence[str],
                   options: Options) -> None:
    """HMAC-SHA256 of the body in ``options.header``, hex or base64, after ``options.prefix``."""
    received = _require(headers, options.header)
    if options.encoding == "hex":
        # Hex is case-insensitive on the wire; the prefix (e.g. ``sha256=``) is not.
        prefix, digest = received[:len(options.prefix)], received[len(options.prefix):]
        received = prefix + digest.lower()

        def sign(s: str) -> str:
            return options.prefix + _hmac(s, body).hex()
    else:
        def sign(s: str) -> str:
            return options.prefix + base64.b64encode(_hmac(s, body)).decode()
    _any_secret(secrets, sign, [received])


def verify_none(body: bytes, headers: Headers, secrets: Sequence[str],
                options: Options) -> None:
    """Token-only endpoints: the unguessable URL token already authenticated the caller."""


# -- body, event id and event type --------------------------------------------------------

def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedBody("body is not valid JSON") from None
    except RecursionError:
        # The parser recurses once per level: ~1,000 nested arrays exhaust the stack
        # (issue 9, item 9). Python's json has no depth option; its own limit is this.
        raise MalformedBody("body nests too deeply") from None


def parse_json(body: bytes, headers: Headers) -> Any:
    """A JSON body (the provider sends nothing else); MalformedBody otherwise."""
    return _parse_json(body)


def _is_form(headers: Headers) -> bool:
    return headers.get("content-type", "").startswith("application/x-www-form-urlencoded")


def parse_json_or_form(body: bytes, headers: Headers) -> Any:
    """JSON, or (GitHub and Slack interactivity) a form whose ``payload`` field is JSON."""
    if not _is_form(headers):
        return _parse_json(body)
    try:
        form = {k: v[0] for k, v in parse_qs(body.decode(), strict_parsing=bool(body)).items()}
    except (ValueError, UnicodeDecodeError):
        raise MalformedBody("body is not a valid form") from None
    return _parse_json(form["payload"].encode()) if "payload" in form else form


def parse_if_json(body: bytes, headers: Headers) -> Any:
    """Schemes without a fixed format: JSON when the content type says so, else opaque."""
    return _parse_json(body) if "json" in headers.get("content-type", "") else None


def _field(*path: str) -> Callable[[Headers, Any], str | None]:
    def get(headers: Headers, payload: Any) -> str | None:
        value = payload
        for key in path:
            if not isinstance(value, dict) or value.get(key) is None:
                return None
            value = value[key]
        return None if isinstance(value, (dict, list)) else str(value)
    return get


def _header(name: str) -> Callable[[Headers, Any], str | None]:
    return lambda headers, payload: headers.get(name) or None


def _first(*getters: Callable[[Headers, Any], str | None]) -> Callable[[Headers, Any], str | None]:
    def get(headers: Headers, payload: Any) -> str | None:
        return next((v for v in (g(headers, payload) for g in getters) if v), None)
    return get


def _github_type(headers: Headers, payload: Any) -> str | None:
    event = headers.get("x-github-event")
    action = _field("action")(headers, payload)
    return f"{event}.{action}" if event and action else event or None


def _nothing(headers: Headers, payload: Any) -> str | None:
    return None


def parse_google(body: bytes, headers: Headers) -> Any:
    """A Google notification's data is in its headers (the body is empty)."""
    return inbound.google_push_payload(headers)


def _google_id(headers: Headers, payload: Any) -> str | None:
    # Message numbers count up per channel: channel + number names one notification.
    channel, number = headers.get("x-goog-channel-id"), headers.get("x-goog-message-number")
    return f"{channel}:{number}" if channel and number else None


def _telegram_type(headers: Headers, payload: Any) -> str | None:
    # An Update holds update_id and exactly one of its optional fields
    # (core.telegram.org/bots/api#update); a kind newer than our list still counts.
    if not isinstance(payload, dict):
        return None
    kinds = [k for k in TELEGRAM_UPDATE_KINDS if isinstance(payload.get(k), dict)]
    kinds += [k for k, v in payload.items() if k != "update_id" and isinstance(v, dict)]
    return kinds[0] if kinds else None


def slack_handshake(payload: Any) -> dict[str, Any] | None:
    """Slack's Events API ``url_verification``: answer the challenge, store nothing."""
    if isinstance(payload, dict) and payload.get("type") == "url_verification":
        return {"challenge": str(payload.get("challenge", ""))}
    return None


def _hex_secret() -> str:
    return _secrets.token_hex(32)


@dataclass(frozen=True)
class Scheme:
    """How one provider signs, formats and identifies its webhooks."""

    name: str
    verify: Callable[[bytes, Headers, Sequence[str], Options], None]
    parse: Callable[[bytes, Headers], Any] = parse_json_or_form
    event_id: Callable[[Headers, Any], str | None] = _nothing
    event_type: Callable[[Headers, Any], str | None] = _nothing
    needs_secret: bool = True
    new_secret: Callable[[], str] = field(default=_hex_secret)
    #: A provider's set-up request that expects an answer instead of being an event.
    handshake: Callable[[Any], dict[str, Any] | None] = lambda payload: None


SCHEMES: dict[str, Scheme] = {s.name: s for s in (
    Scheme("stripe", verify_stripe, parse_json, _field("id"), _field("type"),
           new_secret=lambda: "whsec_" + _secrets.token_hex(24)),
    Scheme("github", verify_github, parse_json_or_form, _header("x-github-delivery"),
           _github_type),
    Scheme("shopify", verify_shopify, parse_json, _header("x-shopify-webhook-id"),
           _header("x-shopify-topic")),
    Scheme("slack", verify_slack, parse_json_or_form, _field("event_id"),
           _first(_field("event", "type"), _field("type")), handshake=slack_handshake),
    Scheme("standard-webhooks", verify_standard, parse_json,
           _first(_header("webhook-id"), _header("svix-id")), _field("type"),
           new_secret=standard_webhooks.generate_secret),
    Scheme("telegram", verify_telegram, parse_json, _field("update_id"), _telegram_type,
           new_secret=lambda: _secrets.token_urlsafe(48)),  # Telegram allows [A-Za-z0-9_-]{1,256}
    Scheme("google", verify_google, parse_google, _google_id,
           _header("x-goog-resource-state"),
           new_secret=lambda: _secrets.token_urlsafe(48)),  # a channel token: <= 256 chars
    Scheme("hmac-sha256", verify_generic, parse_if_json),
    Scheme("none", verify_none, parse_if_json, needs_secret=False),
)}
ALIASES = {"svix": "standard-webhooks", "generic": "hmac-sha256", "token": "none"}
SCHEME_NAMES = tuple(sorted((*SCHEMES, *ALIASES)))


def get_scheme(name: str) -> Scheme:
    """The scheme called ``name`` (aliases accepted); ValidationError if unknown."""
    scheme = SCHEMES.get(ALIASES.get(name, name))
    if scheme is None:
        raise ValidationError(f"unknown signature scheme {name!r}; "
                              f"expected one of {', '.join(SCHEME_NAMES)}")
    return scheme


def verify(scheme: str, body: bytes, headers: Headers, secrets: Sequence[str],
           options: Options | None = None) -> None:
    """Check ``body`` and ``headers`` (lower-case names) against any of ``secrets``.

    Raises InvalidSignature (missing header, stale timestamp, no match; also when a
    scheme that needs a secret has none) or ValidationError for an unknown scheme.
    """
    chosen = get_scheme(scheme)
    if chosen.needs_secret and not secrets:
        raise InvalidSignature("endpoint has no secret to check the signature with")
    chosen.verify(body, headers, secrets, options or Options())


def validate_options(scheme: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Check an endpoint's scheme config; return the cleaned dict. Raises ValidationError."""
    cleaned = {k: v for k, v in config.items() if v not in (None, "")}
    if cleaned.get("encoding", "hex") not in ENCODINGS:
        raise ValidationError(f"encoding must be one of {', '.join(ENCODINGS)}")
    header = str(cleaned.get("header", GENERIC_HEADER))
    if not header or any(c in header for c in " :\r\n"):
        raise ValidationError("header must be a plain HTTP header name")
    if "header" in cleaned:
        cleaned["header"] = header.lower()
    return cleaned
