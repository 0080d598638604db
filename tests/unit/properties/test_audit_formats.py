"""Properties of the audit chain's byte formats and of the parsers that read them back.

- ``entry_bytes`` (the hand-written fast template) is byte-for-byte ``canonical_json`` of the
  13-member entry, for any strings, any sequence number and any canonical details; a string with
  no UTF-8 form (a lone surrogate) is refused, never hashed in some other encoding.
- ``canonical_details`` answers canonical text that parses back to the same value and is its own
  fixed point, or one of the audit errors; never anything else.
- Audit times round-trip through ``format_time``/``parse_time``; any other text is a ValueError.
- Cursors round-trip, are bound to their chain, and arbitrary text is InvalidAuditCursor.
- ``verify_export`` on an arbitrary file answers a report or InvalidAuditExport.
"""

from __future__ import annotations

import json
import string
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bastion.audit import InvalidAuditCursor, InvalidAuditExport, Keys, verify_export
from bastion.audit.canonical import (
    canonical_json,
    chain_hash,
    entry_bytes,
    format_time,
    parse_time,
)
from bastion.audit.errors import AuditError
from bastion.audit.events import CHAIN_ID_PATTERN, canonical_details
from bastion.audit.export import EXPORT_FORMAT, HEADER_LINE_TYPE
from bastion.audit.query import decode_cursor, encode_cursor

UNICODE = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
MAYBE = st.none() | UNICODE
ANY_TEXT = st.text(max_size=40)  # lone surrogates included
SAFE_INT = st.integers(-(2**53) + 1, 2**53 - 1)
JSON = st.recursive(
    st.none() | st.booleans() | SAFE_INT | UNICODE,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(UNICODE, inner, max_size=4),
    max_leaves=12,
)
# Anything a caller might pass as details, most of it not allowed.
ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT | st.binary(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(ANY_TEXT | st.integers(), inner, max_size=3)
    ),
    max_leaves=10,
)
# What canonical_details accepts: no NUL anywhere (PostgreSQL text cannot hold it).
NO_NUL = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
DETAILS_JSON = st.recursive(
    st.none() | st.booleans() | SAFE_INT | NO_NUL,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NO_NUL, inner, max_size=4),
    max_leaves=12,
)
CHAIN_IDS = st.from_regex(CHAIN_ID_PATTERN, fullmatch=True)
FIELDS = ("tenant", "actor", "target", "source_ip", "user_agent", "request_id")


def _no_secret_keys(value) -> bool:
    # canonical_details refuses secret-looking keys; the equality property is about the rest.
    if isinstance(value, dict):
        return all(
            not any(word in key.lower() for word in ("key", "secret", "token", "pass", "cookie"))
            and not any(word in key.lower() for word in ("authorization", "credential"))
            and _no_secret_keys(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return all(_no_secret_keys(item) for item in value)
    return True


@given(
    members=st.fixed_dictionaries(
        {
            "chain": UNICODE,
            "seq": st.integers(1, 2**63 - 1),
            "time": UNICODE,
            "action": UNICODE,
            "outcome": UNICODE,
            **dict.fromkeys(FIELDS, MAYBE),
        }
    ),
    details=st.dictionaries(NO_NUL, DETAILS_JSON, max_size=4),
)
def test_entry_bytes_is_exactly_the_canonical_json_of_the_entry(members, details):
    assume(_no_secret_keys(details))
    details_json = canonical_details(details, max_bytes=10**9)
    fast = entry_bytes(details_json=details_json, **members)
    entry = {"v": 1, "details": details, **members}
    assert fast == canonical_json(entry).encode("utf-8")
    assert len(chain_hash("0" * 64, fast)) == 64


@given(text=ANY_TEXT, field=st.sampled_from(FIELDS))
def test_a_string_without_a_utf8_form_is_refused_not_hashed(text, field):
    arguments = dict.fromkeys(FIELDS)
    arguments[field] = text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            entry_bytes(
                chain="c", seq=1, time="t", action="a.b", outcome="success", details_json="{}",
                **arguments,
            )  # fmt: skip


@settings(max_examples=200)
@given(details=ANYTHING)
def test_canonical_details_is_canonical_text_or_an_audit_error(details):
    try:
        text = canonical_details(details, max_bytes=4096)
    except AuditError:
        return
    parsed = json.loads(text)
    assert canonical_json(parsed) == text  # a fixed point: the canonical form of itself
    assert parsed == json.loads(json.dumps(details))  # the same value (tuples become lists)
    assert len(text.encode("utf-8")) <= 4096


@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC)
        | st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23))),
    )
)
def test_audit_times_round_trip_in_utc(moment):
    text = format_time(moment)
    assert len(text) == len("2026-01-01T00:00:00.000000Z")
    assert parse_time(text) == moment
    assert parse_time(text).tzinfo == UTC


@given(text=ANY_TEXT | st.from_regex(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", fullmatch=True))
def test_parse_time_accepts_the_canonical_shape_only(text):
    try:
        parsed = parse_time(text)
    except ValueError:
        return
    assert format_time(parsed) == text


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 1, 1))


@given(chain=CHAIN_IDS, other=CHAIN_IDS, seq=st.integers(1, 10**30))
def test_cursors_round_trip_and_are_bound_to_their_chain(chain, other, seq):
    cursor = encode_cursor(chain, seq)
    assert set(cursor) <= set(string.ascii_letters + string.digits + "-_")
    assert decode_cursor(cursor, chain) == seq
    if other != chain:
        with pytest.raises(InvalidAuditCursor):
            decode_cursor(cursor, other)


@given(cursor=st.text(max_size=80), chain=CHAIN_IDS)
def test_any_cursor_text_is_a_position_or_invalid_audit_cursor(cursor, chain):
    try:
        seq = decode_cursor(cursor, chain)
    except InvalidAuditCursor:
        return
    assert seq >= 1


EVENT_MEMBERS = (
    "seq", "time", "tenant", "actor", "action", "target", "outcome", "source_ip", "user_agent",
    "request_id", "details", "prev_hash", "hash",
)  # fmt: skip


@st.composite
def export_line(draw) -> bytes:
    kind = draw(st.sampled_from(["event", "event", "checkpoint", "export", "junk", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=40)).replace(b"\n", b"")
    if kind == "junk":
        return json.dumps(draw(JSON)).encode()
    members = draw(st.lists(st.sampled_from(EVENT_MEMBERS), unique=True))
    document = {name: draw(JSON) for name in members}
    document.update(type=kind, chain=draw(st.sampled_from(["system", "other"])))
    if kind == "checkpoint":
        document.update(signature=draw(UNICODE), key_id=draw(UNICODE))
    return json.dumps(document, ensure_ascii=draw(st.booleans())).encode()


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(export_line(), max_size=6))
def test_verify_export_reads_any_json_lines_file_as_a_report_or_invalid_export(lines):
    header = json.dumps({"type": HEADER_LINE_TYPE, "format": EXPORT_FORMAT, "chain": "system"})
    _verify_bytes(b"\n".join([header.encode(), *lines]) + b"\n")


def _verify_bytes(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "export.jsonl"
        path.write_bytes(content)
        try:
            report = verify_export(path, Keys())
        except InvalidAuditExport:
            return
        assert len(report.chains) == 1


def _header() -> bytes:
    return json.dumps(
        {"type": HEADER_LINE_TYPE, "format": EXPORT_FORMAT, "chain": "system"}
    ).encode()


def test_an_export_that_is_not_utf8_is_an_invalid_export(tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_bytes(_header() + b"\n\xff\xfe\n")
    with pytest.raises(InvalidAuditExport, match="not UTF-8"):
        verify_export(path, Keys())


def test_an_export_with_absurdly_nested_json_is_an_invalid_export(tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_bytes(_header() + b"\n" + b"[" * 100_000 + b"\n")
    with pytest.raises(InvalidAuditExport, match="not JSON"):
        verify_export(path, Keys())
