"""The receiver-side webhook check: fresh, correctly signed, never accepted twice."""

import json

import pytest

from bastion.alerts.webhook_verify import (
    ReplayedWebhook,
    WebhookRejected,
    WebhookVerifier,
    signature_header,
)

SECRET = "s" * 40
NOW = 1_800_000_000


def _signed(event_id="evt-1", at=NOW, secret=SECRET):
    body = json.dumps({"id": event_id, "type": "audit.chain_damaged"}).encode()
    return body, signature_header(secret.encode(), body, at)


def _verifier(now=NOW, **options):
    return WebhookVerifier(SECRET, clock=lambda: now, **options)


def test_a_fresh_signed_webhook_is_accepted_once_and_its_replay_is_refused():
    verifier = _verifier()
    body, header = _signed()
    assert verifier.verify(body, header)["id"] == "evt-1"
    with pytest.raises(ReplayedWebhook):
        verifier.verify(body, header)


def test_the_same_event_resigned_later_is_still_a_replay():
    verifier = _verifier()
    body, header = _signed()
    verifier.verify(body, header)
    _, later = _signed(at=NOW + 30)
    with pytest.raises(ReplayedWebhook):
        verifier.verify(body, later)


@pytest.mark.parametrize("skew", [-301, 301, 10_000])
def test_a_timestamp_outside_the_tolerance_is_refused(skew):
    body, header = _signed(at=NOW + skew)
    with pytest.raises(WebhookRejected, match="tolerance"):
        _verifier().verify(body, header)


def test_a_changed_body_or_another_secret_is_refused():
    body, header = _signed()
    with pytest.raises(WebhookRejected, match="signature"):
        _verifier().verify(body.replace(b"damaged", b"repaired"), header)
    _, foreign = _signed(secret="x" * 40)
    with pytest.raises(WebhookRejected, match="signature"):
        _verifier().verify(body, foreign)


def test_moving_the_timestamp_breaks_the_signature():
    body, header = _signed()
    moved = header.replace(f"t={NOW}", f"t={NOW + 1}")
    with pytest.raises(WebhookRejected, match="signature"):
        _verifier().verify(body, moved)


@pytest.mark.parametrize(
    "header",
    [None, "", "t=abc,v1=00", f"t={NOW}", "v1=00", "t=-5,v1=00", "x" * 2000],
)
def test_a_malformed_header_is_refused(header):
    body, _ = _signed()
    with pytest.raises(WebhookRejected):
        _verifier().verify(body, header)


def test_a_signed_body_without_an_id_is_refused():
    body = b'{"type": "x"}'
    header = signature_header(SECRET.encode(), body, NOW)
    with pytest.raises(WebhookRejected, match="id"):
        _verifier().verify(body, header)


def test_during_a_secret_rotation_either_secret_verifies():
    verifier = WebhookVerifier([SECRET, "n" * 40], clock=lambda: NOW)
    body, header = _signed(event_id="a")
    assert verifier.verify(body, header)["id"] == "a"
    body, header = _signed(event_id="b", secret="n" * 40)
    assert verifier.verify(body, header)["id"] == "b"


def test_an_empty_secret_is_refused_up_front():
    with pytest.raises(ValueError, match="secret"):
        WebhookVerifier("")
