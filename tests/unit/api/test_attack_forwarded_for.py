"""Red team: the client address behind a trusted proxy cannot be chosen by the client.

Some proxies (HAProxy's ``option forwardfor``, for one) append their own X-Forwarded-For as a
*new* header line instead of extending the client's. HTTP says field lines of one name are one
list, in order (RFC 9110, 5.3); reading only the first line would take the client's own, forged
value as the address that rate limits and tenant IP allow-lists are keyed on.
"""

from ipaddress import ip_network

import anyio

from bastion.api.middleware import EdgeMiddleware, resolve_client_address

PROXY = "10.0.0.5"


def _client_ip(headers):
    seen = {}

    async def app(scope, receive, send):
        seen["ip"] = scope["state"]["client_ip"]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    edge = EdgeMiddleware(
        app, max_body_bytes=1024, trusted_proxies=[ip_network("10.0.0.0/8")], hsts_max_age=1
    )
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "headers": headers,
        "client": (PROXY, 40000),
    }

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        return None

    anyio.run(edge, scope, receive, send)
    return seen["ip"]


def test_a_forged_first_line_does_not_become_the_client_address():
    headers = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-for", b"203.0.113.9")]
    assert _client_ip(headers) == "203.0.113.9"


def test_one_line_still_reads_right_to_left():
    assert _client_ip([(b"x-forwarded-for", b"1.2.3.4, 203.0.113.9")]) == "203.0.113.9"
    assert _client_ip([]) == PROXY


def test_a_trusted_proxy_reaching_a_dual_stack_listener_over_ipv4_is_still_trusted():
    # The listener reports the proxy as ::ffff:10.0.0.5; taken as IPv6 it matched no trusted
    # IPv4 network, so every client looked like the proxy: one shared rate-limit bucket.
    proxies = [ip_network("10.0.0.0/8")]
    assert resolve_client_address("::ffff:10.0.0.5", "203.0.113.9", proxies) == "203.0.113.9"
    assert resolve_client_address("10.0.0.5", "::ffff:203.0.113.9", proxies) == "203.0.113.9"
    assert resolve_client_address("::ffff:198.51.100.7", None, proxies) == "198.51.100.7"
