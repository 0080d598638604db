"""The e-mails identity sends. Tokens travel in the URL fragment, which browsers never send to a
server or put in a Referer, and on a line of their own for API clients."""

from __future__ import annotations

from bastion.mail import OutgoingMail


def verification(
    *, to: str, name: str | None, base_url: str, token: str, hours: int
) -> OutgoingMail:
    return OutgoingMail(
        to_address=to,
        to_name=name,
        subject="Confirm your e-mail address for Bastion",
        body=(
            "Welcome to Bastion. Confirm that this address is yours.\n\n"
            f"Verification token (valid {hours} hours, works once):\n{token}\n\n"
            f"Link: {base_url}/verify-email#token={token}\n\n"
            "If you did not create an account, ignore this message.\n"
        ),
    )


def password_reset(
    *, to: str, name: str | None, base_url: str, token: str, minutes: int
) -> OutgoingMail:
    return OutgoingMail(
        to_address=to,
        to_name=name,
        subject="Reset your Bastion password",
        body=(
            "Someone (hopefully you) asked to reset the password of this Bastion account.\n\n"
            f"Reset token (valid {minutes} minutes, works once):\n{token}\n\n"
            f"Link: {base_url}/reset-password#token={token}\n\n"
            "Every session of the account ends when the password is reset. If you did not ask "
            "for this, ignore this message: your password stays as it is.\n"
        ),
    )


def email_change(
    *, to: str, name: str | None, base_url: str, token: str, hours: int
) -> OutgoingMail:
    return OutgoingMail(
        to_address=to,
        to_name=name,
        subject="Confirm your new e-mail address for Bastion",
        body=(
            "Someone (hopefully you) asked to use this address for a Bastion account.\n\n"
            f"Confirmation token (valid {hours} hours, works once):\n{token}\n\n"
            f"Link: {base_url}/verify-email#token={token}\n\n"
            "If you did not ask for this, ignore this message.\n"
        ),
    )


def email_change_notice(*, to: str, name: str | None) -> OutgoingMail:
    return OutgoingMail(
        to_address=to,
        to_name=name,
        subject="Your Bastion e-mail address is being changed",
        body=(
            "A change of this account's e-mail address to another one was requested, with the "
            "account's password. It takes effect when the new address is confirmed.\n\n"
            "If this was not you, reset your password now: every session then ends and the "
            "pending change is cancelled.\n"
        ),
    )
