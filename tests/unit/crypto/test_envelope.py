"""The sealed-data format: header parsing and the associated-data encoding."""

from __future__ import annotations

import pytest

from bastion.crypto.envelope import (
    KIND_SYSTEM,
    KIND_TENANT,
    MIN_SEALED_BYTES,
    MalformedSealedError,
    associated_data,
    header,
    parse_header,
    wrap_context,
)


def test_header_round_trips():
    head = header(KIND_TENANT, 7)
    assert head == bytes([1, 1, 0, 0, 0, 7])
    parsed = parse_header(head + bytes(MIN_SEALED_BYTES))
    assert (parsed.kind, parsed.version) == (KIND_TENANT, 7)
    assert parse_header(header(KIND_SYSTEM, 2**32 - 1) + bytes(28)).version == 2**32 - 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too short"),
        (bytes([1, 1, 0, 0, 0, 1]) + bytes(27), "too short"),
        (bytes([2, 1, 0, 0, 0, 1]) + bytes(28), "unknown sealed format 2"),
        (bytes([1, 9, 0, 0, 0, 1]) + bytes(28), "unknown key kind 9"),
        (bytes([1, 1, 0, 0, 0, 0]) + bytes(28), "version 0"),
        ("text", "not bytes"),
    ],
)
def test_malformed_headers_are_refused(data, reason):
    with pytest.raises(MalformedSealedError, match=reason):
        parse_header(data)


def test_associated_data_is_injective_across_field_boundaries():
    head = header(KIND_TENANT, 1)
    seen = {
        associated_data(head, owner, purpose, record)
        for owner, purpose, record in [
            ("ab", "c", "d"),
            ("a", "bc", "d"),
            ("a", "b", "cd"),
            ("abc", "", "d"),
            ("", "abc", "d"),
        ]
    }
    assert len(seen) == 5
    assert associated_data(head, "t", "p", "r") != associated_data(
        header(KIND_TENANT, 2), "t", "p", "r"
    )


def test_associated_data_bounds_names():
    with pytest.raises(ValueError, match="1024"):
        associated_data(header(KIND_TENANT, 1), "t", "p" * 1025, "r")


def test_wrap_contexts_differ_by_every_field():
    contexts = {
        wrap_context("tenant", "t", 1, "key"),
        wrap_context("tenant", "t", 1, "index"),
        wrap_context("tenant", "t", 2, "key"),
        wrap_context("tenant", "u", 1, "key"),
        wrap_context("system", "t", 1, "key"),
    }
    assert len(contexts) == 5
