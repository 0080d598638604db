"""Identity errors::

    IdentityError
    ├── BootstrapTokenInvalid (Unauthenticated)   unknown, used, revoked or expired bootstrap link
    ├── InvalidCredentials (Unauthenticated)      unknown e-mail, wrong password, disabled account
    ├── NotAuthenticated (Unauthenticated)        no, unknown, expired or revoked session token
    ├── CsrfCheckFailed (Forbidden)               cookie-authenticated unsafe request without proof
    ├── MfaEnrolmentRequired (Forbidden)          an operator without a second factor, off the
    │                                             enrolment routes
    ├── SignupClosed (Forbidden)                  sign-up is by invitation only
    ├── EmailTaken (Conflict)                     sign-up with an address already registered
    ├── InvalidEmail (Unprocessable)              not an address Bastion can store and mail to
    ├── TokenInvalid (InvalidInput)               unknown, used, expired e-mailed token
    ├── CurrentPasswordWrong (InvalidInput)       password change with a wrong current password
    ├── SessionNotFound (NotFound)                not one of the caller's live sessions
    ├── UserNotFound (NotFound)                   operator command naming no user
    ├── AlreadyBootstrapped (Conflict)            an operator exists already
    ├── MfaRequired (Unauthenticated)             password right; finish at /auth/mfa (mfa_token)
    ├── MfaCodeInvalid (Unauthenticated)          wrong/used code, unknown/expired/spent mfa_token
    ├── TotpCodeInvalid (InvalidInput)            wrong code while enrolling or regenerating
    │   └── SessionCodeInvalid                    ...counted against the session (step-up,
    │                                             regeneration): at the limit the session ends
    ├── TotpAlreadyEnabled (Conflict)             enrolment asked for with TOTP already on
    ├── TotpNotPending (Conflict)                 confirmation with no enrolment in progress
    ├── TotpNotEnabled (Conflict)                 recovery codes asked for without TOTP
    ├── StepUpRequired (Forbidden)                sensitive action without a recent second factor
    ├── PasskeyInvalid (InvalidInput)             a registration or assertion that does not verify
    ├── PasskeyCloneSuspected (Forbidden)         valid signature, counter went backwards (audited)
    ├── PasskeyNotFound (NotFound)                not one of the caller's passkeys
    ├── PasskeyAlreadyRegistered (Conflict)       the authenticator's credential is registered
    └── PasswordRejected (Unprocessable)          a policy rule failed; ``code`` names the rule:
        ├── PasswordTooShort / PasswordTooLong
        ├── PasswordTooCommon                     in the shipped list of common passwords
        ├── PasswordTooWeak                       strength estimate below the setting
        ├── PasswordFromContext                   weak once the user's/product words are removed
        └── PasswordReused                        one of the last N passwords

No error carries a password, token or e-mail in its details.
"""

from __future__ import annotations

from typing import Any

from bastion.errors import (
    AppError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
    Unprocessable,
)


class IdentityError(AppError):
    code = "identity.error"


class BootstrapTokenInvalid(IdentityError, Unauthenticated):
    # One answer for unknown, used, revoked and expired: the caller learns nothing more.
    code = "identity.bootstrap_token_invalid"
    public_message = "This bootstrap link is not valid (unknown, already used or expired)."


class InvalidCredentials(IdentityError, Unauthenticated):
    # Unknown e-mail, wrong password and disabled account all end here, at equal cost.
    code = "identity.invalid_credentials"
    public_message = "The e-mail address or password is not correct."
    audited_refusal = True  # the failed attempt must reach the audit log


class NotAuthenticated(IdentityError, Unauthenticated):
    code = "identity.not_authenticated"
    public_message = "Authentication is required (no valid session)."


class CsrfCheckFailed(IdentityError, Forbidden):
    code = "identity.csrf_failed"
    public_message = (
        "A cookie-authenticated request that changes state must carry the X-CSRF-Token header "
        "returned at login."
    )


class MfaEnrolmentRequired(IdentityError, Forbidden):
    code = "identity.mfa_enrolment_required"
    public_message = (
        "Operators must enable a second factor before anything else: POST /api/v1/me/totp, "
        "then /api/v1/me/totp/confirm."
    )


class SignupClosed(IdentityError, Forbidden):
    code = "identity.signup_closed"
    public_message = "Sign-up is by invitation only on this server."


class EmailTaken(IdentityError, Conflict):
    code = "identity.email_taken"
    public_message = "An account with this e-mail address already exists."


class InvalidEmail(IdentityError, Unprocessable):
    code = "identity.invalid_email"
    public_message = "This is not a valid e-mail address."


class TokenInvalid(IdentityError, InvalidInput):
    # Unknown, used and expired tokens answer alike: the caller learns nothing more.
    code = "identity.token_invalid"
    public_message = "This link is not valid (unknown, already used or expired)."


class CurrentPasswordWrong(IdentityError, InvalidInput):
    code = "identity.current_password_wrong"
    public_message = "The current password is not correct."


class SessionNotFound(IdentityError, NotFound):
    code = "identity.session_not_found"
    public_message = "No such session."


class UserNotFound(IdentityError, NotFound):
    code = "identity.user_not_found"
    public_message = "No such user."


class AlreadyBootstrapped(IdentityError, Conflict):
    code = "identity.already_bootstrapped"
    public_message = "An operator account exists already."


class MfaRequired(IdentityError, Unauthenticated):
    code = "identity.mfa_required"
    public_message = (
        "The password is correct; a second factor is required. POST the mfa_token and a TOTP or "
        "recovery code (or a passkey assertion, options from /api/v1/auth/mfa/passkey/options) "
        "to /api/v1/auth/mfa."
    )
    # The challenge row (and the audit entry) must be committed for mfa_token to work.
    audited_refusal = True


class MfaCodeInvalid(IdentityError, Unauthenticated):
    # One answer for a wrong or reused code and an unknown, expired or spent mfa_token.
    code = "identity.mfa_code_invalid"
    public_message = "The code or the sign-in attempt is not valid; sign in again if it persists."
    audited_refusal = True  # the attempt counter and the audit entry must survive


class TotpCodeInvalid(IdentityError, InvalidInput):
    code = "identity.totp_code_invalid"
    public_message = "The authenticator code is not valid."


class SessionCodeInvalid(TotpCodeInvalid):
    code = "identity.totp_code_invalid"
    # The failure counter (and the revocation at the limit) must be committed.
    audited_refusal = True


class TotpAlreadyEnabled(IdentityError, Conflict):
    code = "identity.totp_already_enabled"
    public_message = "Two-factor authentication with an authenticator app is already enabled."


class TotpNotPending(IdentityError, Conflict):
    code = "identity.totp_not_pending"
    public_message = "No authenticator enrolment is in progress; POST /api/v1/me/totp first."


class TotpNotEnabled(IdentityError, Conflict):
    code = "identity.totp_not_enabled"
    public_message = "Enable an authenticator app first."


class StepUpRequired(IdentityError, Forbidden):
    code = "identity.step_up_required"
    public_message = (
        "This action needs a second factor proved in the last few minutes: POST a TOTP or "
        "recovery code to /api/v1/auth/step-up, then retry."
    )


class PasskeyInvalid(IdentityError, InvalidInput):
    # One answer for every failed ceremony: unknown, used, expired or foreign challenge, wrong
    # origin or RP id, bad signature, another user's credential.
    code = "identity.passkey_invalid"
    public_message = "The passkey response is not valid; start the ceremony again."


class PasskeyCloneSuspected(IdentityError, Forbidden):
    code = "identity.passkey_clone_suspected"
    public_message = (
        "This passkey's signature counter went backwards, a sign the authenticator was cloned. "
        "It was refused; remove it and register a new one."
    )
    audited_refusal = True  # the audit entry must survive the refusal


class PasskeyNotFound(IdentityError, NotFound):
    code = "identity.passkey_not_found"
    public_message = "No such passkey."


class PasskeyAlreadyRegistered(IdentityError, Conflict):
    code = "identity.passkey_already_registered"
    public_message = "This authenticator's passkey is registered already."


class PasswordRejected(IdentityError, Unprocessable):
    code = "identity.password_rejected"
    public_message = "The password does not meet the password policy."
    rule = "policy"

    def __init__(self, detail: str | None = None, **details: Any) -> None:
        # The problem names the failed rule (and the field), never the password.
        super().__init__(detail, rule=self.rule, field="password", **details)


class PasswordTooShort(PasswordRejected):
    code = "identity.password_too_short"
    rule = "min_length"


class PasswordTooLong(PasswordRejected):
    code = "identity.password_too_long"
    rule = "max_length"


class PasswordTooCommon(PasswordRejected):
    code = "identity.password_too_common"
    public_message = "This password is in the list of commonly used passwords."
    rule = "common"


class PasswordTooWeak(PasswordRejected):
    code = "identity.password_too_weak"
    public_message = "This password is too easy to guess."
    rule = "strength"


class PasswordFromContext(PasswordRejected):
    code = "identity.password_from_context"
    public_message = (
        "This password is built from your name, your e-mail address or the product name; "
        "without them it is too easy to guess."
    )
    rule = "context"


class PasswordReused(PasswordRejected):
    code = "identity.password_reused"
    public_message = "This password was used recently; choose a new one."
    rule = "history"
