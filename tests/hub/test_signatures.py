"""hub.webhooks.signatures: each scheme against requests signed exactly as the provider signs them.

Where the provider publishes a library, the library signs (stripe, standardwebhooks,
svix, slack_sdk); GitHub, Shopify, Telegram and the generic scheme follow the
providers' documented recipes (GitHub's documented test vector included).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import stripe
import svix.webhooks
from slack_sdk.signature import SignatureVerifier
from standardwebhooks import Webhook

from hub.platform.errors import InvalidSignature, MalformedBody, ValidationError
from hub.webhooks import identity, signatures
from hub.webhooks.identity import Identity
from hub.webhooks.signatures import Options

BODY = json.dumps({"id": "evt_1", "type": "customer.created", "update_id": 42,
                   "event_id": "Ev1", "event": {"type": "app_mention"},
                   "action": "opened"}).encode()
#: Seconds off the clock for a timestamp outside any tolerance (in the past, ahead).
OUTSIDE = 600

def now() -> int:
    """The clock when the request is signed (not when the module was collected: a long
    serial run reaches these tests minutes later, past every tolerance)."""
    return int(time.time())


Signer = Callable[[str, bytes, int], dict[str, str]]


def stripe_headers(secret: str, body: bytes, ts: int) -> dict[str, str]:
    value = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, ts)
    return {"Stripe-Signature": value}


def github_headers(secret: str, body: bytes, ts: int) -> dict[str, str]:
    # docs.github.com "Validating webhook deliveries": HMAC hex digest, "sha256=" prefix.
    digest = hmac.new(secret.encode(), msg=body, digestmod=hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": "sha256=" + digest, "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}


def shopify_headers(secret: str, body: bytes, ts: int) -> dict[str, str]:
    # shopify.dev "Verify webhooks" (Python sample): base64 of the HMAC-SHA256 digest.
    digest = hmac.new(secret.encode("utf-8"), body, digestmod=hashlib.sha256).digest()
    return {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
            "X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "b54557e4-bdd9"}


def slack_headers(secret: str, body: bytes, ts: int) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
    return {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(ts)}


def standard_headers(secret: str, body: bytes, ts: int) -> dict[str, str]:
    signature = Webhook(secret).sign("msg_1", datetime.fromtimestamp(ts, tz=UTC),
                                     body.decode())
    return {"webhook-id": "msg_1", "webhook-timestamp": str(ts), "webhook-signature": signature}


def svix_headers(secret: str, body: bytes, ts: int) -> dict[str, str]:
    signature = svix.webhooks.Webhook(secret).sign(
        "msg_2", datetime.fromtimestamp(ts, tz=UTC), body.decode())
    return {"svix-id": "msg_2", "svix-timestamp": str(ts), "svix-signature": signature}


def telegram_headers(secret: str, body: bytes, ts: int) -> dict[str, str]:
    # core.telegram.org/bots/api#setwebhook: the secret_token is sent back verbatim.
    return {"X-Telegram-Bot-Api-Secret-Token": secret}


def generic_hex_headers(secret: str, body: bytes, ts: int) -> dict[str, str]:
    return {"X-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def generic_b64_prefixed(secret: str, body: bytes, ts: int) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return {"X-Acme-Sig": "sha256=" + digest.decode()}


GENERIC_B64 = {"header": "X-Acme-Sig", "encoding": "base64", "prefix": "sha256="}

# scheme, secret, signer, options config, timestamped
CASES = [
    ("stripe", "whsec_test_abc123", stripe_headers, {}, True),
    ("github", "It's a Secret to Everybody", github_headers, {}, False),
    ("shopify", "shpss_0123456789abcdef", shopify_headers, {}, False),
    ("slack", "8f742231b10e8888abcd99yyyzzz85a5", slack_headers, {}, True),
    ("standard-webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", standard_headers, {}, True),
    ("svix", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", svix_headers, {}, True),
    ("telegram", "tg-secret_token-123", telegram_headers, {}, False),
    ("hmac-sha256", "generic-secret", generic_hex_headers, {}, False),
    ("generic", "generic-secret", generic_b64_prefixed, GENERIC_B64, False),
]
IDS = [c[0] + ("-b64" if c[3] else "") for c in CASES]


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def check(scheme: str, body: bytes, headers: dict[str, str], secrets: list[str],
          config: dict[str, str]) -> None:
    options = Options.from_config(config, 300)
    signatures.verify(scheme, body, lower(headers), secrets, options)


@pytest.mark.parametrize(("scheme", "secret", "sign", "config", "timed"), CASES, ids=IDS)
def test_accepts_a_request_signed_by_the_provider(scheme, secret, sign, config, timed):
    check(scheme, BODY, sign(secret, BODY, now()), [secret], config)


@pytest.mark.parametrize(("scheme", "secret", "sign", "config", "timed"), CASES, ids=IDS)
def test_accepts_the_previous_secret_during_a_rotation(scheme, secret, sign, config, timed):
    check(scheme, BODY, sign(secret, BODY, now()), [secret[:-2] + "zz", secret], config)


@pytest.mark.parametrize(("scheme", "secret", "sign", "config", "timed"), CASES, ids=IDS)
def test_refuses_a_wrong_secret(scheme, secret, sign, config, timed):
    headers = sign(secret, BODY, now())
    with pytest.raises(InvalidSignature):
        check(scheme, BODY, headers, [secret[:-2] + "zz"], config)


@pytest.mark.parametrize(("scheme", "secret", "sign", "config", "timed"),
                         [c for c in CASES if c[0] != "telegram"],
                         ids=[i for i in IDS if i != "telegram"])
def test_refuses_a_modified_body(scheme, secret, sign, config, timed):
    headers = sign(secret, BODY, now())
    with pytest.raises(InvalidSignature, match="match"):
        check(scheme, BODY.replace(b"evt_1", b"evt_2"), headers, [secret], config)


@pytest.mark.parametrize(("scheme", "secret", "sign", "config", "timed"),
                         [c for c in CASES if c[4]], ids=[i for i, c in zip(IDS, CASES) if c[4]])
@pytest.mark.parametrize("offset", [-OUTSIDE, OUTSIDE], ids=["stale", "future"])
def test_refuses_a_timestamp_outside_the_tolerance(scheme, secret, sign, config, timed, offset):
    with pytest.raises(InvalidSignature, match="tolerance"):
        check(scheme, BODY, sign(secret, BODY, now() + offset), [secret], config)


@pytest.mark.parametrize(("scheme", "secret", "sign", "config", "timed"), CASES, ids=IDS)
def test_refuses_a_missing_header(scheme, secret, sign, config, timed):
    headers = sign(secret, BODY, now())
    for name in [n for n in headers if n.lower() not in (
            "x-github-event", "x-github-delivery", "x-shopify-topic", "x-shopify-webhook-id")]:
        partial = {k: v for k, v in headers.items() if k != name}
        with pytest.raises(InvalidSignature, match="missing"):
            check(scheme, BODY, partial, [secret], config)


def test_github_documented_test_vector():
    # docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing
    headers = {"x-hub-signature-256":
               "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}
    signatures.verify("github", b"Hello, World!", headers, ["It's a Secret to Everybody"])


def test_stripe_accepts_any_of_several_v1_signatures_and_ignores_v0():
    secret = "whsec_current"
    good = stripe_headers(secret, BODY, now())["Stripe-Signature"]
    value = good.replace("v1=", "v0=deadbeef,v1=00ff,v1=")
    signatures.verify("stripe", BODY, {"stripe-signature": value}, [secret])


def test_stripe_header_without_v1_is_refused():
    value = f"t={now()},v0=abc"
    with pytest.raises(InvalidSignature, match="v1"):
        signatures.verify("stripe", BODY, {"stripe-signature": value}, ["whsec_x"])


def test_scheme_needing_a_secret_without_one_refuses():
    with pytest.raises(InvalidSignature, match="no secret"):
        signatures.verify("github", BODY, lower(github_headers("s", BODY, now())), [])


def test_none_scheme_accepts_without_headers():
    signatures.verify("none", BODY, {}, [])


def test_unknown_scheme_is_a_validation_error():
    with pytest.raises(ValidationError, match="unknown signature scheme"):
        signatures.get_scheme("md5")


def test_error_messages_never_contain_the_secret_or_expected_signature():
    secret, signed_at = "whsec_supersecretvalue", now()
    headers = stripe_headers("whsec_other", BODY, signed_at)
    expected = hmac.new(secret.encode(), f"{signed_at}.".encode() + BODY,
                        hashlib.sha256).hexdigest()
    with pytest.raises(InvalidSignature) as info:
        signatures.verify("stripe", BODY, lower(headers), [secret])
    assert secret not in str(info.value) and expected not in str(info.value)


@pytest.mark.parametrize(("scheme", "headers", "expected_id", "expected_type"), [
    ("stripe", {}, "evt_1", "customer.created"),
    ("github", {"x-github-delivery": "d-1", "x-github-event": "issues"}, "d-1", "issues.opened"),
    ("shopify", {"x-shopify-webhook-id": "w-1", "x-shopify-topic": "orders/create"},
     "w-1", "orders/create"),
    ("slack", {}, "Ev1", "app_mention"),
    ("standard-webhooks", {"webhook-id": "msg_9"}, "msg_9", "customer.created"),
    ("svix", {"svix-id": "msg_8"}, "msg_8", "customer.created"),
    ("telegram", {}, "42", "event"),
])
def test_event_id_and_type_per_scheme(scheme, headers, expected_id, expected_type):
    chosen = signatures.get_scheme(scheme)
    payload = chosen.parse(BODY, {"content-type": "application/json"})

    assert identity.external_id(Identity(), chosen, headers, payload, BODY) == expected_id
    assert identity.event_type(Identity(), chosen, headers, payload) == expected_type


def test_event_id_falls_back_to_a_hash_of_the_body():
    chosen = signatures.get_scheme("hmac-sha256")
    found = identity.external_id(Identity(), chosen, {}, None, b"raw")

    assert found == "sha256:" + hashlib.sha256(b"raw").hexdigest()


def test_github_event_without_action_is_the_header_alone():
    chosen = signatures.get_scheme("github")
    assert identity.event_type(Identity(), chosen, {"x-github-event": "push"},
                               {"ref": "x"}) == "push"


def test_github_form_encoded_payload_is_parsed():
    chosen = signatures.get_scheme("github")
    body = b"payload=%7B%22action%22%3A%22closed%22%7D"
    payload = chosen.parse(body, {"content-type": "application/x-www-form-urlencoded"})
    assert payload == {"action": "closed"}


@pytest.mark.parametrize("scheme", ["stripe", "github", "slack", "standard-webhooks"])
def test_malformed_json_body_is_refused(scheme):
    with pytest.raises(MalformedBody):
        signatures.get_scheme(scheme).parse(b"{not json", {"content-type": "application/json"})


def test_generic_scheme_options_are_validated():
    assert signatures.validate_options("hmac-sha256", {"header": "X-Sig", "encoding": "base64"}) \
        == {"header": "x-sig", "encoding": "base64"}
    with pytest.raises(ValidationError):
        signatures.validate_options("hmac-sha256", {"encoding": "base32"})
