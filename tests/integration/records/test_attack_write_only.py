"""Red team: a write-only caller (a custom role, or an API key, holding records:record:write but
not records:record:read) must not read records through a write.

A merge patch is read-modify-write and answers the merged document: an empty patch ``{}`` would
hand back the whole stored record, unaudited even in a collection that audits every read. The
route refuses it (403, audited) unless the caller may also read; PUT and POST answer only what
the caller sent, so they stay open to a write-only caller.
"""

import httpx
import pytest

from bastion.api.app import create_app
from bastion.bootstrap import build, initialise
from tests.support.identity import CHEAP_ARGON2

PASSWORD = "correct horse battery staple"
SECRET = {"card": "4111 1111 1111 1111"}


async def _sign_in(client, name):
    body = {"email": f"{name}@example.com", "password": PASSWORD}
    created = await client.post("/api/v1/auth/signup", json=body)
    assert created.status_code == 201, created.text
    token = (await client.post("/api/v1/auth/login", json=body)).json()["token"]
    client.cookies.clear()
    return created.json()["id"], {"Authorization": f"Bearer {token}"}


@pytest.mark.anyio
async def test_a_write_only_caller_cannot_read_a_record_back_through_a_merge_patch(
    make_settings,
):
    settings = make_settings(identity=CHEAP_ARGON2)
    initialise(settings)
    container = build(settings)
    try:
        transport = httpx.ASGITransport(app=create_app(container))
        async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
            _, owner = await _sign_in(client, "owner")
            ingest_id, ingest = await _sign_in(client, "ingest")
            base = "/api/v1/tenants/acme"
            steps = [
                ("/api/v1/tenants", {"name": "Acme", "slug": "acme"}),
                (f"{base}/collections", {"name": "cards", "audit_reads": True}),
                (f"{base}/roles", {"name": "ingest", "permissions": ["records:record:write"]}),
                (f"{base}/members", {"user_id": ingest_id, "role": "viewer"}),
            ]
            for path, body in steps:
                answer = await client.post(path, json=body, headers=owner)
                assert answer.status_code == 201, answer.text
            assigned = await client.put(
                f"{base}/members/{ingest_id}/role", json={"role": "ingest"}, headers=owner
            )
            assert assigned.status_code == 200, assigned.text
            records = f"{base}/collections/cards/records"
            stored = await client.post(records, json=SECRET, headers=owner)
            one = f"{records}/{stored.json()['id']}"

            assert (await client.get(one, headers=ingest)).status_code == 403
            patched = await client.patch(
                one,
                content=b"{}",
                headers={**ingest, "Content-Type": "application/merge-patch+json"},
            )
            assert patched.status_code == 403, patched.text
            assert patched.headers["content-type"] == "application/problem+json"
            assert "4111" not in patched.text
            # Writing what one sends stays open to a write-only caller.
            mine = await client.post(records, json={"card": "x"}, headers=ingest)
            assert mine.status_code == 201, mine.text
            assert (await client.get(one, headers=owner)).json()["data"] == SECRET
    finally:
        container.engine.dispose()
