"""Passkeys (WebAuthn Level 2): registration and assertion ceremonies over py_webauthn.

``Passkeys`` holds the mechanism; ``PasskeyFlows`` (passkey_flows.py) calls it and audits.

- Challenges are 64 random bytes (py_webauthn's ``generate_challenge``), stored as SHA-256 only,
  valid ``CHALLENGE_LIFETIME``, and bound to what they were issued for (``WebAuthnChallenge``).
  The challenge the client signed is read back from its clientDataJSON and spent with one
  conditional UPDATE (unused, unexpired, same purpose and binding), so a replayed or foreign
  response fails even when two arrive at once.
- The RP id and the one accepted origin come from settings; py_webauthn checks both, the
  challenge, the flags and the signature (§7.1, §7.2).
- The signature counter is checked here, *after* the signature (py_webauthn checks it before,
  which would let anyone holding a credential id trigger a clone alarm): a valid signature with a
  counter at or below the stored one is a cloned authenticator (§6.1.1) and is refused.
- Attestation is "none": Bastion does not restrict authenticator models.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    generate_challenge,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from bastion.identity.errors import PasskeyAlreadyRegistered, PasskeyInvalid
from bastion.identity.models import WebAuthnChallenge, WebAuthnCredential
from bastion.identity.types import PasskeyInfo
from bastion.kernel.clock import as_utc
from bastion.kernel.ids import new_id

CHALLENGE_LIFETIME: Final = timedelta(minutes=5)
_TIMEOUT_MS: Final = int(CHALLENGE_LIFETIME.total_seconds() * 1000)
MAX_PASSKEYS_PER_USER: Final = 20
_KNOWN_TRANSPORTS: Final = frozenset(t.value for t in AuthenticatorTransport)


class Purpose(enum.StrEnum):
    REGISTER = "register"
    MFA = "mfa"
    STEP_UP = "step_up"
    LOGIN = "login"


@dataclass(frozen=True, slots=True)
class RelyingParty:
    id: str
    name: str
    origin: str


@dataclass(frozen=True, slots=True)
class Binding:
    """What a challenge is bound to; every field must match when it is spent."""

    purpose: Purpose
    user_id: str | None = None
    session_id: str | None = None
    mfa_challenge_id: str | None = None


@dataclass(frozen=True, slots=True)
class Asserted:
    """A verified assertion: whose passkey, and what its counter did."""

    user_id: str
    passkey_id: str
    sign_count: int
    stored_sign_count: int

    @property
    def counter_regressed(self) -> bool:
        # Authenticators without a counter always send 0 (§6.1.1); then there is nothing to check.
        return (self.sign_count > 0 or self.stored_sign_count > 0) and (
            self.sign_count <= self.stored_sign_count
        )


class Passkeys:
    def __init__(self, *, relying_party: RelyingParty) -> None:
        self._rp = relying_party

    # -- registration ---------------------------------------------------------------------

    def registration_options(
        self,
        session: Session,
        *,
        binding: Binding,
        user_name: str,
        display_name: str,
        now: datetime,
    ) -> str:
        """PublicKeyCredentialCreationOptions JSON for ``binding.user_id`` (their passkeys are
        excluded, so one authenticator is not registered twice)."""
        user_id = _required(binding.user_id)
        challenge = self._open_challenge(session, binding, now)
        options = generate_registration_options(
            rp_id=self._rp.id,
            rp_name=self._rp.name,
            user_name=user_name,
            # The user handle is the account id: no personal data on the authenticator.
            user_id=user_id.encode("ascii"),
            user_display_name=display_name,
            challenge=challenge,
            timeout=_TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=self._descriptors(session, user_id),
        )
        return options_to_json(options)

    def register(
        self,
        session: Session,
        *,
        binding: Binding,
        credential: Mapping[str, Any],
        name: str,
        now: datetime,
    ) -> PasskeyInfo:
        """Verify an attestation against a challenge issued for ``binding`` and store the
        passkey. PasskeyInvalid, PasskeyAlreadyRegistered."""
        user_id = _required(binding.user_id)
        try:
            parsed = parse_registration_credential_json(json.dumps(credential))
            challenge = parse_client_data_json(parsed.response.client_data_json).challenge
        except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
            raise PasskeyInvalid from exc
        self._spend_challenge(session, challenge, binding, now)
        try:
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._rp.id,
                expected_origin=self._rp.origin,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
            raise PasskeyInvalid from exc
        if self._by_credential_id(session, verified.credential_id) is not None:
            raise PasskeyAlreadyRegistered
        if len(self._rows(session, user_id)) >= MAX_PASSKEYS_PER_USER:
            raise PasskeyInvalid(f"At most {MAX_PASSKEYS_PER_USER} passkeys per account.")
        transports = [
            t.value for t in (parsed.response.transports or []) if t.value in _KNOWN_TRANSPORTS
        ]
        row = WebAuthnCredential(
            id=new_id(),
            user_id=user_id,
            credential_id=verified.credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=",".join(transports),
            name=name,
            aaguid=verified.aaguid,
            created_at=now,
            last_used_at=None,
        )
        session.add(row)
        session.flush()
        return _info(row)

    # -- assertions -----------------------------------------------------------------------

    def assertion_options(self, session: Session, *, binding: Binding, now: datetime) -> str:
        """PublicKeyCredentialRequestOptions JSON. With a user, their passkeys are the allowed
        ones; without (passwordless login), any discoverable passkey, user verification required.
        """
        challenge = self._open_challenge(session, binding, now)
        allowed = self._descriptors(session, binding.user_id) if binding.user_id else []
        options = generate_authentication_options(
            rp_id=self._rp.id,
            challenge=challenge,
            timeout=_TIMEOUT_MS,
            allow_credentials=allowed,
            user_verification=(
                UserVerificationRequirement.REQUIRED
                if binding.purpose == Purpose.LOGIN
                else UserVerificationRequirement.PREFERRED
            ),
        )
        return options_to_json(options)

    def verify_assertion(
        self, session: Session, *, binding: Binding, credential: Mapping[str, Any], now: datetime
    ) -> Asserted:
        """Verify an assertion against a challenge issued for ``binding``; PasskeyInvalid.

        Returns the result even when the counter regressed (``counter_regressed``): the caller
        audits and refuses it. On success the counter and last-used time are updated.
        """
        try:
            parsed = parse_authentication_credential_json(json.dumps(credential))
            challenge = parse_client_data_json(parsed.response.client_data_json).challenge
            counter = parse_authenticator_data(parsed.response.authenticator_data).sign_count
        except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
            raise PasskeyInvalid from exc
        self._spend_challenge(session, challenge, binding, now)
        row = self._by_credential_id(session, parsed.raw_id)
        if row is None or (binding.user_id is not None and row.user_id != binding.user_id):
            raise PasskeyInvalid
        handle = parsed.response.user_handle
        if handle is not None and handle != row.user_id.encode("ascii"):
            raise PasskeyInvalid
        try:
            verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._rp.id,
                expected_origin=self._rp.origin,
                credential_public_key=row.public_key,
                # 0 disables py_webauthn's own counter check, which runs before the signature
                # check; the counter is compared below, once the signature is known good.
                credential_current_sign_count=0,
                require_user_verification=binding.purpose == Purpose.LOGIN,
            )
        except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
            raise PasskeyInvalid from exc
        asserted = Asserted(
            user_id=row.user_id,
            passkey_id=row.id,
            sign_count=counter,
            stored_sign_count=row.sign_count,
        )
        if not asserted.counter_regressed:
            row.sign_count = counter
            row.last_used_at = now
            session.flush()
        return asserted

    # -- the user's passkeys --------------------------------------------------------------

    def of_user(self, session: Session, user_id: str) -> list[PasskeyInfo]:
        return [_info(row) for row in self._rows(session, user_id)]

    def remove(self, session: Session, *, user_id: str, passkey_id: str) -> bool:
        """Delete one of ``user_id``'s passkeys; False if it is not theirs."""
        result = session.execute(
            delete(WebAuthnCredential).where(
                WebAuthnCredential.id == passkey_id, WebAuthnCredential.user_id == user_id
            )
        )
        return bool(getattr(result, "rowcount", 0))

    # -- internals ------------------------------------------------------------------------

    def _rows(self, session: Session, user_id: str) -> list[WebAuthnCredential]:
        return list(
            session.scalars(
                select(WebAuthnCredential)
                .where(WebAuthnCredential.user_id == user_id)
                .order_by(WebAuthnCredential.created_at, WebAuthnCredential.id)
            ).all()
        )

    def _by_credential_id(
        self, session: Session, credential_id: bytes
    ) -> WebAuthnCredential | None:
        return session.scalar(
            select(WebAuthnCredential).where(WebAuthnCredential.credential_id == credential_id)
        )

    def _descriptors(self, session: Session, user_id: str) -> list[PublicKeyCredentialDescriptor]:
        return [
            PublicKeyCredentialDescriptor(
                id=row.credential_id,
                transports=[AuthenticatorTransport(t) for t in row.transports.split(",") if t]
                or None,
            )
            for row in self._rows(session, user_id)
        ]

    def _open_challenge(self, session: Session, binding: Binding, now: datetime) -> bytes:
        # Expired challenges are swept here, so the table stays small without a job.
        session.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at <= now))
        challenge = generate_challenge()
        session.add(
            WebAuthnChallenge(
                id=new_id(),
                challenge_hash=hashlib.sha256(challenge).digest(),
                purpose=binding.purpose.value,
                user_id=binding.user_id,
                session_id=binding.session_id,
                mfa_challenge_id=binding.mfa_challenge_id,
                created_at=now,
                expires_at=now + CHALLENGE_LIFETIME,
                used_at=None,
            )
        )
        session.flush()
        return challenge

    def _spend_challenge(
        self, session: Session, challenge: bytes, binding: Binding, now: datetime
    ) -> None:
        conditions: list[ColumnElement[bool]] = [
            WebAuthnChallenge.challenge_hash == hashlib.sha256(challenge).digest(),
            WebAuthnChallenge.purpose == binding.purpose.value,
            WebAuthnChallenge.used_at.is_(None),
            WebAuthnChallenge.expires_at > now,
        ]
        for column, value in (
            (WebAuthnChallenge.user_id, binding.user_id),
            (WebAuthnChallenge.session_id, binding.session_id),
            (WebAuthnChallenge.mfa_challenge_id, binding.mfa_challenge_id),
        ):
            conditions.append(column.is_(None) if value is None else column == value)
        result = session.execute(
            update(WebAuthnChallenge)
            .where(*conditions)
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            raise PasskeyInvalid


def _required(user_id: str | None) -> str:
    if user_id is None:
        raise PasskeyInvalid
    return user_id


def _info(row: WebAuthnCredential) -> PasskeyInfo:
    return PasskeyInfo(
        id=row.id,
        name=row.name,
        transports=tuple(t for t in row.transports.split(",") if t),
        aaguid=row.aaguid,
        created_at=as_utc(row.created_at),
        last_used_at=as_utc(row.last_used_at) if row.last_used_at is not None else None,
    )
