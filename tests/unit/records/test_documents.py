"""Record documents without a database: hostile JSON, merge patch, pointers, schemas, ETags."""

import pytest

from bastion.records import InvalidCollection, MalformedDocument, SchemaViolation
from bastion.records.documents import (
    compile_schema,
    encode,
    index_text,
    merge_patch,
    parse_object,
    pointer,
    validate,
)
from bastion.records.types import etag_for, version_from_etag


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe{",
        b"[]",
        b"null",
        b'{"a": ',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": 1e999}',
        b'{"a": ' + b"9" * 5000 + b"}",
        b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}",
    ],
)
def test_hostile_bodies_are_malformed_documents(body):
    with pytest.raises(MalformedDocument):
        parse_object(body)


def test_a_lone_surrogate_is_refused_when_stored_not_crashed_on():
    document = parse_object(b'{"a": "x\\ud800y"}')
    with pytest.raises(MalformedDocument):
        encode(document)


def test_nul_and_other_odd_text_round_trips():
    document = parse_object('{"a": "a\\u0000b\\u202e", "b": "é"}'.encode())
    assert parse_object(encode(document)) == document


def test_merge_patch_rfc_7386_appendix_a_examples():
    cases = [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ]
    for target, patch, expected in cases:
        assert merge_patch(target, patch) == expected
    assert merge_patch({"a": 1}, {}) == {"a": 1}


def test_pointers_escape_per_rfc_6901():
    assert pointer([]) == ""
    assert pointer(["a/b", "m~n", 0]) == "/a~1b/m~0n/0"


def test_schemas_with_remote_or_dangling_references_are_refused():
    for schema, where in (
        ({"$ref": "https://example.com/schema.json"}, "/schema/$ref"),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "/schema/properties/a/$ref"),
        ({"items": [{"$dynamicRef": "other.json#x"}]}, None),
    ):
        with pytest.raises(InvalidCollection) as raised:
            compile_schema(schema)
        if where is not None:
            assert raised.value.details["errors"][0]["pointer"] == where
    validator = compile_schema(
        {"$defs": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/s"}}}
    )
    with pytest.raises(SchemaViolation) as raised:
        validate(validator, {"a": 1})
    assert raised.value.details["errors"] == [
        {"pointer": "/a", "detail": "1 is not of type 'string'"}
    ]


def test_indexable_values_and_etags():
    assert [index_text(v) for v in ("x", 36, True, False, 1.5)] == [
        "x",
        "36",
        "true",
        "false",
        "1.5",
    ]
    assert [index_text(v) for v in (None, [1], {"a": 1})] == [None, None, None]
    assert version_from_etag(etag_for(7)) == 7
    for foreign in ('W/"v7"', '"7"', "v7", '"v"', '"v-1"', '"v' + "9" * 30 + '"', '"v٣"'):
        assert version_from_etag(foreign) is None


def test_nesting_is_limited_to_max_depth_levels_of_brackets():
    from bastion.records.documents import MAX_DEPTH

    def nested(levels: int) -> bytes:
        return b'{"a":' * (levels - 1) + b'{"a":1' + b"}" * levels

    assert parse_object(nested(MAX_DEPTH))["a"]
    with pytest.raises(MalformedDocument, match="deeper than"):
        parse_object(nested(MAX_DEPTH + 1))
    with pytest.raises(MalformedDocument, match="deeper than"):
        parse_object(b'{"a":' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}")
    # Many containers side by side are not deep: only nesting counts.
    flat = b'{"items":[' + b",".join(b'{"n":[1]}' for _ in range(500)) + b"]}"
    assert len(parse_object(flat)["items"]) == 500
    # Brackets inside strings count too (a documented over-estimate), whatever surrounds them.
    with pytest.raises(MalformedDocument, match="deeper than"):
        parse_object(b'{"s":"' + b"[" * (MAX_DEPTH + 1) + b'"}')
    assert parse_object(b'{"s":"' + b"][" * 200 + b'"}')["s"]
