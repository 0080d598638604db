"""JSON documents: parsing, size, JSON Merge Patch, JSON Schema and indexable values.

Pure functions, no I/O. Errors never quote a submitted value beyond what the JSON Schema
message itself says about the caller's own document (returned to that caller only).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, Protocol

from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from bastion.records import patterns
from bastion.records.errors import (
    InvalidCollection,
    MalformedDocument,
    RecordTooLarge,
    SchemaViolation,
)
from bastion.records.types import JsonObject

if TYPE_CHECKING:
    # Imported where a schema is compiled, not at start-up: where jsonschema's optional format
    # helpers are installed (rfc3987-syntax builds a grammar on import), importing it took
    # 1.5-7 s, paid by every `bastion` command and server start that never saw a schema.
    from jsonschema import Draft202012Validator

COLLECTION_NAME: Final = re.compile(r"[a-z][a-z0-9_-]{0,63}")
FIELD_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_INDEXED_FIELDS: Final = 16
MAX_SCHEMA_BYTES: Final = 64 * 1024
MAX_ERRORS_SHOWN: Final = 20
MAX_ERROR_DETAIL_CHARS: Final = 300
# Nesting beyond this is refused before json.loads recurses into it (a stack-depth attack).
MAX_DEPTH: Final = 64
# Schema keyword evaluations one document may cost. anyOf/oneOf evaluate every branch in full,
# so a schema whose branches recurse doubles its work per level of the document: without a
# budget, 40 levels keep a worker (and much of the GIL) busy for days. 4,000 objects of three
# checked fields (a 256 KiB document) took 32,000 steps; the budget is eight times that, about
# two seconds of a loaded machine at worst.
MAX_SCHEMA_STEPS: Final = 250_000
_BUDGET: ContextVar[list[int] | None] = ContextVar("bastion_schema_budget", default=None)


def encode(document: Mapping[str, Any]) -> bytes:
    """The canonical stored form: compact UTF-8 JSON (what is sealed and what the size limit
    measures). MalformedDocument (400) for text with no UTF-8 form (a lone surrogate, which
    JSON's ``\\ud800`` escape can carry) or a non-finite number."""
    try:
        return json.dumps(
            document, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedDocument("The document holds text that is not valid Unicode.") from None
    except ValueError:
        raise MalformedDocument("The document holds a number JSON cannot carry.") from None


def encode_schema(schema: Mapping[str, Any]) -> str:
    """A schema as stored: ASCII-only JSON text (PostgreSQL text refuses NUL characters, and
    escapes keep any odd code point intact). InvalidCollection for a non-finite number."""
    try:
        return json.dumps(schema, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except ValueError:
        raise InvalidCollection("The schema holds a number JSON cannot carry.") from None


def decode_stored(plaintext: bytes) -> JsonObject:
    """A document this service sealed earlier (already validated when it was written)."""
    document: JsonObject = json.loads(plaintext)
    return document


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # "1e999" is valid JSON text but no finite number: refused rather than stored as Infinity.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number out of range")
    return value


def parse_object(body: bytes, *, what: str = "The request body") -> JsonObject:
    """``body`` as a JSON object; MalformedDocument (400) for anything else: invalid UTF-8 or
    JSON, NaN/Infinity, nesting over MAX_DEPTH, or a non-object at the top."""
    if _too_deep(body):
        raise MalformedDocument(f"{what} nests deeper than {MAX_DEPTH} levels.")
    try:
        document = json.loads(
            body.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedDocument(f"{what} is not valid JSON.") from None
    if not isinstance(document, dict):
        raise MalformedDocument(f"{what} must be a JSON object.")
    return document


# Every byte but the four brackets: ``bytes.translate`` deletes them at C speed.
_NOT_BRACKETS: Final = bytes(byte for byte in range(256) if byte not in b"[]{}")


def _too_deep(body: bytes) -> bool:
    # Brackets inside strings count too: an over-estimate that only refuses absurd documents.
    # Nesting cannot exceed the number of opening brackets, so most documents need no walk;
    # the others walk their brackets only, not every byte (a 256 KiB body took ~10 ms).
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    for byte in body.translate(None, _NOT_BRACKETS):
        if byte in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def check_size(encoded: bytes, *, limit: int) -> None:
    if len(encoded) > limit:
        raise RecordTooLarge(
            f"The record is {len(encoded)} bytes as compact JSON; the limit is {limit}.",
            limit_bytes=limit,
        )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 section 2: objects merge member by member, ``null`` removes a member, anything
    else (arrays included) replaces the target outright."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def pointer(path: Iterable[str | int]) -> str:
    """An RFC 6901 JSON Pointer for a path of member names and array indexes."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def compile_schema(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A validator for a draft 2020-12 schema; InvalidCollection (422) pointing into the schema
    when it is not one. No remote ``$ref`` is ever fetched (jsonschema resolves none by default)."""
    from jsonschema import Draft202012Validator  # noqa: PLC0415 - see the TYPE_CHECKING import
    from jsonschema.exceptions import SchemaError  # noqa: PLC0415

    if len(encode_schema(schema)) > MAX_SCHEMA_BYTES:
        raise InvalidCollection(f"The schema is larger than {MAX_SCHEMA_BYTES} bytes.")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidCollection(
            "The schema is not a valid JSON Schema (draft 2020-12).",
            errors=[{"pointer": "/schema" + pointer(exc.path), "detail": _short(exc.message)}],
        ) from None
    resolver = Registry().resolver_with_root(DRAFT202012.create_resource(schema))
    bad = _first_bad_reference(schema, (), resolver)
    if bad is not None:
        where, why = bad
        raise InvalidCollection(
            'A $ref must point inside the schema itself ("#..."), at something that exists; '
            "remote schemas are never fetched.",
            errors=[{"pointer": "/schema" + pointer(where), "detail": why}],
        )
    unsupported = patterns.first_unsupported(schema)
    if unsupported is not None:
        where, why = unsupported
        raise InvalidCollection(
            "A pattern must be a regular expression RE2 can run (linear time: no "
            "backreferences, no lookaround).",
            errors=[{"pointer": "/schema" + pointer(where), "detail": why}],
        )
    validator: Draft202012Validator = _linear_time_validator()(schema)
    return validator


@functools.cache
def _linear_time_validator() -> Any:
    """Draft 2020-12 with ``pattern`` and ``patternProperties`` on RE2 (``records.patterns``):
    a backtracking ``re`` would let a tenant's schema freeze the process."""
    from jsonschema import Draft202012Validator, ValidationError, validators  # noqa: PLC0415

    def counted(keyword: Any) -> Any:
        def evaluate(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
            budget = _BUDGET.get()
            if budget is not None:
                budget[0] -= 1
                if budget[0] < 0:
                    raise _OverBudget
            return keyword(validator, value, instance, schema)

        return evaluate

    def pattern(validator: Any, regex: str, instance: Any, _schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not patterns.search(regex, instance):
            yield ValidationError(f"{_short(repr(instance))} does not match {regex!r}")

    def pattern_properties(
        validator: Any, properties: dict[str, Any], instance: Any, _schema: Any
    ) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        for regex, subschema in properties.items():
            for name, value in instance.items():
                if patterns.search(regex, name):
                    yield from validator.descend(value, subschema, path=name, schema_path=regex)

    keywords = {
        **Draft202012Validator.VALIDATORS,
        "pattern": pattern,
        "patternProperties": pattern_properties,
    }
    return validators.extend(
        Draft202012Validator, {name: counted(keyword) for name, keyword in keywords.items()}
    )


class _OverBudget(Exception):
    """Raised inside the validator when a document has used up ``MAX_SCHEMA_STEPS``."""


REFERENCE_KEYWORDS: Final = ("$ref", "$dynamicRef")


class _Resolver(Protocol):
    def lookup(self, ref: str) -> object: ...


def _first_bad_reference(
    node: Any, path: tuple[str | int, ...], resolver: _Resolver
) -> tuple[tuple[str | int, ...], str] | None:
    """Where the first ``$ref`` that is remote or resolves to nothing is, and why."""
    if isinstance(node, dict):
        for keyword in REFERENCE_KEYWORDS:
            target = node.get(keyword)
            if not isinstance(target, str):
                continue
            if not target.startswith("#"):
                return (*path, keyword), "a remote reference"
            try:
                resolver.lookup(target)
            except Unresolvable:
                return (*path, keyword), "resolves to nothing in this schema"
        children: Iterable[tuple[str | int, Any]] = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    else:
        return None
    for name, value in children:
        found = _first_bad_reference(value, (*path, name), resolver)
        if found is not None:
            return found
    return None


def validate(validator: Draft202012Validator, document: JsonObject) -> None:
    """SchemaViolation (422) listing each offending value as {pointer, detail};
    InvalidCollection (422) when the schema itself cannot be applied (a local ``$ref`` to
    nothing)."""
    budget = _BUDGET.set([MAX_SCHEMA_STEPS])
    try:
        found = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    except Unresolvable:
        raise InvalidCollection(
            "The collection's schema cannot be applied: a $ref in it resolves to nothing. "
            "Fix the schema (PATCH the collection)."
        ) from None
    except _OverBudget:
        raise InvalidCollection(
            f"Validating this document against the collection's schema takes more than "
            f"{MAX_SCHEMA_STEPS} steps (branches of anyOf/oneOf that recurse into the document "
            "double the work per level); simplify the schema or the document."
        ) from None
    finally:
        _BUDGET.reset(budget)
    if not found:
        return
    raise SchemaViolation(
        f"The document breaks the collection's schema in {len(found)} place(s).",
        errors=[
            {"pointer": pointer(error.path), "detail": _short(error.message)}
            for error in found[:MAX_ERRORS_SHOWN]
        ],
    )


def _short(message: str) -> str:
    if len(message) <= MAX_ERROR_DETAIL_CHARS:
        return message
    return message[: MAX_ERROR_DETAIL_CHARS - 1] + "…"


def check_collection_name(name: str) -> str:
    if not COLLECTION_NAME.fullmatch(name):
        raise InvalidCollection(
            "A collection name is 1 to 64 characters: a lower-case letter, then lower-case "
            "letters, digits, '_' or '-'."
        )
    return name


def check_indexed(fields: Sequence[str]) -> tuple[str, ...]:
    unique = tuple(dict.fromkeys(fields))
    if len(unique) > MAX_INDEXED_FIELDS:
        raise InvalidCollection(f"At most {MAX_INDEXED_FIELDS} fields can be indexed.")
    bad = [f for f in unique if not FIELD_NAME.fullmatch(f)]
    if bad:
        raise InvalidCollection(
            "Indexed fields are top-level member names: a letter or '_', then letters, digits "
            "or '_', at most 64 characters.",
            fields=bad[:MAX_ERRORS_SHOWN],
        )
    return unique


def index_text(value: Any) -> str | None:
    """The text an indexed value is matched by, or None when it is not indexable.

    Strings match as themselves; integers, ``true``/``false`` and finite numbers by their JSON
    text (so ``?filter[n]=12`` finds both ``12`` and ``"12"``). null, objects and arrays are not
    indexed.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return json.dumps(value)
    return None
