"""Tenant-bound API keys on SQLite and PostgreSQL: hashing, scoping, narrowing to the creator's
current role, expiry, and revocation by every path that must kill them."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from bastion.access import (
    InvitationInvalid,
    Permission,
    Role,
    SqlAccess,
    SqlApiKeys,
    TenantNotFound,
)
from bastion.access.api_key_errors import (
    ApiKeyCannotCreateKeys,
    ApiKeyExpiryInvalid,
    ApiKeyNotFound,
    ApiKeyOtherTenant,
    ApiKeyPermissionInvalid,
    ApiKeyRefused,
    TooManyApiKeys,
)
from bastion.access.models import ApiKeyRow
from bastion.access.permissions import permissions_of
from bastion.audit import AuditFilter, AuditLog, AuditQuery
from bastion.db import UnitOfWork, bind_user, make_engine
from bastion.errors import AppError
from bastion.identity import NotAuthenticated
from bastion.kernel.clock import FrozenClock
from bastion.kernel.ids import token_digest
from bastion.settings import AuditSettings
from tests.support.identity import CLIENT, last_token, make_keyring, make_rig
from tests.support.rls import app_role

PASSWORD = "correct horse battery staple"
READ = [Permission.MEMBER_READ.value]
# Refusals of bad input touch no backend-specific code: SQLite is enough for them.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def clock():
    return FrozenClock(datetime(2026, 11, 22, 10, 0, tzinfo=UTC))


@pytest.fixture
def keyring(engine, tmp_path):
    return make_keyring(engine, tmp_path / "master.key")


@pytest.fixture
def audit_log(keyring, clock):
    return AuditLog(pseudonymizer=keyring, clock=clock, settings=AuditSettings())


@pytest.fixture
def keys(audit_log, clock):
    return SqlApiKeys(audit_log=audit_log, clock=clock)


@pytest.fixture
def rig(engine, tmp_path, keyring, keys, clock):
    return make_rig(
        engine, tmp_path / "mail", keyring=keyring, clock=clock, credential_revokers=(keys,)
    )


@pytest.fixture
def access(rig, audit_log, clock):
    return SqlAccess(keys=rig.keyring, audit_log=audit_log, clock=clock)


class World:
    def __init__(self, rig, access, keys, audit_log):
        self.rig, self.access, self.keys, self.audit_log = rig, access, keys, audit_log

    def user(self, name):
        with self.rig.uow.begin() as session:
            return self.rig.identity.signup(
                session, email=f"{name}@example.com", password=PASSWORD, name=None, client=CLIENT
            ).id

    def tenant(self, owner, slug):
        with self.rig.uow.begin() as session:
            return self.access.create_tenant(
                session, user_id=owner, name=slug, slug=slug, client=CLIENT
            )

    def add(self, tenant, owner, user, role):
        with self.rig.uow.begin() as session:
            context = self.access.resolve(session, user_id=owner, tenant_ref=tenant.id)
            self.access.add_member(session, context, user_id=user, role=role, client=CLIENT)

    def context(self, session, user, tenant):
        return self.access.resolve(session, user_id=user, tenant_ref=tenant.id)

    def create(self, user, tenant, permissions=READ, **expiry):
        expiry = {"expires_at": None, "expires_in_days": None, **expiry}
        with self.rig.uow.begin() as session:
            return self.keys.create(
                session,
                self.context(session, user, tenant),
                name="ci",
                permissions=permissions,
                client=CLIENT,
                **expiry,
            )

    def use(self, secret, tenant_ref):
        """What requires() does with a key (authenticate, resolve, narrow), committing an
        audited refusal as the edge does."""
        refusal = None
        with self.rig.uow.begin() as session:
            try:
                principal = self.keys.authenticate(session, token=secret, client=CLIENT)
                context = self.access.resolve(
                    session, user_id=principal.user_id, tenant_ref=tenant_ref
                )
                return self.keys.narrow(session, context, principal, client=CLIENT)
            except AppError as exc:
                if not exc.audited_refusal:
                    raise
                refusal = exc
        raise refusal

    def actions(self, tenant, prefix):
        with self.rig.uow.begin() as session:
            page = AuditQuery(audit_log=self.audit_log).search(
                session, tenant.id, AuditFilter(action=prefix)
            )
        return list(reversed(page.items))


@pytest.fixture
def world(rig, access, keys, audit_log):
    return World(rig, access, keys, audit_log)


def test_a_key_is_shown_once_stored_as_a_digest_and_acts_within_its_tenant(world, engine):
    ann = world.user("ann")
    acme = world.tenant(ann, "acme")
    issued = world.create(ann, acme, permissions=[*READ, Permission.AUDIT_EVENT_READ.value])
    assert issued.secret.startswith("bst_")
    assert len(issued.secret) == 47
    assert issued.secret not in repr(issued)
    assert issued.key.tail == issued.secret[-4:]
    context = world.use(issued.secret, acme.slug)
    assert context.tenant_id == acme.id
    assert context.api_key_id == issued.key.id
    assert context.has_permission(Permission.MEMBER_READ)
    assert context.has_permission(Permission.AUDIT_EVENT_READ)
    # The owner could remove members; the key was not given that.
    assert not context.has_permission(Permission.MEMBER_REMOVE)
    secret_part = issued.secret.removeprefix("bst_")
    with engine.connect() as connection:
        (row,) = connection.execute(select(ApiKeyRow.__table__)).all()
        assert row.token_hash == token_digest(issued.secret)
        everything = repr(list(row)) + repr(
            connection.execute(text("SELECT * FROM audit_events")).all()
        )
    assert secret_part not in everything
    assert secret_part[:20] not in everything
    created = world.actions(acme, "access.api_key_created")
    assert created[0].target == issued.key.id
    assert set(created[0].details) == {"permissions", "expires_at"}

    # The last use is written at most once a minute (the use above wrote the first one).
    def last_used():
        with engine.connect() as connection:
            return connection.execute(select(ApiKeyRow.last_used_at)).scalar_one()

    first = last_used()
    assert first is not None
    world.rig.advance(seconds=30)
    world.use(issued.secret, acme.id)
    assert last_used() == first
    world.rig.advance(seconds=31)
    world.use(issued.secret, acme.id)
    assert last_used() != first


def test_revoked_expired_and_unknown_keys_get_the_same_401_and_refusals_are_audited(
    world, keys, rig
):
    ann = world.user("ann")
    acme = world.tenant(ann, "acme")
    doomed = world.create(ann, acme)
    short = world.create(ann, acme, expires_in_days=1)
    with rig.uow.begin() as session:
        keys.revoke(session, world.context(session, ann, acme), key_id=doomed.key.id, client=CLIENT)
    with pytest.raises(ApiKeyRefused) as revoked:
        world.use(doomed.secret, acme.id)
    assert isinstance(revoked.value, NotAuthenticated)
    world.use(short.secret, acme.id)
    rig.advance(days=1)
    with pytest.raises(ApiKeyRefused) as expired:
        world.use(short.secret, acme.id)
    unknown = "bst_" + "A" * 43
    with pytest.raises(NotAuthenticated) as missing:
        world.use(unknown, acme.id)
    assert not isinstance(missing.value, ApiKeyRefused)
    answers = {(e.value.code, e.value.detail) for e in (revoked, expired, missing)}
    assert len(answers) == 1
    refused = world.actions(acme, "access.api_key_refused")
    assert [(r.target, r.details["reason"]) for r in refused] == [
        (doomed.key.id, "revoked"),
        (short.key.id, "expired"),
    ]
    # Revoking twice: the key is gone.
    with rig.uow.begin() as session, pytest.raises(ApiKeyNotFound):
        keys.revoke(session, world.context(session, ann, acme), key_id=doomed.key.id, client=CLIENT)


def test_a_key_of_a_disabled_account_is_refused_even_if_it_was_not_revoked(world, engine):
    ann = world.user("ann")
    acme = world.tenant(ann, "acme")
    issued = world.create(ann, acme)
    world.use(issued.secret, acme.id)
    # A disable path that forgot to revoke keys (every real one revokes them in its transaction).
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE users SET disabled_at = :now WHERE id = :id"),
            {"now": world.rig.clock.now(), "id": ann},
        )
    with pytest.raises(ApiKeyRefused):
        world.use(issued.secret, acme.id)
    refused = world.actions(acme, "access.api_key_refused")
    assert [(r.target, r.details["reason"]) for r in refused] == [
        (issued.key.id, "account_disabled")
    ]


def test_a_key_on_another_tenant_of_its_creator_is_not_found_and_audited(world):
    ann = world.user("ann")
    acme, globex = world.tenant(ann, "acme"), world.tenant(ann, "globex")
    issued = world.create(ann, acme)
    for ref in (globex.id, globex.slug):
        with pytest.raises(ApiKeyOtherTenant) as refused:
            world.use(issued.secret, ref)
        assert isinstance(refused.value, TenantNotFound)
        assert refused.value.code == TenantNotFound.code
    assert [r.details for r in world.actions(acme, "access.api_key_refused")] == [
        {"reason": "other_tenant"}
    ] * 2
    assert world.actions(globex, "access.api_key_refused") == []


@SQLITE_ONLY
def test_a_key_gets_only_known_permissions_its_creator_holds(world, engine):
    ann, bob = world.user("ann"), world.user("bob")
    acme = world.tenant(ann, "acme")
    world.add(acme, ann, bob, Role.MEMBER)
    for permissions, named in (
        (["access:member:remove"], "access:member:remove"),
        (["records:record:read", "no:such:thing"], "no:such:thing"),
        ([], None),
    ):
        with pytest.raises(ApiKeyPermissionInvalid) as refused:
            world.create(bob, acme, permissions=permissions)
        assert refused.value.details.get("permission") == named
        if named:
            assert named in refused.value.detail
    # Not even an owner's key may approve an operator's break-glass access.
    with pytest.raises(ApiKeyPermissionInvalid) as refused:
        world.create(ann, acme, permissions=[Permission.BREAK_GLASS_APPROVE.value])
    assert refused.value.details["permission"] == Permission.BREAK_GLASS_APPROVE.value
    with engine.connect() as connection:
        assert connection.execute(select(ApiKeyRow.id)).all() == []


@SQLITE_ONLY
def test_bad_expiries_are_refused(world, engine):
    ann = world.user("ann")
    acme = world.tenant(ann, "acme")
    for expiry in (
        {"expires_in_days": 366},
        {"expires_in_days": 0},
        {"expires_at": datetime(2027, 11, 23, 10, 0, tzinfo=UTC)},  # over 365 days
        {"expires_at": datetime(2026, 11, 22, 9, 0, tzinfo=UTC)},  # past
        {"expires_at": datetime(2026, 12, 1, 10, 0)},  # no time zone
        {"expires_at": datetime(2026, 12, 1, 10, 0, tzinfo=UTC), "expires_in_days": 3},
    ):
        with pytest.raises(ApiKeyExpiryInvalid):
            world.create(ann, acme, **expiry)
    with engine.connect() as connection:
        assert connection.execute(select(ApiKeyRow.id)).all() == []


def test_expiry_defaults_to_90_days_and_accepts_an_exact_time(world, clock):
    ann = world.user("ann")
    acme = world.tenant(ann, "acme")
    default = world.create(ann, acme).key
    assert default.expires_at - clock.now() == timedelta(days=90)
    at = datetime(2027, 1, 2, 3, 4, tzinfo=UTC)
    assert world.create(ann, acme, expires_at=at).key.expires_at == at


def test_lowering_the_creators_role_shrinks_the_key_on_its_next_use(world, rig):
    ann, bob = world.user("ann"), world.user("bob")
    acme = world.tenant(ann, "acme")
    world.add(acme, ann, bob, Role.ADMIN)
    issued = world.create(bob, acme, permissions=[*READ, Permission.INVITATION_READ.value])
    assert world.use(issued.secret, acme.id).has_permission(Permission.INVITATION_READ)
    with rig.uow.begin() as session:
        context = world.context(session, ann, acme)
        world.access.change_role(session, context, user_id=bob, role=Role.VIEWER, client=CLIENT)
    narrowed = world.use(issued.secret, acme.id)
    assert not narrowed.has_permission(Permission.INVITATION_READ)
    assert narrowed.has_permission(Permission.MEMBER_READ)
    # Raising the role back never lets the key exceed what it was given.
    with rig.uow.begin() as session:
        context = world.context(session, ann, acme)
        world.access.change_role(session, context, user_id=bob, role=Role.OWNER, client=CLIENT)
    assert world.use(issued.secret, acme.id).permissions == {
        Permission.MEMBER_READ,
        Permission.INVITATION_READ,
    }


def test_removing_the_creator_revokes_their_keys_of_that_tenant_only(world, rig):
    ann, bob = world.user("ann"), world.user("bob")
    acme, globex = world.tenant(ann, "acme"), world.tenant(bob, "globex")
    world.add(acme, ann, bob, Role.MEMBER)
    in_acme = world.create(bob, acme)
    in_globex = world.create(bob, globex)
    with rig.uow.begin() as session:
        context = world.context(session, ann, acme)
        world.access.remove_member(session, context, user_id=bob, client=CLIENT)
    with pytest.raises(ApiKeyRefused):
        world.use(in_acme.secret, acme.id)
    world.add(acme, ann, bob, Role.MEMBER)  # coming back does not revive the key
    with pytest.raises(ApiKeyRefused):
        world.use(in_acme.secret, acme.id)
    assert world.use(in_globex.secret, globex.id).tenant_id == globex.id
    (removed,) = world.actions(acme, "access.member_removed")
    assert removed.details["api_keys_revoked"] == 1


def _sign_in(rig, name):
    with rig.uow.begin() as session:
        issued = rig.identity.login(
            session, email=f"{name}@example.com", password=PASSWORD, client=CLIENT
        )
    with rig.uow.begin() as session:
        return rig.identity.authenticate(session, token=issued.token, via_cookie=False)


def _revoke_all(rig, name):
    principal = _sign_in(rig, name)
    with rig.uow.begin() as session:
        rig.identity.revoke_all_sessions(session, principal=principal, client=CLIENT)


def _disable(rig, name):
    with rig.uow.begin() as session:
        rig.identity.disable_user(
            session, email=f"{name}@example.com", actor_user_id=None, client=CLIENT
        )


def _reset(rig, name):
    with rig.uow.begin() as session:
        rig.identity.request_password_reset(session, email=f"{name}@example.com", client=CLIENT)
    token = last_token(rig.mail_dir, to=f"{name}@example.com", subject_contains="Reset")
    with rig.uow.begin() as session:
        rig.identity.reset_password(
            session, token=token, password="an entirely new passphrase", client=CLIENT
        )


def test_revoke_all_disable_and_password_reset_kill_every_key_of_the_user(world, rig):
    ann = world.user("ann")
    acme, globex = world.tenant(ann, "acme"), world.tenant(ann, "globex")
    anns = world.create(ann, acme)
    for name, kill, reason in (
        ("bob", _revoke_all, "sessions_revoked"),
        ("cat", _disable, "user_disabled"),
        ("dan", _reset, "password_reset"),
    ):
        user = world.user(name)
        world.add(acme, ann, user, Role.MEMBER)
        world.add(globex, ann, user, Role.MEMBER)
        theirs = [world.create(user, acme), world.create(user, globex)]
        kill(rig, name)
        for issued, tenant in zip(theirs, (acme, globex), strict=True):
            with pytest.raises(ApiKeyRefused):
                world.use(issued.secret, tenant.id)
            revoked = world.actions(tenant, "access.api_key_revoked")
            assert (revoked[-1].target, revoked[-1].details) == (
                issued.key.id,
                {"reason": reason},
            )
        counted = [e for e in rig.audit.events if "api_keys_revoked" in e.details]
        assert counted[-1].details["api_keys_revoked"] == 2
    assert world.use(anns.secret, acme.id).user_id == ann


def test_members_see_and_revoke_their_own_keys_admins_everyones_but_an_owners(world, rig):
    ann, bob, cat = world.user("ann"), world.user("bob"), world.user("cat")
    acme = world.tenant(ann, "acme")
    world.add(acme, ann, bob, Role.ADMIN)
    world.add(acme, ann, cat, Role.MEMBER)
    owner_key, admin_key, member_key = (world.create(u, acme) for u in (ann, bob, cat))

    def listed(user):
        with rig.uow.begin() as session:
            found = world.keys.list_keys(
                session, world.context(session, user, acme), after=None, limit=50
            )
        return {k.id for k in found}

    def revoke(user, issued):
        with rig.uow.begin() as session:
            world.keys.revoke(
                session, world.context(session, user, acme), key_id=issued.key.id, client=CLIENT
            )

    assert listed(cat) == {member_key.key.id}
    everyone = {owner_key.key.id, admin_key.key.id, member_key.key.id}
    assert listed(bob) == listed(ann) == everyone
    for victim in (owner_key, admin_key):
        with pytest.raises(ApiKeyNotFound):
            revoke(cat, victim)
    with pytest.raises(ApiKeyNotFound):
        revoke(bob, owner_key)  # an admin cannot cut an owner's key
    revoke(bob, member_key)
    revoke(ann, admin_key)
    assert listed(ann) == {owner_key.key.id}
    world.use(owner_key.secret, acme.id)


@SQLITE_ONLY
def test_a_key_cannot_mint_keys_and_members_have_a_cap(world, rig, monkeypatch):
    ann = world.user("ann")
    acme = world.tenant(ann, "acme")
    issued = world.create(ann, acme, permissions=[Permission.API_KEY_MANAGE.value])
    context = world.use(issued.secret, acme.id)
    with rig.uow.begin() as session, pytest.raises(ApiKeyCannotCreateKeys):
        world.keys.create(
            session,
            context,
            name="child",
            permissions=READ,
            expires_at=None,
            expires_in_days=None,
            client=CLIENT,
        )
    monkeypatch.setattr("bastion.access.api_keys.MAX_LIVE_KEYS_PER_MEMBER", 2)
    world.create(ann, acme)
    with pytest.raises(TooManyApiKeys):
        world.create(ann, acme)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_under_row_level_security_a_key_authenticates_and_dies_with_its_user(
    world, database_url, clock
):
    """The request path's application role (no BYPASSRLS): the key is found by its digest before
    any tenant is known, and a reset revokes the user's keys in every tenant."""
    ann, bob = world.user("ann"), world.user("bob")
    acme, globex = world.tenant(ann, "acme"), world.tenant(ann, "globex")
    world.add(acme, ann, bob, Role.MEMBER)
    world.add(globex, ann, bob, Role.MEMBER)
    issued = [world.create(bob, acme), world.create(bob, globex)]
    role = app_role(database_url)
    app = make_engine(role.url)
    try:
        requests = UnitOfWork(app)
        with requests.begin() as session:
            assert session.execute(text("SELECT count(*) FROM api_keys")).scalar_one() == 0
        with requests.begin() as session:
            principal = world.keys.authenticate(session, token=issued[0].secret, client=CLIENT)
            bind_user(session, principal.user_id)
            context = world.access.resolve(session, user_id=bob, tenant_ref="acme")
            narrowed = world.keys.narrow(session, context, principal, client=CLIENT)
            assert narrowed.has_permission(Permission.MEMBER_READ)
        with requests.begin() as session:
            revoked = world.keys.revoke_user_credentials(
                session,
                user_id=bob,
                now=clock.now(),
                reason="password_reset",
                actor_user_id=bob,
                client=CLIENT,
            )
        assert revoked == 2
    finally:
        app.dispose()
        role.drop()
    for key, tenant in zip(issued, (acme, globex), strict=True):
        with pytest.raises(ApiKeyRefused):
            world.use(key.secret, tenant.id)


def test_an_invitation_sent_with_a_key_dies_with_the_key(world, rig, invitations, tmp_path):
    """Red team: a leaked key invites an address its holder controls; revoking the key (or its
    expiry) must withdraw that invitation too, or the holder walks in after the revocation."""
    ann = world.user("ann")
    acme = world.tenant(ann, "acme")
    # A key grants only roles whose permissions it holds itself: the viewer's, and inviting.
    invite = sorted({*(p.value for p in permissions_of(Role.VIEWER)), "access:invitation:create"})
    revoked_key = world.create(ann, acme, permissions=invite)
    expiring_key = world.create(ann, acme, permissions=invite, expires_in_days=1)
    live_key = world.create(ann, acme, permissions=invite)
    for issued, address in (
        (revoked_key, "leak@example.com"),
        (expiring_key, "late@example.com"),
        (live_key, "kept@example.com"),
    ):
        context = world.use(issued.secret, acme.id)
        with rig.uow.begin() as session:
            invitations.invite(session, context, email=address, role=Role.VIEWER, client=CLIENT)
    with rig.uow.begin() as session:
        world.keys.revoke(
            session, world.context(session, ann, acme), key_id=revoked_key.key.id, client=CLIENT
        )
    rig.advance(seconds=2 * 86_400)  # the 1-day key has expired; invitations last 7 days

    def accept(name):
        user = world.user(name)
        token = last_token(tmp_path / "in", to=f"{name}@example.com", subject_contains="acme")
        with rig.uow.begin() as session:
            return invitations.accept(
                session, token=token, user_id=user, email=f"{name}@example.com", client=CLIENT
            )

    for name in ("leak", "late"):
        with pytest.raises(InvitationInvalid):
            accept(name)
    assert accept("kept").role is Role.VIEWER
