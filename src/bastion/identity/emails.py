"""E-mail address normalisation: one canonical form to store, look up and mail to.

Decisions (documented in docs/identity.md):

- Surrounding whitespace is trimmed; the domain is lower-cased and, if internationalised, turned
  into its IDNA (punycode) form, since DNS names are case-insensitive (RFC 5321 §2.4).
- The local part is *kept as typed* for sending, because RFC 5321 lets a mail server treat it
  case-sensitively; but uniqueness and login compare the whole address lower-cased
  (``lookup_key``), because practically every provider ignores case and two accounts that differ
  only in case are a confusion and phishing risk. No provider-specific folding (dots, ``+tags``).
- Only plain ASCII ``dot-atom`` local parts (RFC 5322 §3.2.3) are accepted: no quoted strings,
  no comments, no SMTPUTF8. Anything with CR, LF or other control characters is refused, so an
  address can never inject a mail header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bastion.identity.errors import InvalidEmail

MAX_EMAIL_LENGTH = 254  # RFC 5321 §4.5.3.1.3 path limit less the angle brackets
MAX_LOCAL_LENGTH = 64
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True, slots=True)
class EmailAddress:
    """A normalised address: ``value`` to mail to and show, ``lookup_key`` to compare."""

    value: str

    @property
    def lookup_key(self) -> str:
        return self.value.lower()

    @property
    def domain(self) -> str:
        return self.value.rsplit("@", 1)[1]


def normalise_email(raw: str) -> EmailAddress:
    """The canonical form of ``raw``, or InvalidEmail (which never echoes the input)."""
    text = raw.strip()
    if not text or len(text) > MAX_EMAIL_LENGTH or text.count("@") != 1:
        raise InvalidEmail(field="email")
    local, domain = text.split("@")
    if len(local) > MAX_LOCAL_LENGTH or not _LOCAL.fullmatch(local):
        raise InvalidEmail(field="email")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidEmail(field="email") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidEmail(field="email")
    value = f"{local}@{ascii_domain}"
    if len(value) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(field="email")
    return EmailAddress(value)
