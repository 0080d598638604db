"""Property: e-mail normalisation is a canonical form (identity/emails.py).

For any text: ``normalise_email`` answers an address or InvalidEmail, nothing else; the answer is
a fixed point (normalising it again changes nothing), fits RFC 5321's 254 characters, has a
lower-case ASCII (IDNA) domain and no character that could start a new mail header line; and two
spellings that differ only in the case of the domain normalise to the same address.
"""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from bastion.identity import normalise_email
from bastion.identity.errors import InvalidEmail

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-."
# Mostly near-valid addresses (so the accepting path is exercised), plus anything at all.
LOCAL = st.text(alphabet=ATEXT, min_size=1, max_size=70)
LABEL = st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=70)
UNICODE_LABEL = st.text(alphabet="abcéßüä日本-", min_size=1, max_size=20)
DOMAIN = st.lists(LABEL | UNICODE_LABEL, min_size=1, max_size=4).map(".".join)
PADDING = st.sampled_from(["", " ", "\t", "\n", "\r\n"])
ADDRESS = st.builds(
    lambda pad, loc, dom, end: f"{pad}{loc}@{dom}{end}", PADDING, LOCAL, DOMAIN, PADDING
)
ANYTHING = st.text(max_size=80)


def _normalised(raw: str) -> str | None:
    try:
        return normalise_email(raw).value
    except InvalidEmail:
        return None


@given(raw=ADDRESS | ANYTHING)
def test_normalisation_is_a_fixed_point_of_bounded_header_safe_ascii(raw):
    value = _normalised(raw)
    if value is None:
        return
    assert _normalised(value) == value
    assert len(value) <= 254
    assert value.isascii()
    assert not any(ch in value for ch in '\r\n\x00 \t<>,;:"')
    local, domain = value.split("@")
    assert domain == domain.lower()
    assert local == raw.strip().split("@")[0]  # the local part is kept as typed


@given(local=LOCAL, domain=DOMAIN)
def test_the_case_of_the_domain_does_not_matter(local, domain):
    lower = _normalised(f"{local}@{domain.lower()}")
    assert _normalised(f"{local}@{domain.upper()}") == lower or lower is None
