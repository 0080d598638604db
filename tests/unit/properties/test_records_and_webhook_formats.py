"""Property tests for the parsers and canonical forms that landed with records, alerts and API
keys (issue 10: every parser and canonical form gets one).

- Record documents: any JSON object survives parse -> encode -> parse unchanged; any byte string
  either parses to an object or is refused with MalformedDocument, nothing else escapes.
- JSON Merge Patch (RFC 7386): null removes, non-objects replace, and the laws that follow.
- JSON Pointers (RFC 6901) for error locations: decoding gives back the path.
- Webhook signatures: what Bastion signs verifies; any other header value is a WebhookRejected.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from bastion.alerts.webhook_verify import (
    WebhookRejected,
    WebhookVerifier,
    parse_signature_header,
    signature_header,
)
from bastion.records.documents import encode, merge_patch, parse_object, pointer
from bastion.records.errors import MalformedDocument

KEYS = st.text(max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)
OBJECTS = st.dictionaries(KEYS, JSON, max_size=6)
NON_NULL_PATCH = st.dictionaries(KEYS, JSON.filter(lambda v: v is not None), max_size=4)


@given(OBJECTS)
def test_any_json_object_round_trips_through_the_stored_form(document):
    stored = encode(document)
    assert parse_object(stored) == document
    assert encode(parse_object(stored)) == stored  # canonical: encoding is a fixed point


@given(st.binary(max_size=200))
def test_any_bytes_parse_to_an_object_or_a_clear_refusal(body):
    try:
        parsed = parse_object(body)
    except MalformedDocument:
        return
    assert isinstance(parsed, dict)


@given(OBJECTS, OBJECTS)
def test_a_merge_patch_sets_what_it_names_and_keeps_the_rest(target, patch):
    merged = merge_patch(target, patch)
    for name, value in patch.items():
        if value is None:
            assert name not in merged
        elif not isinstance(value, dict):
            assert merged[name] == value
    for name in target.keys() - patch.keys():
        assert merged[name] == target[name]


@given(OBJECTS, NON_NULL_PATCH)
def test_applying_the_same_merge_patch_twice_changes_nothing_more(target, patch):
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


@given(OBJECTS)
def test_an_empty_patch_is_the_identity_and_a_non_object_replaces(target):
    assert merge_patch(target, {}) == target
    assert merge_patch(target, [1, 2]) == [1, 2]
    assert merge_patch(target, "x") == "x"


def _decode_pointer(text: str) -> list[str]:
    assert text == "" or text.startswith("/")
    return [part.replace("~1", "/").replace("~0", "~") for part in text.split("/")[1:]]


@given(st.lists(st.text(max_size=6) | st.integers(min_value=0, max_value=99), max_size=5))
def test_a_json_pointer_decodes_back_to_its_path(path):
    assert _decode_pointer(pointer(path)) == [str(part) for part in path]


SECRET = b"webhook-secret-for-properties"


@given(st.binary(max_size=64), st.text(min_size=1, max_size=12))
def test_what_bastion_signs_verifies_once(payload, event_id):
    body = json.dumps({"id": event_id, "payload": payload.hex()}).encode()
    verifier = WebhookVerifier(SECRET, clock=lambda: 1_700_000_000.0)
    assert verifier.verify(body, signature_header(SECRET, body, 1_700_000_000))["id"] == event_id


@given(st.text(max_size=300))
def test_any_other_signature_header_is_a_webhook_rejection(header):
    body = b'{"id":"evt-1"}'
    verifier = WebhookVerifier(SECRET, clock=lambda: 1_700_000_000.0)
    try:
        verifier.verify(body, header)
    except WebhookRejected:
        return
    # Only a header carrying the real signature for this body could have been accepted.
    timestamp, signatures = parse_signature_header(header)
    assert signature_header(SECRET, body, timestamp).split("v1=")[1] in signatures
