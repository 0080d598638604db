"""Identity errors::

IdentityError
└── BootstrapTokenInvalid (Unauthenticated)   unknown, used, revoked or expired link
"""

from bastion.errors import AppError, Unauthenticated


class IdentityError(AppError):
    code = "identity.error"


class BootstrapTokenInvalid(IdentityError, Unauthenticated):
    # One answer for unknown, used, revoked and expired: the caller learns nothing more.
    code = "identity.bootstrap_token_invalid"
    public_message = "This bootstrap link is not valid (unknown, already used or expired)."
