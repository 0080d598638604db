"""Identity: who someone is. Accounts, argon2id passwords and their policy, revocable sessions,
e-mailed single-use tokens (verification, reset), and the first-operator bootstrap.

Owns the ``users``, ``password_history``, ``auth_sessions``, ``email_tokens``,
``bootstrap_tokens``, second-factor (``totp_credentials``, ``recovery_codes``, ``mfa_challenges``)
and passkey (``webauthn_credentials``, ``webauthn_challenges``) tables. Never imports the api,
cli or web edges, never commits (the edge owns the transaction), and never lets a password, token
or e-mail reach a log line or an audit detail. Second factors: TOTP, recovery codes and passkeys
(``webauthn``); ``factors`` says which a user has.
"""

from bastion.identity.emails import EmailAddress, normalise_email
from bastion.identity.errors import (
    BootstrapTokenInvalid,
    CsrfCheckFailed,
    IdentityError,
    InvalidCredentials,
    NotAuthenticated,
    PasswordRejected,
)
from bastion.identity.events import AuditTrail, EventOutcome, IdentityEvent, LogOnlyAuditTrail
from bastion.identity.first_operator import FirstOperatorBootstrap, IssuedLink
from bastion.identity.passwords import Argon2Parameters, PasswordHasher, PasswordPolicy
from bastion.identity.repository import account_is_active
from bastion.identity.service import Identity, SqlIdentity
from bastion.identity.types import (
    Account,
    ClientInfo,
    IdentityAction,
    IssuedSession,
    Principal,
    SessionId,
    SessionInfo,
    UserId,
)

__all__ = [
    "Account",
    "Argon2Parameters",
    "AuditTrail",
    "BootstrapTokenInvalid",
    "ClientInfo",
    "CsrfCheckFailed",
    "EmailAddress",
    "EventOutcome",
    "FirstOperatorBootstrap",
    "Identity",
    "IdentityAction",
    "IdentityError",
    "IdentityEvent",
    "InvalidCredentials",
    "IssuedLink",
    "IssuedSession",
    "LogOnlyAuditTrail",
    "NotAuthenticated",
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordRejected",
    "Principal",
    "SessionId",
    "SessionInfo",
    "SqlIdentity",
    "UserId",
    "account_is_active",
    "normalise_email",
]
