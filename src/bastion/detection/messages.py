"""The e-mails detection sends. Like identity's, tokens travel in the URL fragment (never sent to
a server or put in a Referer) and on a line of their own for API clients."""

from __future__ import annotations

from bastion.mail import OutgoingMail


def locked(
    *, to: str, name: str | None, base_url: str, token: str, failures: int, minutes: int
) -> OutgoingMail:
    return OutgoingMail(
        to_address=to,
        to_name=name,
        subject="Your Bastion account is locked after failed sign-ins",
        body=(
            f"There were {failures} failed sign-ins to this Bastion account in a short time, so "
            f"signing in is locked for {minutes} minutes. It unlocks by itself.\n\n"
            "If it was you, unlock it now with this token (works once):\n"
            f"{token}\n\n"
            f"Link: {base_url}/unlock#token={token}\n\n"
            "If it was not you, someone is guessing your password. Your password was not "
            "accepted; consider changing it to a long, unique one.\n"
        ),
    )


def new_device(
    *, to: str, name: str | None, base_url: str, token: str, family: str, network: str
) -> OutgoingMail:
    return OutgoingMail(
        to_address=to,
        to_name=name,
        subject="New sign-in to your Bastion account",
        body=(
            "Your Bastion account was just signed in to from a device or network it has not "
            f"used before ({family}, network {network}).\n\n"
            "If this was you, there is nothing to do.\n\n"
            "If this wasn't you, this token ends every session and API key of the account and "
            "blocks sign-in until the password is reset (works once):\n"
            f"{token}\n\n"
            f"Link: {base_url}/report-login#token={token}\n"
        ),
    )
