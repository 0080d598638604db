"""Access reviews on SQLite and PostgreSQL: members with address, role, second factor and last
login; API keys with last use; stale entries after 90 days; CSV safe for spreadsheets; audited."""

import csv
import io
from datetime import timedelta

import pytest

from bastion.access import Role, TenantNotFound
from bastion.access.models import ApiKeyRow
from bastion.access.review import as_csv, as_json
from bastion.kernel.ids import new_id
from tests.support.governance import PASSWORD, make_stack
from tests.support.identity import CLIENT


@pytest.fixture
def stack(rig, audit_log):
    return make_stack(rig, audit_log)


def _review(stack, ref, actor=None):
    with stack.rig.uow.begin() as session:
        return stack.governance.reviews.review(
            session, tenant_ref=ref, actor=actor, client=CLIENT, export_format="json"
        )


def test_the_review_lists_members_keys_and_stale_entries_and_is_audited(stack):
    ann, bob = stack.user("ann"), stack.user("bob")
    stack.enrol_second_factor(ann)
    with stack.rig.uow.begin() as session:
        tenant = stack.access.create_tenant(
            session, user_id=ann, name="Acme", slug="acme", client=CLIENT
        )
    with stack.edge() as session:
        owner = stack.access.resolve(session, user_id=ann, tenant_ref="acme")
        stack.access.add_member(session, owner, user_id=bob, role=Role.MEMBER, client=CLIENT)
        stack.governance.roles.create(
            session,
            owner,
            name="analyst",
            description=None,
            permissions=["records:record:read"],
            client=CLIENT,
        )
    with stack.edge() as session:
        stack.governance.roles.assign(session, owner, user_id=bob, role="analyst", client=CLIENT)
        now = stack.rig.clock.now()
        session.add(
            ApiKeyRow(
                id=new_id(),
                tenant_id=tenant.id,
                user_id=bob,
                name='=HYPERLINK("x")',
                token_hash=b"\x01" * 32,
                tail="abcd",
                permissions=["records:record:read"],
                created_at=now,
                expires_at=now + timedelta(days=365),
            )
        )
    with stack.rig.uow.begin() as session:
        stack.rig.identity.login(session, email="bob@example.com", password=PASSWORD, client=CLIENT)

    review = _review(stack, "acme", actor=ann)
    members = {m.user_id: m for m in review.members}
    assert members[ann].email == "ann@example.com"
    assert (members[ann].role, members[ann].has_second_factor) == ("owner", True)
    assert members[ann].last_login_at is None
    assert (members[bob].custom_role, members[bob].has_second_factor) == ("analyst", False)
    assert members[bob].last_login_at == stack.rig.clock.now()
    assert not any(m.stale for m in review.members)
    [key] = review.api_keys
    assert (key.user_id, key.last_used_at, key.stale) == (bob, None, False)

    [event] = stack.actions(tenant.id, "access_review.read")
    assert event.details == {"format": "json", "members": 2, "api_keys": 1}
    assert event.actor == stack.audit_log.pseudonym_for(ann)

    # 91 days on: ann never logged in and the key was never used; bob logs in again.
    stack.rig.advance(days=91)
    with stack.rig.uow.begin() as session:
        stack.rig.identity.login(session, email="bob@example.com", password=PASSWORD, client=CLIENT)
    review = _review(stack, tenant.id)
    stale = {m.user_id: m.stale for m in review.members}
    assert stale == {ann: True, bob: False}
    assert review.api_keys[0].stale is True

    document = as_json(review)
    assert document["tenant"] == {"id": tenant.id, "slug": "acme"}
    assert document["stale_after_days"] == 90
    rows = list(csv.DictReader(io.StringIO(as_csv(review))))
    assert [row["kind"] for row in rows] == ["member", "member", "api_key"]
    key_row = rows[2]
    assert key_row["key_name"].startswith("'=")  # never a live formula in a spreadsheet
    assert key_row["email"] == "bob@example.com"
    assert key_row["stale"] == "yes"


def test_unknown_tenants_have_no_review_and_last_owners_are_named(stack):
    with pytest.raises(TenantNotFound):
        _review(stack, "no-such-tenant")
    ann, bob = stack.user("ann"), stack.user("bob")
    with stack.rig.uow.begin() as session:
        stack.access.create_tenant(session, user_id=ann, name="A", slug="acme", client=CLIENT)
    with stack.rig.uow.begin() as session:
        directory = stack.governance.directory
        assert directory.user_id_for_email(session, "ANN@example.com") == ann
        assert directory.user_id_for_email(session, "not an address") is None
        assert [t.slug for t in stack.access.sole_owner_tenants(session, ann)] == ["acme"]
        owner = stack.access.resolve(session, user_id=ann, tenant_ref="acme")
        stack.access.add_member(session, owner, user_id=bob, role=Role.OWNER, client=CLIENT)
    with stack.rig.uow.begin() as session:
        assert stack.access.sole_owner_tenants(session, ann) == []
