"""Rows in every system-sealed column, sealed the way each domain seals them, and a reader.

The rows are inserted directly (the domains' flows are tested elsewhere); the values are sealed
with the domains' own helpers and purposes, bound to each row's primary key, as in production.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from bastion.access.invitations import EMAIL_PURPOSE as INVITATION_PURPOSE
from bastion.access.models import InvitationRow, TenantRow
from bastion.bootstrap import SYSTEM_SEALED_COLUMNS
from bastion.crypto import Keyring, SystemSealedColumn
from bastion.identity.emails import normalise_email
from bastion.identity.keys import seal_email, seal_pending_email
from bastion.identity.mfa import TOTP_PURPOSE
from bastion.identity.models import EmailToken, TotpCredential, User
from bastion.mail.models import QueuedMail
from bastion.mail.outbox import OutgoingMail
from bastion.mail.queue import seal_mail

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
TENANT_ID = "5d3c1b2a-7e6f-4a8b-9c0d-1e2f3a4b5c6d"


def register_columns(
    keyring: Keyring, engine: Engine, cls: type[SystemSealedColumn] = SystemSealedColumn
) -> None:
    for attribute, purpose in SYSTEM_SEALED_COLUMNS:
        keyring.register_system_column(cls.of(attribute, purpose=purpose, engine=engine))


def insert_rows(keyring: Keyring, engine: Engine, *, users: int, mails: int) -> None:
    """``users`` users, each with a TOTP secret, a pending e-mail change and an invitation,
    and ``mails`` queued messages; also one e-mail token without a sealed payload (NULL)."""
    user_rows, totp_rows, token_rows, invitation_rows, mail_rows = [], [], [], [], []
    for i in range(users):
        user_id = f"u-{i:05d}"
        address = normalise_email(f"user{i}@example.com")
        user_rows.append(
            {
                "id": user_id,
                "email_sealed": seal_email(keyring, user_id, address),
                "email_index": os.urandom(32),
                "password_hash": "not-a-hash",
                "is_operator": False,
                "created_at": NOW,
                "password_changed_at": NOW,
            }
        )
        totp_rows.append(
            {
                "user_id": user_id,
                "secret_sealed": keyring.seal_system(
                    purpose=TOTP_PURPOSE, record_id=user_id, plaintext=f"SECRET{i}".encode()
                ),
                "created_at": NOW,
            }
        )
        token_id = f"t-{i:05d}"
        token_rows.append(
            {
                "id": token_id,
                "user_id": user_id,
                "purpose": "change_email",
                "token_hash": os.urandom(32),
                "created_at": NOW,
                "expires_at": NOW,
                "payload_sealed": seal_pending_email(
                    keyring, token_id, normalise_email(f"new{i}@example.com")
                ),
            }
        )
        invitation_id = f"i-{i:05d}"
        invitation_rows.append(
            {
                "id": invitation_id,
                "tenant_id": TENANT_ID,
                "email_sealed": keyring.seal_system(
                    purpose=INVITATION_PURPOSE,
                    record_id=invitation_id,
                    plaintext=f"invitee{i}@example.com".encode(),
                ),
                "role": "member",
                "token_hash": os.urandom(32),
                "created_at": NOW,
                "expires_at": NOW,
            }
        )
    if users:
        token_rows.append(
            {
                "id": "t-no-payload",
                "user_id": "u-00000",
                "purpose": "verify_email",
                "token_hash": os.urandom(32),
                "created_at": NOW,
                "expires_at": NOW,
                "payload_sealed": None,
            }
        )
    for i in range(mails):
        mail_id = f"m-{i:05d}"
        mail = OutgoingMail(to_address=f"to{i}@example.com", subject=f"s{i}", body=f"body {i}")
        mail_rows.append(
            {
                "id": mail_id,
                "sealed": seal_mail(keyring, mail_id, mail),
                "created_at": NOW,
                "next_attempt_at": NOW,
                "attempts": 0,
            }
        )
    with engine.begin() as connection:
        connection.execute(
            insert(TenantRow), [{"id": TENANT_ID, "slug": "t", "name": "T", "created_at": NOW}]
        )
        for model, rows in (
            (User, user_rows),
            (TotpCredential, totp_rows),
            (EmailToken, token_rows),
            (InvitationRow, invitation_rows),
            (QueuedMail, mail_rows),
        ):
            if rows:
                connection.execute(insert(model), rows)


def sealed_values(engine: Engine) -> dict[tuple[str, str, str], bytes]:
    """Every non-NULL system-sealed value: (table.column, purpose, primary key) -> sealed."""
    found = {}
    with engine.connect() as connection:
        for attribute, purpose in SYSTEM_SEALED_COLUMNS:
            column = attribute.property.columns[0]
            (key,) = column.table.primary_key.columns
            rows = connection.execute(select(key, column).where(column.is_not(None))).all()
            for record_id, sealed in rows:
                found[(f"{column.table.name}.{column.name}", purpose, record_id)] = bytes(sealed)
    return found


def open_all(keyring: Keyring, engine: Engine) -> dict[tuple[str, str, str], bytes]:
    """Open every system-sealed value (IntegrityCheckError if any does not open)."""
    return {
        where: keyring.open_system(purpose=where[1], record_id=where[2], sealed=sealed)
        for where, sealed in sealed_values(engine).items()
    }


def version_of(sealed: bytes) -> int:
    return int.from_bytes(sealed[2:6], "big")
