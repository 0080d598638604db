"""The HTTP edge as a client sees it, over real TLS."""

import socket
import ssl

import httpx
import pytest

SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def _assert_problem(response, status):
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"]
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_healthz_answers_over_verified_tls_with_every_security_header(server):
    response = server.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert len(response.headers["x-request-id"]) >= 8
    assert "server" not in response.headers


def test_readyz_reports_ready(server):
    assert server.client.get("/readyz").json() == {"status": "ready"}


def test_unknown_path_is_a_404_problem_with_the_headers(server):
    response = server.client.get("/no/such/thing")
    _assert_problem(response, 404)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


def test_wrong_method_is_a_405_problem(server):
    _assert_problem(server.client.delete("/healthz"), 405)


def test_oversized_body_is_a_413_problem(server):
    response = server.client.post("/healthz", content=b"x" * (1024 * 1024 + 1))
    body = _assert_problem(response, 413)
    assert "1048576" in body["detail"]


def test_invalid_query_is_a_422_problem_that_does_not_echo_the_value(server):
    response = server.client.get("/bootstrap", params={"token": "short<script>"})
    body = _assert_problem(response, 422)
    assert body["errors"][0]["loc"] == ["query", "token"]
    assert "<script>" not in response.text


def test_openapi_document_is_served(server):
    document = server.client.get("/api/openapi.json").json()
    assert "/healthz" in document["paths"]


def test_plain_http_to_the_tls_port_gets_no_answer(server):
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)


def _handshake(server, context):
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version(), tls.cipher()[0]


def test_tls_1_3_is_negotiated_by_default(server):
    version, _ = _handshake(server, server.ssl_context())
    assert version == "TLSv1.3"


def test_tls_1_2_clients_get_forward_secret_aead_ciphers_only(server):
    context = server.ssl_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    version, cipher = _handshake(server, context)
    assert version == "TLSv1.2"
    assert cipher.startswith("ECDHE-")
    assert "GCM" in cipher or "CHACHA20" in cipher

    weak = server.ssl_context()
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("AES128-SHA:AES256-SHA:ECDHE-ECDSA-AES128-SHA")  # CBC, some without ECDHE
    with pytest.raises(ssl.SSLError):
        _handshake(server, weak)
