"""Request and response shapes of the collection and record endpoints.

Record bodies are read raw by the router (any JSON object, a size limit, merge-patch media
type), so only collections and the answers have models here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bastion.records import Collection, Record

# The exact rules are the service's (documents.check_collection_name / check_indexed); these
# bound sizes before anything else runs.
CollectionName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
IndexedFields = Annotated[list[FieldName], Field(max_length=16)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class CreateCollectionRequest(_Request):
    name: CollectionName
    # "schema" on the wire; a different attribute name, since BaseModel has a schema() method.
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    indexed: IndexedFields = []
    audit_reads: bool = True


class UpdateCollectionRequest(_Request):
    """Only the members present change; ``"schema": null`` removes the schema."""

    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    indexed: IndexedFields | None = None
    audit_reads: bool | None = None


class CollectionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    json_schema: dict[str, Any] | None = Field(serialization_alias="schema")
    indexed: list[str]
    audit_reads: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, collection: Collection) -> CollectionOut:
        return cls(
            name=collection.name,
            json_schema=dict(collection.json_schema) if collection.json_schema else None,
            indexed=list(collection.indexed),
            audit_reads=collection.audit_reads,
            created_at=collection.created_at,
            updated_at=collection.updated_at,
        )


class CollectionList(BaseModel):
    items: list[CollectionOut]
    next_cursor: str | None = None


class RecordOut(BaseModel):
    id: str
    data: dict[str, Any]
    etag: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: Record) -> RecordOut:
        return cls(
            id=record.id,
            data=record.data,
            etag=record.etag,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class RecordList(BaseModel):
    items: list[RecordOut]
    next_cursor: str | None = None
