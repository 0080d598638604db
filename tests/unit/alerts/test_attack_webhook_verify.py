"""Red team: a hostile Bastion-Signature header must be a WebhookRejected, never another error.

Receivers catch WebhookRejected (the documented contract) and answer 400; any other exception
becomes their 500 and, for a header an attacker can send at will, a crash on demand.
"""

import pytest

from bastion.alerts.webhook_verify import WebhookRejected, WebhookVerifier, signature_header

SECRET = "s" * 32
BODY = b'{"id":"e1"}'
NOW = 1_800_000_000


@pytest.mark.parametrize(
    "header",
    [
        f"t={NOW},v1=\u00e9\u00e9",  # a non-ASCII signature (headers decode as latin-1)
        "t=" + "9" * 400 + ",v1=00",  # a timestamp no float can hold
        f"t=\u0663{NOW},v1=00",  # non-ASCII digits that str.isdigit() accepts
    ],
)
def test_a_hostile_header_is_rejected_not_a_crash(header):
    verifier = WebhookVerifier(SECRET, clock=lambda: float(NOW))
    with pytest.raises(WebhookRejected):
        verifier.verify(BODY, header)


def test_a_genuine_header_still_verifies():
    verifier = WebhookVerifier(SECRET, clock=lambda: float(NOW))
    assert verifier.verify(BODY, signature_header(SECRET.encode(), BODY, NOW)) == {"id": "e1"}
