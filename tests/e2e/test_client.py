"""``bastion.client`` against a real ``bastion serve`` over verified TLS."""

from __future__ import annotations

import io
import json
import time

import pyotp
import pytest

from bastion.client import (
    AuthenticationFailed,
    BadRequest,
    BastionClient,
    Conflict,
    Forbidden,
    MfaRequired,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ProblemError,
    TransportError,
    ValidationFailed,
)
from tests.support.identity import CHEAP_ARGON2_ENV, last_token
from tests.support.server import ServerProcess, free_port

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("client") / "data", env=CHEAP_ARGON2_ENV)
    process.init()
    process.start()
    yield process
    process.stop()


def _client(server: ServerProcess, token: str | None = None) -> BastionClient:
    return BastionClient(server.base_url, verify=server.cert_file, token=token)


def _signed_up(server: ServerProcess, email: str) -> tuple[BastionClient, str]:
    client = _client(server)
    user_id = client.signup(email, PASSWORD)
    client.login(email, PASSWORD)
    return client, user_id


def _mail_token(server: ServerProcess, *, to: str, subject_contains: str) -> str:
    # Mail may be delivered by a background job: wait for it, boundedly.
    deadline = time.monotonic() + 15
    while True:
        try:
            return last_token(server.data_dir / "mail", to=to, subject_contains=subject_contains)
        except (AssertionError, FileNotFoundError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_sign_up_sign_in_and_sign_out(server):
    client, user_id = _signed_up(server, "client-basic@example.com")
    with client:
        me = client.me()
        assert (me.id, me.email, me.mfa_enabled) == (user_id, "client-basic@example.com", False)
        assert [s.current for s in client.sessions()] == [True]
        token = client.token
        client.logout()
        assert client.token is None
        client.use_token(token)
        with pytest.raises(AuthenticationFailed) as refused:
            client.me()
        assert refused.value.status == 401
        assert refused.value.request_id


def test_a_wrong_password_is_a_typed_problem_with_the_servers_fields(server):
    _signed_up(server, "client-wrong@example.com")[0].close()
    with _client(server) as client, pytest.raises(AuthenticationFailed) as refused:
        client.login("client-wrong@example.com", "not the password at all")
    assert not isinstance(refused.value, MfaRequired)
    assert refused.value.type.startswith("https://")
    assert refused.value.code
    assert client.token is None


def test_the_mfa_step_with_a_code_callback_and_a_spent_recovery_code(server):
    client, _ = _signed_up(server, "client-mfa@example.com")
    with client:
        enrolment = client.begin_totp()
        recovery = client.confirm_totp(pyotp.TOTP(enrolment.secret).now())
        assert len(recovery) == 10
        client.logout()

        with pytest.raises(MfaRequired) as challenge:
            client.login("client-mfa@example.com", PASSWORD)
        assert challenge.value.mfa_token
        session = client.complete_mfa(challenge.value.mfa_token, recovery[0])
        assert client.token == session.token
        assert client.me().mfa_enabled

        asked: list[str] = []

        def code() -> str:
            asked.append("code")
            return recovery[1]

        client.login("client-mfa@example.com", PASSWORD, mfa_code=code)
        assert asked == ["code"]

        with pytest.raises(AuthenticationFailed):  # a recovery code works once
            client.login("client-mfa@example.com", PASSWORD, mfa_code=recovery[0])


def test_tenants_members_and_their_refusals(server):
    owner, _ = _signed_up(server, "client-owner@example.com")
    member, member_id = _signed_up(server, "client-member@example.com")
    stranger, _ = _signed_up(server, "client-stranger@example.com")
    with owner, member, stranger:
        tenant = owner.create_tenant("Client Co", "client-co")
        assert (tenant.slug, tenant.role) == ("client-co", "owner")
        assert [t.slug for t in owner.tenants()] == ["client-co"]

        added = owner.add_member("client-co", member_id, "viewer")
        assert added.role == "viewer"
        assert member.tenant("client-co").role == "viewer"
        assert owner.change_role("client-co", member_id, "admin").role == "admin"
        assert {m.role for m in owner.members("client-co")} == {"owner", "admin"}

        with pytest.raises(NotFound) as hidden:
            stranger.tenant("client-co")
        assert hidden.value.code == "access.tenant_not_found"
        with pytest.raises(NotFound):
            stranger.members(tenant.id)
        with pytest.raises(Forbidden):
            member.audit_events("client-co")
        owner_id = owner.me().id
        with pytest.raises(Conflict) as last_owner:
            owner.remove_member("client-co", owner_id)
        assert last_owner.value.code == "access.last_owner"
        with pytest.raises(ValidationFailed) as invalid:
            owner.create_tenant("Bad", "NOT a slug!")
        assert invalid.value.status == 422

        owner.remove_member("client-co", member_id)
        with pytest.raises(NotFound):
            member.tenant("client-co")


def test_an_id_cannot_escape_its_path_segment(server):
    client, _ = _signed_up(server, "client-escape@example.com")
    with client, pytest.raises(NotFound):
        # Unescaped, "../me" would resolve to /api/v1/me and answer 200.
        client.tenant("../me")


def test_invitations_and_acceptance(server):
    owner, _ = _signed_up(server, "client-inviter@example.com")
    invitee, _ = _signed_up(server, "client-invitee@example.com")
    with owner, invitee:
        owner.create_tenant("Invite Client", "invite-client")
        invitation = owner.invite("invite-client", "client-invitee@example.com", "member")
        assert invitation.role == "member"
        token = _mail_token(
            server, to="client-invitee@example.com", subject_contains="Invite Client"
        )
        joined = invitee.accept_invitation(token)
        assert (joined.slug, joined.role) == ("invite-client", "member")


def test_audit_events_and_a_verifiable_export(server):
    owner, _ = _signed_up(server, "client-auditor@example.com")
    with owner:
        owner.create_tenant("Audit Client", "audit-client")
        page = owner.audit_events("audit-client", action="access.")
        assert [e.action for e in page][-1] == "access.tenant_created"
        buffer = io.BytesIO()
        written = owner.export_audit("audit-client", buffer)
        lines = buffer.getvalue().decode().splitlines()
        assert written == len(buffer.getvalue()) > 0
        exported = [json.loads(line) for line in lines]
        assert "access.tenant_created" in {e.get("action") for e in exported}


def test_an_unreachable_server_is_a_transport_error():
    with (
        BastionClient(f"https://127.0.0.1:{free_port()}", timeout=2) as client,
        pytest.raises(TransportError),
    ):
        client.me()


def _with_second_factor(server: ServerProcess, email: str) -> tuple[BastionClient, list[str]]:
    client, _ = _signed_up(server, email)
    enrolment = client.begin_totp()
    return client, client.confirm_totp(pyotp.TOTP(enrolment.secret).now())


def test_api_keys_are_shown_once_work_for_their_tenant_and_stop_when_revoked(server):
    owner, recovery = _with_second_factor(server, "client-keys@example.com")
    with owner:
        owner.create_tenant("Keys Client", "keys-client")
        owner.create_collection("keys-client", "notes")
        owner.step_up(recovery[0])  # keys need a recent second factor
        with pytest.raises(ProblemError) as spent:
            owner.step_up(recovery[0])
        assert spent.value.status in {400, 401}
        created = owner.create_api_key(
            "keys-client", "ci", ["records:record:read", "records:collection:read"]
        )
        assert created.secret.startswith("bst_")
        assert created.secret not in repr(created)
        listed = owner.api_keys("keys-client")
        assert [k.id for k in listed] == [created.api_key.id]
        assert not hasattr(listed[0], "secret")

        with _client(server, token=created.secret) as robot:
            assert robot.records("keys-client", "notes").items == []
            with pytest.raises(Forbidden):  # outside the key's permissions
                robot.create_record("keys-client", "notes", {"text": "no"})
            owner.revoke_api_key("keys-client", created.api_key.id)
            with pytest.raises(AuthenticationFailed):
                robot.records("keys-client", "notes")


def test_records_round_trip_with_etags_merge_patch_filters_and_refusals(server):
    owner, _ = _signed_up(server, "client-records@example.com")
    with owner:
        owner.create_tenant("Records Client", "records-client")
        schema = {
            "type": "object",
            "properties": {"email": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["email"],
        }
        collection = owner.create_collection(
            "records-client", "people", schema=schema, indexed=["email"]
        )
        assert (collection.indexed, collection.audit_reads) == (("email",), True)

        ada = owner.create_record("records-client", "people", {"email": "ada@example.com"})
        owner.create_record("records-client", "people", {"email": "bob@example.com", "age": 3})
        read = owner.record("records-client", "people", ada.id)
        assert (read.data, read.etag) == ({"email": "ada@example.com"}, ada.etag)

        found = owner.records("records-client", "people", where={"email": "bob@example.com"})
        assert [r.data["age"] for r in found] == [3]
        assert len(list(owner.iter_records("records-client", "people"))) == 2

        patched = owner.patch_record(
            "records-client", "people", ada.id, {"age": 36}, if_match=ada.etag
        )
        assert patched.data == {"email": "ada@example.com", "age": 36}
        assert patched.etag != ada.etag
        with pytest.raises(PreconditionFailed):  # a writer holding the old version
            owner.replace_record(
                "records-client", "people", ada.id, {"email": "x@example.com"}, if_match=ada.etag
            )
        removed = owner.patch_record("records-client", "people", ada.id, {"age": None})
        assert removed.data == {"email": "ada@example.com"}

        with pytest.raises(ValidationFailed) as invalid:
            owner.create_record("records-client", "people", {"email": 7})
        assert any(e.get("pointer") == "/email" for e in invalid.value.errors), invalid.value.extra
        with pytest.raises(PayloadTooLarge):
            owner.create_record("records-client", "people", {"email": "x" * 2_000_000})
        with pytest.raises(BadRequest):
            owner.request(
                "POST",
                "/api/v1/tenants/records-client/collections/people/records",
                content=b"{not json",
                headers={"content-type": "application/json"},
            )
        assert len(list(owner.iter_records("records-client", "people"))) == 2

        owner.delete_record("records-client", "people", ada.id)
        with pytest.raises(NotFound):
            owner.record("records-client", "people", ada.id)
        stranger, _ = _signed_up(server, "client-records-stranger@example.com")
        with stranger, pytest.raises(NotFound):
            stranger.records("records-client", "people")
