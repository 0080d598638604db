"""Invitations by e-mail: single-use, expiring tokens that add their holder to a tenant.

The token goes only to the invited address (through the mail outbox); the database keeps its
SHA-256 digest and the address sealed under the system data key. Accepting needs a signed-in
account whose address is the invited one, so a forwarded or leaked token alone adds nobody.
Creating and accepting are audited on the tenant's chain (without the address: personal data
stays out of the append-only log).
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta
from typing import Final, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.access import repository
from bastion.access.errors import AlreadyMember, InvitationInvalid, InvitationNotFound
from bastion.access.models import ApiKeyRow, InvitationRow
from bastion.access.permissions import Permission, Role, permissions_of
from bastion.access.roles import load_role
from bastion.access.service import SqlAccess
from bastion.access.types import AccessAction, Invitation, TenantContext
from bastion.db import bind_tenant, bind_token_digest
from bastion.identity import ClientInfo, normalise_email
from bastion.kernel.clock import Clock, as_utc
from bastion.kernel.ids import new_id, new_token, token_digest
from bastion.mail import MailQueue, OutgoingMail

INVITATION_LIFETIME: Final = timedelta(days=7)
EMAIL_PURPOSE: Final = "access.invitation_email"
# Registered by bootstrap for system data-key re-encryption (``crypto.SystemSealedColumn``).
SYSTEM_SEALED: Final = ((InvitationRow.email_sealed, EMAIL_PURPOSE),)
MAX_TOKEN_CHARS: Final = 128
MAX_PAGE_SIZE: Final = 200


def _sender_may_still_grant(session: Session, row: InvitationRow, role: Role) -> bool:
    """Whether the invitation's sender could send it now: still a member holding
    MEMBER_INVITE, OWNER_MANAGE for an owner invitation, and (custom role) every permission of
    ``role`` itself: the rules of ``SqlAccess.authorize_grant``, read at acceptance."""
    sender = repository.member(session, row.tenant_id, row.invited_by) if row.invited_by else None
    if sender is None:
        return False
    try:
        held = permissions_of(Role(sender.role))
    except ValueError:
        return False  # a role this code does not know grants nothing
    if sender.custom_role_id is not None:
        custom = load_role(session, row.tenant_id, sender.custom_role_id)
        held = frozenset() if custom is None else custom.permissions
    if Permission.MEMBER_INVITE not in held:
        return False
    if role is Role.OWNER and Permission.OWNER_MANAGE not in held:
        return False
    return sender.custom_role_id is None or permissions_of(role) <= held


def _key_still_live(session: Session, row: InvitationRow, *, now: datetime) -> bool:
    """For an invitation sent through an API key: whether that key still works (neither
    revoked, with every path that revokes keys, nor expired). True for one sent from a
    session."""
    if row.invited_with_api_key is None:
        return True
    key = session.get(ApiKeyRow, row.invited_with_api_key)
    return (
        key is not None
        and key.tenant_id == row.tenant_id
        and key.revoked_at is None
        and as_utc(key.expires_at) > now
    )


class InvitationKeys(Protocol):
    """The keyring recipes invitations need (``crypto.Keyring`` satisfies it)."""

    def seal_system(self, *, purpose: str, record_id: str, plaintext: bytes) -> bytes: ...
    def open_system(self, *, purpose: str, record_id: str, sealed: bytes) -> bytes: ...


class SqlInvitations:
    """Invite by e-mail and accept, over the ``invitations`` table."""

    def __init__(
        self,
        *,
        access: SqlAccess,
        keys: InvitationKeys,
        outbox: MailQueue,
        clock: Clock,
        base_url: str,
    ) -> None:
        self._access = access
        self._keys = keys
        self._outbox = outbox
        self._clock = clock
        self._base_url = base_url.rstrip("/")

    def invite(
        self,
        session: Session,
        context: TenantContext,
        *,
        email: str,
        role: Role,
        client: ClientInfo,
    ) -> Invitation:
        """Mail a single-use invitation to ``email`` for ``role`` (owner needs OWNER_MANAGE).

        Raises InvalidEmail for a malformed address, PermissionDenied for an owner invitation
        by a non-owner. The mail is sent before the transaction commits: if the commit then
        fails, the mailed token is simply unknown.
        """
        # Owner needs OWNER_MANAGE; a custom-role inviter grants only what they hold.
        self._access.authorize_grant(session, context, role, client=client)
        address = normalise_email(email)
        now = self._clock.now()
        token = new_token()
        row = InvitationRow(
            id=new_id(),
            tenant_id=context.tenant_id,
            role=role.value,
            token_hash=token_digest(token),
            invited_by=context.user_id,
            invited_with_api_key=context.api_key_id,
            created_at=now,
            expires_at=now + INVITATION_LIFETIME,
        )
        row.email_sealed = self._keys.seal_system(
            purpose=EMAIL_PURPOSE, record_id=row.id, plaintext=address.value.encode("utf-8")
        )
        session.add(row)
        session.flush()
        self._access.record(
            session,
            context,
            AccessAction.INVITATION_CREATED,
            target=row.id,
            client=client,
            details={"role": role.value},
        )
        # Queued in this transaction (mail.queue): delivered after the commit, never by the request.
        self._outbox.send(session, self._mail(address.value, context, token, role), now=now)
        return Invitation(id=row.id, email=address.value, role=role, expires_at=row.expires_at)

    def accept(
        self, session: Session, *, token: str, user_id: str, email: str, client: ClientInfo
    ) -> TenantContext:
        """Join the invitation's tenant with its role; the token then never works again.

        ``email`` is the signed-in account's address. InvitationInvalid for an unknown, used or
        expired token or another address; AlreadyMember if the account is already in.
        """
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvitationInvalid
        digest = token_digest(token)
        bind_token_digest(session, digest)  # row-level security: holding the token shows its row
        row = session.scalars(
            select(InvitationRow).where(InvitationRow.token_hash == digest).with_for_update()
        ).one_or_none()
        now = self._clock.now()
        if (
            row is None
            or not hmac.compare_digest(row.token_hash, digest)
            or row.accepted_at is not None
            or as_utc(row.expires_at) <= now
        ):
            raise InvitationInvalid
        invited = self._keys.open_system(
            purpose=EMAIL_PURPOSE, record_id=row.id, sealed=row.email_sealed
        ).decode("utf-8")
        if normalise_email(invited).lookup_key != normalise_email(email).lookup_key:
            raise InvitationInvalid
        bind_tenant(session, row.tenant_id)
        if repository.member(session, row.tenant_id, user_id) is not None:
            raise AlreadyMember
        role = Role(row.role)
        if not _sender_may_still_grant(session, row, role) or not _key_still_live(
            session, row, now=now
        ):
            # Sent by someone since demoted (or gone), or through an API key since revoked or
            # expired: it must not hand out what they no longer could. The same answer as any
            # dead invitation.
            raise InvitationInvalid
        try:
            with session.begin_nested():
                repository.add_membership(
                    session, row.tenant_id, user_id=user_id, role=role, now=now
                )
        except IntegrityError:
            # The same account accepting twice at once (SQLite ignores the row lock above):
            # the membership's primary key lets one through; the other is told it is in.
            raise AlreadyMember from None
        row.accepted_at = now
        row.accepted_by = user_id
        session.flush()
        context = self._access.resolve(session, user_id=user_id, tenant_ref=row.tenant_id)
        self._access.record(
            session,
            context,
            AccessAction.INVITATION_ACCEPTED,
            target=row.id,
            client=client,
            details={"role": role.value},
        )
        return context

    def pending(
        self, session: Session, context: TenantContext, *, after: str | None, limit: int
    ) -> list[Invitation]:
        """The tenant's invitations not yet accepted nor expired, by id after ``after``."""
        statement = select(InvitationRow).where(
            InvitationRow.tenant_id == context.tenant_id,
            InvitationRow.accepted_at.is_(None),
            InvitationRow.expires_at > self._clock.now(),
        )
        if after is not None:
            statement = statement.where(InvitationRow.id > after)
        size = max(1, min(limit, MAX_PAGE_SIZE))
        rows = session.scalars(statement.order_by(InvitationRow.id).limit(size))
        return [self._invitation(row) for row in rows]

    def revoke(
        self, session: Session, context: TenantContext, *, invitation_id: str, client: ClientInfo
    ) -> None:
        """Withdraw a pending invitation: its token stops working at once. InvitationNotFound
        for an unknown id, another tenant's, or one already accepted."""
        row = session.scalars(
            select(InvitationRow).where(
                InvitationRow.tenant_id == context.tenant_id,
                InvitationRow.id == invitation_id,
                InvitationRow.accepted_at.is_(None),
            )
        ).one_or_none()
        if row is None:
            raise InvitationNotFound
        role = row.role
        session.delete(row)
        session.flush()
        self._access.record(
            session,
            context,
            AccessAction.INVITATION_REVOKED,
            target=invitation_id,
            client=client,
            details={"role": role},
        )

    def _invitation(self, row: InvitationRow) -> Invitation:
        email = self._keys.open_system(
            purpose=EMAIL_PURPOSE, record_id=row.id, sealed=row.email_sealed
        ).decode("utf-8")
        return Invitation(
            id=row.id, email=email, role=Role(row.role), expires_at=as_utc(row.expires_at)
        )

    def _mail(self, to: str, context: TenantContext, token: str, role: Role) -> OutgoingMail:
        days = INVITATION_LIFETIME.days
        return OutgoingMail(
            to_address=to,
            # A tenant name is up to 200 characters; the subject must stay within the mail limit.
            subject=f"You are invited to join {context.tenant.name[:120]} on Bastion",
            body=(
                f"You are invited to join {context.tenant.name} as {role.value}.\n\n"
                f"Invitation token (valid {days} days, works once):\n{token}\n\n"
                f"Accept it signed in as {to}: POST {self._base_url}/api/v1/invitations/"
                "<token>/accept\n\n"
                "If you did not expect this, ignore this message.\n"
            ),
        )
