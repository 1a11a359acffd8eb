"""hub.deliveries.standard_webhooks against the reference implementation (the ``standardwebhooks`` package)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceError_

from hub.deliveries import standard_webhooks as sw
from hub.deliveries.standard_webhooks import WebhookVerificationError

BODY = json.dumps({"type": "invoice.paid", "data": {"id": "in_1", "amount": 4200}}).encode()


def _reference_headers(secret: str, msg_id: str, body: bytes, ts: int) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=UTC),
                                     body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_generated_secret_has_prefix_and_enough_entropy():
    secret = sw.generate_secret()

    assert secret.startswith("whsec_")
    assert 24 <= len(base64.b64decode(secret[len("whsec_"):])) <= 64
    assert sw.generate_secret() != secret


def test_our_signature_verifies_with_the_reference_library():
    secret = sw.generate_secret()
    headers = sw.headers([secret], "msg_abc", BODY)

    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_reference_signature_verifies_with_ours():
    secret = sw.generate_secret()
    ts = int(time.time())

    assert sw.verify([secret], _reference_headers(secret, "msg_ref", BODY, ts), BODY) == "msg_ref"


def test_sign_matches_reference_byte_for_byte():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the spec's example secret
    ts = 1614265330
    ours = sw.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, BODY)

    assert ours == _reference_headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", BODY, ts)[
        "webhook-signature"]


def test_rotation_header_is_accepted_by_holders_of_either_secret():
    old, new = sw.generate_secret(), sw.generate_secret()
    headers = sw.headers([new, old], "msg_rot", BODY)

    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers)
        assert sw.verify([secret], headers, BODY) == "msg_rot"


def test_several_received_signatures_and_several_own_secrets():
    mine, other = sw.generate_secret(), sw.generate_secret()
    headers = sw.headers([other], "msg_x", BODY)
    headers["webhook-signature"] = "v1a,ZmFrZQ== " + headers["webhook-signature"]

    assert sw.verify([mine, other], headers, BODY) == "msg_x"


def test_svix_header_names_are_accepted():
    secret = sw.generate_secret()
    headers = {k.replace("webhook-", "svix-"): v
               for k, v in sw.headers([secret], "msg_svix", BODY).items()}

    assert sw.verify([secret], headers, BODY) == "msg_svix"


@pytest.mark.parametrize("tamper", ["wrong_secret", "modified_body", "stale", "future",
                                    "missing_signature", "missing_all", "garbage_signature"])
def test_refusals(tamper):
    secret = sw.generate_secret()
    body = BODY
    ts = int(time.time())
    if tamper == "stale":
        ts -= sw.DEFAULT_TOLERANCE + 5
    if tamper == "future":
        ts += sw.DEFAULT_TOLERANCE + 5
    headers = sw.headers([secret], "msg_t", body, timestamp=ts)
    secrets = [secret]
    if tamper == "wrong_secret":
        secrets = [sw.generate_secret()]
    elif tamper == "modified_body":
        body = body.replace(b"4200", b"4201")
    elif tamper == "missing_signature":
        del headers["webhook-signature"]
    elif tamper == "missing_all":
        headers = {}
    elif tamper == "garbage_signature":
        headers["webhook-signature"] = "v1,not base64!! v2,abc"

    with pytest.raises(WebhookVerificationError) as info:
        sw.verify(secrets, headers, body)
    assert secret not in str(info.value)
    # The reference library refuses the same message.
    if tamper not in ("missing_all", "garbage_signature"):
        with pytest.raises(ReferenceError_):
            Webhook(secrets[0]).verify(body, headers)


def test_tolerance_is_configurable():
    secret = sw.generate_secret()
    headers = sw.headers([secret], "msg_old", BODY, timestamp=int(time.time()) - 600)

    assert sw.verify([secret], headers, BODY, tolerance=900) == "msg_old"


def test_malformed_secret_is_refused_without_echo():
    with pytest.raises(ValueError) as info:
        sw.sign("whsec_***not-base64***", "msg", 1, BODY)
    assert "***not-base64***" not in str(info.value)
