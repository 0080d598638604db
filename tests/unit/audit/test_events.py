"""What an event may hold: no secrets, bounded, plain JSON, well-formed names."""

from __future__ import annotations

import pytest

import bastion.audit
from bastion.audit import AuditDetailsTooLarge, InvalidAuditEvent, SecretInAuditDetails
from bastion.audit.events import (
    canonical_details,
    chain_for,
    checked_action,
    checked_source_ip,
    clipped_user_agent,
    is_secret_detail_key,
)
from bastion.audit.query import decode_cursor, encode_cursor
from bastion.errors import InvalidInput


@pytest.mark.parametrize(
    "details",
    [
        {"password": "hunter2"},
        {"new_password": "hunter2"},
        {"token": "hunter2"},
        {"refresh_token": "hunter2"},
        {"client_secret": "hunter2"},
        {"api_key": "hunter2"},
        {"apiKey": "hunter2"},
        {"private_key": "hunter2"},
        {"key": "hunter2"},
        {"Authorization": "hunter2"},
        {"credentials": "hunter2"},
        {"outer": {"inner": [{"totp_secret": "hunter2"}]}},
    ],
)
def test_secret_looking_keys_are_refused_at_any_depth(details):
    with pytest.raises(SecretInAuditDetails) as caught:
        canonical_details(details, max_bytes=4096)
    assert "hunter2" not in str(caught.value)  # the key is named, never the value
    assert isinstance(caught.value, InvalidInput)


@pytest.mark.parametrize("name", ["key_id", "key_version", "public_key", "monkey_count", "role"])
def test_key_descriptions_are_allowed(name):
    assert not is_secret_detail_key(name)


@pytest.mark.parametrize(
    "details",
    [{"ratio": 0.5}, {"big": 2**53}, {"bytes": b"x"}, {1: "x"}, {"s": "a\x00b"}, {"s": "\ud800"}],
)
def test_anything_but_plain_portable_json_is_refused(details):
    with pytest.raises(InvalidAuditEvent):
        canonical_details(details, max_bytes=4096)


def test_details_are_bounded_in_size_and_depth():
    with pytest.raises(AuditDetailsTooLarge):
        canonical_details({"note": "x" * 300}, max_bytes=256)
    deep: dict = {}
    node = deep
    for _ in range(10):
        node["n"] = {}
        node = node["n"]
    with pytest.raises(InvalidAuditEvent, match="deeper"):
        canonical_details(deep, max_bytes=4096)


@pytest.mark.parametrize("action", ["member.removed", "key.rotated", "a.b.c_d"])
def test_dotted_lowercase_actions_are_accepted(action):
    assert checked_action(action) == action


@pytest.mark.parametrize("action", ["removed", "Member.removed", "member..removed", "member.", ""])
def test_other_action_names_are_refused(action):
    with pytest.raises(InvalidAuditEvent):
        checked_action(action)


def test_addresses_agents_and_chain_ids_are_checked():
    assert checked_source_ip("2001:DB8::1") == "2001:db8::1"
    with pytest.raises(InvalidAuditEvent):
        checked_source_ip("not-an-ip")
    assert len(clipped_user_agent("x" * 10_000) or "") == 512
    assert chain_for(None) == "system"
    for bad in ("system", "../x", "a/b", "x" * 37, ""):
        with pytest.raises(InvalidAuditEvent):
            chain_for(bad)


def test_cursors_round_trip_and_are_bound_to_their_chain():
    cursor = encode_cursor("tenant-a", 42)
    assert decode_cursor(cursor, "tenant-a") == 42
    with pytest.raises(bastion.audit.InvalidAuditCursor):
        decode_cursor(cursor, "tenant-b")


def test_the_public_surface_is_deliberate():
    assert sorted(bastion.audit.__all__) == sorted([
        "GENESIS_HASH", "SYSTEM_CHAIN", "AuditAction", "AuditDetailsTooLarge", "AuditError",
        "AuditEvent", "AuditFilter", "AuditLog", "AuditPage", "AuditQuery", "AuditRecord",
        "AuditVerifier", "AuditWriteFailed", "BatcherStats", "ChainReport", "CheckpointSigner",
        "Checkpointer", "ReadAuditBatcher",
        "Damage", "DamageKind", "EntryRef", "InvalidAuditCursor", "InvalidAuditEvent",
        "InvalidAuditExport", "Keys", "Outcome", "Pseudonymizer", "PublishReport",
        "SecretInAuditDetails", "SignatureVerifier", "VerifyReport", "export_lines",
        "load_public_key_pem", "run_scheduled_verification", "verify_export",
    ])  # fmt: skip
    for name in bastion.audit.__all__:
        assert getattr(bastion.audit, name) is not None
