"""The hashed byte format: canonical JSON is stable, and the fast encoder matches json.dumps."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.audit.canonical import (
    COVERED_FIELDS,
    GENESIS_HASH,
    canonical_json,
    chain_hash,
    entry_bytes,
    entry_text,
    format_time,
    parse_time,
)

MAX_SAFE = 2**53 - 1
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
optional_text = st.none() | text
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE, MAX_SAFE) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)
details = st.dictionaries(text, json_values, max_size=5)


@given(details)
def test_canonicalising_is_idempotent(value):
    once = canonical_json(value)
    assert canonical_json(json.loads(once)) == once


@given(details)
def test_key_order_does_not_change_the_text_or_the_hash(value):
    reversed_order = dict(reversed(list(value.items())))
    assert canonical_json(reversed_order) == canonical_json(value)
    assert chain_hash(GENESIS_HASH, canonical_json(reversed_order).encode()) == chain_hash(
        GENESIS_HASH, canonical_json(value).encode()
    )


entries = st.fixed_dictionaries(
    {
        "chain": text.filter(bool),
        "seq": st.integers(1, MAX_SAFE),
        "tenant": optional_text,
        "actor": optional_text,
        "action": text,
        "target": optional_text,
        "outcome": text,
        "source_ip": optional_text,
        "user_agent": optional_text,
        "request_id": optional_text,
    }
)


@given(entries, details)
def test_the_fast_encoder_equals_json_dumps_of_the_documented_object(fields, details_value):
    time = "2026-11-22T09:00:00.000001Z"
    document = {**fields, "v": 1, "time": time, "details": details_value}
    assert tuple(sorted(document)) == COVERED_FIELDS
    fast = entry_bytes(**fields, time=time, details_json=canonical_json(details_value))
    reference = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert fast == reference.encode("utf-8")


def test_a_known_answer_pins_the_format():
    canonical = entry_bytes(
        chain="system", seq=1, time="2026-01-01T00:00:00.000000Z", tenant=None, actor=None,
        action="system.initialised", target=None, outcome="success", source_ip=None,
        user_agent=None, request_id=None, details_json="{}",
    )  # fmt: skip
    assert canonical == (
        b'{"action":"system.initialised","actor":null,"chain":"system","details":{},'
        b'"outcome":"success","request_id":null,"seq":1,"source_ip":null,"target":null,'
        b'"tenant":null,"time":"2026-01-01T00:00:00.000000Z","user_agent":null,"v":1}'
    )
    expected = hashlib.sha256(bytes(32) + canonical).hexdigest()
    assert chain_hash(GENESIS_HASH, canonical) == expected


def test_times_are_utc_with_six_fractional_digits():
    paris = timezone(timedelta(hours=1))
    assert format_time(datetime(2026, 1, 1, 1, 0, tzinfo=paris)) == "2026-01-01T00:00:00.000000Z"
    assert (
        format_time(datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC)) == "2026-01-01T00:00:00.000005Z"
    )
    moment = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    assert parse_time(format_time(moment)) == moment
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="canonical"):
        parse_time("2026-01-01T00:00:00Z")


@given(entries, details)
def test_the_stored_entry_text_is_the_hashed_bytes_and_parses_back(fields, details_value):
    time = "2026-11-22T09:00:00.000001Z"
    details_json = canonical_json(details_value)
    stored = entry_text(**fields, time=time, details_json=details_json)
    assert stored.encode("utf-8") == entry_bytes(**fields, time=time, details_json=details_json)
    document = json.loads(stored)
    assert document["details"] == details_value
    position = (document["chain"], document["seq"], document["v"])
    assert position == (fields["chain"], fields["seq"], 1)
