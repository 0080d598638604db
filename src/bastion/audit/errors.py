"""Audit errors::

    AuditError
    ├── InvalidAuditEvent (InvalidInput)         malformed action, tenant, address or details
    │   ├── SecretInAuditDetails                 a details key names a secret (password, token …)
    │   └── AuditDetailsTooLarge                 details exceed the configured bound
    ├── InvalidAuditCursor (InvalidInput)        a pagination cursor that this service did not issue
    ├── InvalidAuditExport (InvalidInput)        an export file or public key that cannot be read
    └── AuditWriteFailed (Unavailable)           the database refused the append; the action fails

None of them carries a details value: the refused input may itself hold the secret.
"""

from bastion.errors import AppError, InvalidInput, Unavailable


class AuditError(AppError):
    code = "audit.error"


class InvalidAuditEvent(AuditError, InvalidInput):
    code = "audit.invalid_event"
    public_message = "The audit event is not valid."


class SecretInAuditDetails(InvalidAuditEvent):
    # The message names the key (never the value) so the caller can fix the call site.
    code = "audit.secret_in_details"
    public_message = "Audit details must not contain secrets."


class AuditDetailsTooLarge(InvalidAuditEvent):
    code = "audit.details_too_large"
    public_message = "The audit details are too large."


class InvalidAuditCursor(AuditError, InvalidInput):
    code = "audit.invalid_cursor"
    public_message = "The pagination cursor is not valid."


class InvalidAuditExport(AuditError, InvalidInput):
    code = "audit.invalid_export"
    public_message = "The audit export or public key cannot be read."


class AuditWriteFailed(AuditError, Unavailable):
    code = "audit.write_failed"
    public_message = "The action could not be recorded in the audit log, so it was not done."
