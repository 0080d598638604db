"""Collections and records over real TLS against a real `bastion serve`: the HTTP contract
(status codes, problem+json, ETag/If-Match, merge patch, filters), tenant isolation through
every route, read auditing, and concurrent writers with a stale ETag."""

import threading

import httpx
import pytest

from tests.support.http import problem as _problem
from tests.support.identity import CHEAP_ARGON2_ENV
from tests.support.server import ServerProcess

PASSWORD = "correct horse battery staple"
MAX_RECORD_BYTES = 4096
SCHEMA = {
    "type": "object",
    "properties": {
        "email": {"type": "string"},
        "plan": {"enum": ["free", "pro"]},
        "seats": {"type": "integer", "minimum": 1},
        "billing": {"type": "object", "properties": {"vat": {"type": "string"}}},
    },
    "required": ["email"],
}
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {**CHEAP_ARGON2_ENV, "BASTION_RECORDS__MAX_RECORD_BYTES": str(MAX_RECORD_BYTES)}
    process = ServerProcess(tmp_path_factory.mktemp("records") / "data", env=env)
    process.init()
    process.start()
    yield process
    process.stop()


class Owner:
    """A signed-up user who owns one tenant with a "customers" collection."""

    def __init__(self, server, name):
        client = server.client
        email = f"{name}@example.com"
        assert (
            client.post(
                "/api/v1/auth/signup", json={"email": email, "password": PASSWORD}
            ).status_code
            == 201
        )
        login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        self.headers = {"Authorization": f"Bearer {login.json()['token']}"}
        tenant = client.post(
            "/api/v1/tenants", json={"name": name.title(), "slug": name}, headers=self.headers
        )
        assert tenant.status_code == 201, tenant.text
        self.base = f"/api/v1/tenants/{name}/collections"
        created = client.post(
            self.base,
            json={"name": "customers", "schema": SCHEMA, "indexed": ["email", "plan"]},
            headers=self.headers,
            # The first schema a process compiles imports jsonschema (seconds on a busy machine).
            timeout=60,
        )
        assert created.status_code == 201, created.text
        self.records = f"{self.base}/customers/records"
        self.client = client

    def create(self, document):
        response = self.client.post(self.records, json=document, headers=self.headers)
        assert response.status_code == 201, response.text
        return response

    def call(self, method, path, **kwargs):
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)


@pytest.fixture(scope="module")
def acme(server):
    return Owner(server, "acme")


@pytest.fixture(scope="module")
def globex(server):
    return Owner(server, "globex")


def _count(owner):
    return len(owner.call("GET", owner.records, params={"limit": 1000}).json()["items"])


def test_store_read_replace_patch_and_delete_a_record(acme):
    created = acme.create({"email": "a@example.com", "plan": "free", "seats": 1})
    body = created.json()
    assert set(body) == {"id", "data", "etag", "created_at", "updated_at"}
    assert created.headers["etag"] == body["etag"]
    assert created.headers["location"].endswith(f"/records/{body['id']}")
    one = f"{acme.records}/{body['id']}"

    read = acme.call("GET", one)
    assert read.status_code == 200
    assert read.json()["data"] == {"email": "a@example.com", "plan": "free", "seats": 1}
    etag = read.headers["etag"]

    replaced = acme.call(
        "PUT",
        one,
        json={"email": "a@example.com", "plan": "pro", "seats": 3},
        headers={"If-Match": etag},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.headers["etag"] != etag
    _problem(
        acme.call("PUT", one, json={"email": "x@example.com"}, headers={"If-Match": etag}),
        412,
        "records.version_mismatch",
    )

    patched = acme.call(
        "PATCH",
        one,
        content=b'{"seats": null, "billing": {"vat": "FR1"}}',
        headers={**MERGE_PATCH, "If-Match": replaced.headers["etag"]},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"] == {
        "email": "a@example.com",
        "plan": "pro",
        "billing": {"vat": "FR1"},
    }
    _problem(acme.call("PATCH", one, json={"seats": 2}), 415, "records.unsupported_patch_type")

    found = acme.call("GET", acme.records, params={"filter[plan]": "pro"}).json()["items"]
    assert body["id"] in [r["id"] for r in found]
    _problem(
        acme.call("GET", acme.records, params={"filter[seats]": "3"}), 400, "records.invalid_filter"
    )
    _problem(acme.call("GET", acme.records, params={"plan": "pro"}), 400, "records.invalid_filter")

    assert acme.call("DELETE", one).status_code == 204
    _problem(acme.call("GET", one), 404)
    assert body["id"] not in [
        r["id"]
        for r in acme.call("GET", acme.records, params={"filter[plan]": "pro"}).json()["items"]
    ]


def test_bad_input_gets_a_clear_4xx_and_writes_nothing(acme):
    kept = acme.create({"email": "keep@example.com"}).json()
    one = f"{acme.records}/{kept['id']}"
    before = _count(acme)
    json_header = {"Content-Type": "application/json"}
    _problem(
        acme.call("POST", acme.records, content=b'{"email": ', headers=json_header),
        400,
        "records.malformed_document",
    )
    for hostile in (b"[1, 2]", b'{"a": 1e999}', b'{"a": "\\ud800"}', b'{"a": ' + b"[" * 3000):
        _problem(acme.call("POST", acme.records, content=hostile, headers=json_header), 400)
    _problem(
        acme.call(
            "POST",
            acme.records,
            content=b"email=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        415,
    )
    violation = _problem(
        acme.call("POST", acme.records, json={"email": 5, "seats": 0, "plan": "gold"}),
        422,
        "records.schema_violation",
    )
    assert {e["pointer"] for e in violation["errors"]} == {"/email", "/seats", "/plan"}
    too_big = {"email": "big@example.com", "notes": "x" * MAX_RECORD_BYTES}
    _problem(acme.call("POST", acme.records, json=too_big), 413, "records.record_too_large")
    _problem(acme.call("PUT", one, json=too_big), 413)
    _problem(acme.call("PATCH", one, content=b"{", headers=MERGE_PATCH), 400)
    _problem(acme.call("PUT", one, json={"seats": 2}), 422)
    assert _count(acme) == before
    assert acme.call("GET", one).json()["data"] == {"email": "keep@example.com"}
    _problem(acme.call("POST", f"{acme.base}/nope/records", json={"email": "x"}), 404)
    _problem(acme.call("POST", acme.base, json={"name": "Bad Name"}), 422)
    _problem(acme.call("POST", acme.base, json={"name": "customers"}), 409)


def test_another_tenants_records_are_not_found_through_every_route(acme, globex):
    theirs = acme.create({"email": "private@example.com", "plan": "pro"}).json()
    # Through the other tenant's own path: the id is simply not there.
    one = f"{globex.records}/{theirs['id']}"
    for method, kwargs in (
        ("GET", {}),
        ("PUT", {"json": {"email": "x@example.com"}}),
        ("PATCH", {"content": b"{}", "headers": MERGE_PATCH}),
        ("DELETE", {}),
    ):
        _problem(globex.call(method, one, **kwargs), 404)
    listed = globex.call("GET", globex.records, params={"filter[email]": "private@example.com"})
    assert listed.json()["items"] == []
    # Through the owner's path: not a member, so the tenant itself is not found.
    for method, path, kwargs in (
        ("GET", acme.base, {}),
        ("POST", acme.base, {"json": {"name": "mine"}}),
        ("GET", f"{acme.base}/customers", {}),
        ("PATCH", f"{acme.base}/customers", {"json": {"audit_reads": False}}),
        ("DELETE", f"{acme.base}/customers", {}),
        ("GET", acme.records, {}),
        ("POST", acme.records, {"json": {"email": "x@example.com"}}),
        ("GET", f"{acme.records}/{theirs['id']}", {}),
        ("PUT", f"{acme.records}/{theirs['id']}", {"json": {"email": "x@example.com"}}),
        ("PATCH", f"{acme.records}/{theirs['id']}", {"content": b"{}", "headers": MERGE_PATCH}),
        ("DELETE", f"{acme.records}/{theirs['id']}", {}),
    ):
        _problem(globex.call(method, path, **kwargs), 404)
    assert acme.call("GET", f"{acme.records}/{theirs['id']}").status_code == 200


def test_reads_are_audited_unless_the_collection_opts_out(acme):
    record = acme.create({"email": "audited@example.com"}).json()
    one = f"{acme.records}/{record['id']}"
    audit = "/api/v1/tenants/acme/audit"

    def reads():
        events = acme.call("GET", audit, params={"action": "record.read", "limit": 200})
        assert events.status_code == 200, events.text
        return [e for e in events.json()["items"] if e["target"] == f"customers/{record['id']}"]

    assert acme.call("GET", one).status_code == 200
    assert len(reads()) == 1
    assert (
        acme.call("PATCH", f"{acme.base}/customers", json={"audit_reads": False}).status_code == 200
    )
    assert acme.call("GET", one).status_code == 200
    assert len(reads()) == 1
    assert (
        acme.call("PATCH", f"{acme.base}/customers", json={"audit_reads": True}).status_code == 200
    )
    listed = acme.call("GET", audit, params={"action": "records.listed"})
    before = len(listed.json()["items"])
    acme.call("GET", acme.records)
    assert len(acme.call("GET", audit, params={"action": "records.listed"}).json()["items"]) == (
        before + 1
    )


def test_concurrent_writers_with_a_stale_etag_get_412(server, acme):
    record = acme.create({"email": "race@example.com", "seats": 1}).json()
    one = f"{acme.records}/{record['id']}"
    writers = 4
    start = threading.Barrier(writers)
    statuses = []

    def write(seats):
        with httpx.Client(base_url=server.base_url, verify=server.ssl_context(), timeout=30) as c:
            start.wait()
            response = c.put(
                one,
                json={"email": "race@example.com", "seats": seats},
                headers={**acme.headers, "If-Match": record["etag"]},
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=write, args=(n + 2,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [412] * (writers - 1)
    final = acme.call("GET", one).json()
    assert final["etag"] == '"v2"'
