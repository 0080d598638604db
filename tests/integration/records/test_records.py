"""Collections and records on SQLite and PostgreSQL: CRUD, schema, size, merge patch, ETags,
filters through blind indexes, tenant isolation, and nothing written on a refused call."""

import pytest
from sqlalchemy import func, select

from bastion.audit import AuditFilter, AuditQuery
from bastion.records import (
    CollectionChanges,
    CollectionExists,
    CollectionNotEmpty,
    CollectionNotFound,
    InvalidCollection,
    InvalidCursor,
    InvalidFilter,
    RecordNotFound,
    RecordTooLarge,
    SchemaViolation,
    VersionMismatch,
)
from bastion.records.models import RecordIndexRow, RecordRow
from tests.support.identity import CLIENT

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
        },
    },
    "required": ["name"],
}


def _collection(tenant, records, name="people", **kwargs):
    kwargs.setdefault("json_schema", SCHEMA)
    kwargs.setdefault("indexed", ["name", "age"])
    kwargs.setdefault("audit_reads", True)
    return tenant.run(records.collections.create, name=name, client=CLIENT, **kwargs)


def _create(tenant, records, document, collection="people"):
    return tenant.run(records.create, collection, document=document, client=CLIENT)


def _read(tenant, records, record_id, collection="people"):
    return tenant.run(records.read, collection, record_id, client=CLIENT).record


def _count(engine, table):
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def _actions(audit_log, tenant):
    with tenant.uow.begin() as session:
        page = AuditQuery(audit_log=audit_log).search(
            session, tenant_id=tenant.tenant_id, filters=AuditFilter(), limit=200, cursor=None
        )
    return [event.action for event in page.items]


def test_create_read_and_audit_a_record(acme, records, audit_log):
    _collection(acme, records)
    created = _create(acme, records, {"name": "Ada", "age": 36})
    assert created.etag == '"v1"'
    read = acme.run(records.read, "people", created.id, client=CLIENT)
    assert read.record.data == {"name": "Ada", "age": 36}
    assert read.record.etag == created.etag
    # The read's event is handed back for the edge to record after the read transaction.
    assert read.audit.action == "record.read"
    assert read.audit.target == f"people/{created.id}"
    assert "Ada" not in repr(read.audit.details)
    actions = _actions(audit_log, acme)
    assert {"collection.created", "record.created"} <= set(actions)
    _collection(acme, records, name="quiet", audit_reads=False)
    created = _create(acme, records, {"name": "Ada"}, collection="quiet")
    assert acme.run(records.read, "quiet", created.id, client=CLIENT).audit is None


def test_schema_violation_names_each_offending_value_and_writes_nothing(
    acme, records, engine, audit_log
):
    _collection(acme, records)
    before = (_count(engine, RecordRow), len(_actions(audit_log, acme)))
    with pytest.raises(SchemaViolation) as raised:
        _create(acme, records, {"name": "Ada", "age": -1, "address": {"city": 7}})
    pointers = {error["pointer"] for error in raised.value.details["errors"]}
    assert pointers == {"/age", "/address/city"}
    assert (_count(engine, RecordRow), len(_actions(audit_log, acme))) == before
    schema = {"type": "object", "properties": {"a/b~c": {"type": "string"}}}
    _collection(acme, records, name="odd", json_schema=schema, indexed=[])
    with pytest.raises(SchemaViolation) as raised:
        _create(acme, records, {"a/b~c": 1}, collection="odd")
    assert raised.value.details["errors"][0]["pointer"] == "/a~1b~0c"


def test_an_invalid_schema_or_name_is_refused(acme, globex, records):
    # Odd but valid text survives storage on both backends (PostgreSQL text refuses NUL).
    odd = {"type": "object", "description": "a\u0000b \ud800 \u202e"}
    assert _collection(acme, records, name="odd-text", json_schema=odd).json_schema == odd
    with pytest.raises(InvalidCollection) as raised:
        _collection(acme, records, json_schema={"type": "no-such-type"})
    assert raised.value.details["errors"][0]["pointer"].startswith("/schema")
    for bad in ("Upper", "has space", "", "x" * 65):
        with pytest.raises(InvalidCollection):
            _collection(acme, records, name=bad)
    with pytest.raises(InvalidCollection):
        _collection(acme, records, name="ok", indexed=["a.b"])
    _collection(acme, records)
    with pytest.raises(CollectionExists):
        _collection(acme, records)
    _collection(globex, records)  # another tenant may use the same name


def test_an_oversized_record_is_refused_and_nothing_is_written(acme, records, engine):
    _collection(acme, records, json_schema=None)
    with pytest.raises(RecordTooLarge):
        _create(acme, records, {"name": "x" * 4096})
    assert _count(engine, RecordRow) == 0
    small = _create(acme, records, {"name": "Ada"})
    with pytest.raises(RecordTooLarge):
        acme.run(
            records.patch,
            "people",
            small.id,
            patch={"bio": "y" * 4096},
            if_match=None,
            client=CLIENT,
        )
    assert _read(acme, records, small.id).data == {"name": "Ada"}


def test_merge_patch_follows_rfc_7386(acme, records):
    _collection(acme, records, json_schema=None)
    created = _create(
        acme, records, {"name": "Ada", "tags": ["a", "b"], "address": {"city": "X", "zip": "1"}}
    )
    patched = acme.run(
        records.patch,
        "people",
        created.id,
        patch={"tags": ["c"], "address": {"zip": None, "street": "Main"}, "name": None, "n": 1},
        if_match=created.etag,
        client=CLIENT,
    )
    expected = {"tags": ["c"], "address": {"city": "X", "street": "Main"}, "n": 1}
    assert patched.data == expected
    assert patched.etag == '"v2"'
    assert _read(acme, records, created.id).data == expected


def test_a_patch_that_breaks_the_schema_is_refused(acme, records):
    _collection(acme, records)
    created = _create(acme, records, {"name": "Ada"})
    with pytest.raises(SchemaViolation) as raised:
        acme.run(
            records.patch, "people", created.id, patch={"name": None}, if_match=None, client=CLIENT
        )
    assert raised.value.details["errors"][0]["pointer"] == ""
    assert _read(acme, records, created.id).version == 1


def test_a_stale_if_match_is_refused_and_changes_nothing(acme, records):
    _collection(acme, records)
    created = _create(acme, records, {"name": "Ada"})
    replaced = acme.run(
        records.replace,
        "people",
        created.id,
        document={"name": "Bea"},
        if_match=created.etag,
        client=CLIENT,
    )
    for stale in (created.etag, 'W/"v2"', '"2"', "garbage"):
        with pytest.raises(VersionMismatch):
            acme.run(
                records.replace,
                "people",
                created.id,
                document={"name": "Cy"},
                if_match=stale,
                client=CLIENT,
            )
        with pytest.raises(VersionMismatch):
            acme.run(records.delete, "people", created.id, if_match=stale, client=CLIENT)
    assert _read(acme, records, created.id).data == {"name": "Bea"}
    # A list naming the current ETag, or "*", matches.
    acme.run(
        records.replace,
        "people",
        created.id,
        document={"name": "Di"},
        if_match=f'"v9", {replaced.etag}',
        client=CLIENT,
    )
    acme.run(records.delete, "people", created.id, if_match="*", client=CLIENT)
    with pytest.raises(RecordNotFound):
        _read(acme, records, created.id)


def test_filters_match_indexed_fields_exactly_through_blind_indexes(acme, records, engine):
    _collection(acme, records, json_schema=None)
    ada = _create(acme, records, {"name": "Ada", "age": 36})
    bea = _create(acme, records, {"name": "Bea", "age": 36})
    _create(acme, records, {"name": "ada", "age": "36"})

    def ids(**filters):
        page = acme.run(
            records.page, "people", filters=filters, after=None, limit=10, client=CLIENT
        ).page
        return {r.data["name"] for r in page.items}

    assert ids(name="Ada") == {"Ada"}
    assert ids(age="36") == {"Ada", "Bea", "ada"}  # the number 36 and the string "36"
    assert ids(name="Bea", age="36") == {"Bea"}
    assert ids(name="Nobody") == set()
    with pytest.raises(InvalidFilter):
        ids(city="X")
    acme.run(records.delete, "people", bea.id, if_match=None, client=CLIENT)
    assert ids(age="36") == {"Ada", "ada"}
    with engine.connect() as connection:  # a deleted record keeps no index entry
        assert (
            connection.execute(
                select(func.count())
                .select_from(RecordIndexRow)
                .where(RecordIndexRow.record_id == bea.id)
            ).scalar_one()
            == 0
        )
    acme.run(records.patch, "people", ada.id, patch={"name": "Ann"}, if_match=None, client=CLIENT)
    assert ids(name="Ada") == set()
    assert ids(name="Ann") == {"Ann"}


def test_changing_indexed_fields_reindexes_live_records(acme, records):
    _collection(acme, records, json_schema=None, indexed=["name"])
    _create(acme, records, {"name": "Ada", "city": "Paris"})
    acme.run(
        records.collections.update, "people", CollectionChanges(indexed=["city"]), client=CLIENT
    )
    page = acme.run(
        records.page, "people", filters={"city": "Paris"}, after=None, limit=10, client=CLIENT
    ).page
    assert [r.data["name"] for r in page.items] == ["Ada"]
    with pytest.raises(InvalidFilter):
        acme.run(
            records.page, "people", filters={"name": "Ada"}, after=None, limit=10, client=CLIENT
        )


def test_pages_follow_the_cursor_without_repeats(acme, records):
    _collection(acme, records, json_schema=None, indexed=[])
    made = {_create(acme, records, {"name": f"n{i}"}).id for i in range(5)}
    seen, cursor = [], None
    while True:
        page = acme.run(
            records.page, "people", filters={}, after=cursor, limit=2, client=CLIENT
        ).page
        seen += [r.id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen))
    with pytest.raises(InvalidCursor):
        acme.run(records.page, "people", filters={}, after="x", limit=2, client=CLIENT)


def test_another_tenants_record_is_not_found_through_every_call(acme, globex, records):
    _collection(acme, records)
    _collection(globex, records)
    theirs = _create(acme, records, {"name": "Ada"})
    calls = [
        lambda s, c: records.read(s, c, "people", theirs.id, client=CLIENT),
        lambda s, c: records.replace(
            s, c, "people", theirs.id, document={"name": "X"}, if_match=None, client=CLIENT
        ),
        lambda s, c: records.patch(
            s, c, "people", theirs.id, patch={"name": "X"}, if_match=None, client=CLIENT
        ),
        lambda s, c: records.delete(s, c, "people", theirs.id, if_match=None, client=CLIENT),
    ]
    for call in calls:
        with pytest.raises(RecordNotFound):
            globex.run(call)
    page = globex.run(
        records.page, "people", filters={"name": "Ada"}, after=None, limit=10, client=CLIENT
    ).page
    assert page.items == []
    assert _read(acme, records, theirs.id).data == {"name": "Ada"}
    _collection(acme, records, name="private")  # a name only the other tenant has
    for call in (
        lambda s, c: records.collections.get(s, c, "private"),
        lambda s, c: records.collections.update(
            s, c, "private", CollectionChanges(audit_reads=False), client=CLIENT
        ),
        lambda s, c: records.collections.delete(s, c, "private", client=CLIENT),
        lambda s, c: records.create(s, c, "private", document={"name": "X"}, client=CLIENT),
    ):
        with pytest.raises(CollectionNotFound):
            globex.run(call)


def test_a_collection_with_live_records_cannot_be_deleted(acme, records, audit_log):
    _collection(acme, records)
    created = _create(acme, records, {"name": "Ada"})
    with pytest.raises(CollectionNotEmpty):
        acme.run(records.collections.delete, "people", client=CLIENT)
    acme.run(records.delete, "people", created.id, if_match=None, client=CLIENT)
    acme.run(records.collections.delete, "people", client=CLIENT)
    with pytest.raises(CollectionNotFound):
        acme.run(records.collections.get, "people")
    assert "collection.deleted" in _actions(audit_log, acme)
