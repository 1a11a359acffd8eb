"""hub.calls.http: SSRF guard (after DNS, on the connected address, on redirects), timeouts,
size limit, exception mapping; hub.platform.redaction."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest
import requests
from werkzeug.wrappers import Response

from hub.calls import http
from hub.platform.errors import (
    ResponseTooLarge,
    RetryableError,
    SSRFRefused,
    TimeoutError_,
    UpstreamError,
)
from hub.platform.redaction import (
    MASK,
    redact_body,
    redact_headers,
    redact_json,
    redact_text,
    redact_url,
    secret_values,
)
from tests.hub.fake_http import serve


@pytest.fixture
def guarded(settings):
    return dataclasses.replace(settings, allow_private_networks=False)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://10.1.2.3/x", "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:8080/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/",
    "http://192.168.0.1/", "http://100.64.0.1/", "http://224.0.0.1/", "http://[fe80::1]/",
    "http://localhost:1234/", "http://2130706433/", "http://0x7f.1/", "http://127.1/",
])
def test_check_url_refuses_private_destinations(guarded, url):
    with pytest.raises(SSRFRefused) as info:
        http.check_url(url, guarded)
    assert info.value.code == "VALIDATION_ERROR"


def test_public_addresses_are_allowed():
    assert not http.is_forbidden_address("93.184.215.14")
    assert not http.is_forbidden_address("2606:4700:4700::1111")
    assert http.is_forbidden_address("64:ff9b::a00:1")  # NAT64 of 10.0.0.1
    assert http.is_forbidden_address("2002:7f00:1::1")  # 6to4 of 127.0.0.1


def test_check_url_allows_private_when_configured(settings):
    assert settings.allow_private_networks
    http.check_url("http://127.0.0.1:9/", settings)  # no exception


def test_check_url_rejects_non_http(guarded):
    with pytest.raises(Exception) as info:
        http.check_url("file:///etc/passwd", guarded)
    assert info.value.code == "VALIDATION_ERROR"


def _ok(request):
    return Response(json.dumps({"path": request.path}), content_type="application/json")


def test_guard_refuses_at_connect_time_even_without_check_url(guarded):
    # "localhost" resolves to loopback: refused by the connection, server never reached.
    with serve(_ok) as server:
        port = server.url.rsplit(":", 1)[1]
        session = http.new_session(guarded)
        for url in (server.url + "/x", f"http://localhost:{port}/x"):
            with pytest.raises(SSRFRefused):
                http.send(session, requests.Request("GET", url), guarded)
        assert server.count() == 0


def test_guard_checks_redirect_targets(guarded, monkeypatch):
    # Pretend 127.0.0.1 is public and only 127.0.0.2 is internal, to follow a redirect
    # from an allowed host to a forbidden one with real servers.
    monkeypatch.setattr(http, "is_forbidden_address", lambda address: address == "127.0.0.2")
    with serve(_ok, host="127.0.0.2") as internal:
        def redirect(request):
            return Response("", status=302, headers={"Location": internal.url + "/secret"})
        with serve(redirect) as outside:
            session = http.new_session(guarded)
            with pytest.raises(SSRFRefused):
                http.send(session, requests.Request("GET", outside.url), guarded)
            assert outside.count() == 1 and internal.count() == 0
            unguarded = http.send(session, requests.Request("GET", outside.url), guarded,
                                  allow_redirects=False)
            assert unguarded.status_code == 302


def test_send_returns_body_and_sessions_are_pooled(settings):
    with serve(_ok) as server:
        session = http.session_for("integration-a", settings)
        assert http.session_for("integration-a", settings) is session
        assert http.session_for("integration-b", settings) is not session
        response = http.send(session, requests.Request("GET", server.url + "/p"), settings)
        assert response.status_code == 200 and response.json() == {"path": "/p"}


def test_response_size_limit(settings):
    small = dataclasses.replace(settings, http_max_response_bytes=1000)

    def big(request):
        if request.path == "/stream":
            return Response((b"x" * 100 for _ in range(50)), content_type="text/plain")
        return Response(b"y" * 5000)

    with serve(big) as server:
        session = http.new_session(small)
        for path in ("/stream", "/declared"):
            with pytest.raises(ResponseTooLarge):
                http.send(session, requests.Request("GET", server.url + path), small)
        ok = http.send(session, requests.Request("GET", server.url + "/declared"), settings)
        assert len(ok.content) == 5000


def test_read_timeout_maps_to_timeout_error(settings):
    quick = dataclasses.replace(settings, http_read_timeout=0.2)
    release = threading.Event()

    def slow(request):
        release.wait(5)
        return Response("late")

    with serve(slow) as server:
        try:
            with pytest.raises(TimeoutError_) as info:
                http.send(http.new_session(quick), requests.Request("GET", server.url), quick)
            assert isinstance(info.value.__cause__, requests.Timeout)
            assert info.value.retryable
        finally:
            release.set()


def test_a_body_trickled_past_the_response_timeout_is_a_timeout(settings):
    # Each silence is shorter than the read timeout: only a deadline on the whole
    # response ends it.
    quick = dataclasses.replace(settings, http_read_timeout=5, http_response_timeout=0.5)
    stop = threading.Event()

    def trickle(request):
        def body():
            while not stop.wait(0.05):
                yield b"x"
        return Response(body(), content_type="text/plain")

    with serve(trickle) as server:
        try:
            with pytest.raises(TimeoutError_) as info:
                http.send(http.new_session(quick), requests.Request("GET", server.url), quick)
            assert info.value.retryable
        finally:
            stop.set()


def test_connection_refused_maps_to_retryable(settings):
    with serve(_ok) as server:
        url = server.url
    with pytest.raises(RetryableError) as info:
        http.send(http.new_session(settings), requests.Request("GET", url), settings)
    assert info.value.retryable and info.value.code == "UPSTREAM_ERROR"


# --- redaction ----------------------------------------------------------------------

def test_redact_headers():
    out = redact_headers({"Authorization": "Bearer abc", "X-Api-Key": "k1",
                          "Cookie": "s=1", "X-HMAC-Signature": "deadbeef",
                          "X-Custom-Token": "t", "Content-Type": "application/json"})
    assert out == {"Authorization": MASK, "X-Api-Key": MASK, "Cookie": MASK,
                   "X-HMAC-Signature": MASK, "X-Custom-Token": MASK,
                   "Content-Type": "application/json"}


def test_redact_url():
    url = "https://user:pw@api.example.com/v1/x?api_key=SEKRIT&page=2&access_token=T0K&sig=s"
    out = redact_url(url)
    assert "SEKRIT" not in out and "T0K" not in out and "pw" not in out
    assert "page=2" in out and out.startswith("https://[REDACTED]@api.example.com/v1/x?")


def test_redact_json_and_body():
    body = {"user": "ann", "password": "hunter22", "nested": [{"card": "4242", "cvv": "123"}]}
    out = redact_json(body, fields=["CVV"])
    assert out == {"user": "ann", "password": MASK, "nested": [{"card": "4242", "cvv": MASK}]}
    text = redact_body(json.dumps(body).encode(), fields=["cvv"], limit=40)
    assert "hunter22" not in text and text.endswith("chars]")
    assert redact_body(b"\xff\xfe\x00", limit=10) == "<3 bytes of binary data>"


def test_redact_text_removes_every_known_secret_value():
    creds = {"client_id": "my-client", "client_secret": "s3cr3t-value", "n": 1}
    values = secret_values(creds)
    message = "401 for client my-client with secret s3cr3t-value (retry 1)"
    out = redact_text(message, values)
    assert "my-client" not in out and "s3cr3t-value" not in out
    assert out.endswith("(retry 1)")  # short values (the 1) are left alone


def _self_signed(tmp_path, hostname):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_guarded_https_connects_to_checked_ip_and_verifies_the_hostname(guarded, tmp_path,
                                                                       monkeypatch):
    # The guard connects to the resolved IP, but TLS must still verify the certificate
    # against the host name (SNI + hostname check), not against the IP.
    import ssl

    from werkzeug.serving import make_server

    cert, key = _self_signed(tmp_path, "localhost")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = make_server("127.0.0.1", 0, lambda env, start: _ok_wsgi(env, start),
                        ssl_context=context, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(http, "is_forbidden_address", lambda address: False)
    try:
        session = http.new_session(guarded)
        session.verify = cert
        url = f"https://localhost:{httpd.server_port}/tls"
        assert http.send(session, requests.Request("GET", url), guarded).text == "tls ok"
        with pytest.raises(UpstreamError) as info:  # the certificate is not for 127.0.0.1
            http.send(session, requests.Request("GET", url.replace("localhost", "127.0.0.1")),
                      guarded)
        assert not info.value.retryable
    finally:
        httpd.shutdown()
        thread.join(5)


def _ok_wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"tls ok"]
