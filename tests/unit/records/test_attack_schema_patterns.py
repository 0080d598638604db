"""Red team: a collection schema's ``pattern`` must not let one tenant freeze the server.

Python's ``re`` backtracks, and holds the GIL while it does: ``^(a+)+$`` against sixty-four
``a`` and a ``!`` would pin the whole process (every tenant's requests) for longer than the
universe has existed. Patterns run on RE2 (linear time) instead; a pattern RE2 cannot run
(backreferences, lookaround) is refused when the collection is made, with a pointer.
"""

import json
import subprocess
import sys

import pytest

from bastion.records.documents import compile_schema, validate
from bastion.records.errors import InvalidCollection, SchemaViolation

EVIL = {
    "type": "object",
    "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}},
    "patternProperties": {"^(b+)+$": {"type": "integer"}},
}
HOSTILE = "a" * 64 + "!"

PROBE = """
from bastion.records.documents import compile_schema, validate
from bastion.records.errors import SchemaViolation
import json, sys
validator = compile_schema(json.loads(sys.argv[1]))
for document in json.loads(sys.argv[2]):
    try:
        validate(validator, document)
        print("valid")
    except SchemaViolation:
        print("violation")
"""


def _in_a_child(schema, documents):
    # A child process: a backtracking match holds the GIL, so nothing in this process could
    # stop it; the child is killed instead.
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(schema), json.dumps(documents)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("validating one small document did not finish: catastrophic backtracking")
    return done.stdout.split()


def test_a_catastrophic_pattern_finishes_on_a_hostile_document():
    outcomes = _in_a_child(EVIL, [{"name": HOSTILE}, {"b" * 64 + "!": "x"}])
    assert outcomes == ["violation", "valid"]


def test_patterns_still_mean_what_they_say():
    validator = compile_schema(EVIL)
    validate(validator, {"name": "aaa", "bb": 3})
    with pytest.raises(SchemaViolation):
        validate(validator, {"name": "aab"})
    with pytest.raises(SchemaViolation):
        validate(validator, {"bb": "three"})


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"properties": {"x": {"pattern": "(a)\\1"}}}, "/schema/properties/x/pattern"),
        ({"patternProperties": {"(?=a)": {}}}, "/schema/patternProperties/(?=a)"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_with_a_pointer(schema, where):
    with pytest.raises(InvalidCollection) as caught:
        compile_schema(schema)
    assert caught.value.details["errors"][0]["pointer"] == where


def test_data_that_merely_looks_like_a_pattern_is_not_a_pattern():
    compile_schema({"const": {"pattern": "(a)\\1"}, "properties": {"pattern": {"type": "string"}}})


# anyOf evaluates every branch in full; each branch recursing into the document doubles the
# work per level, so 40 levels of {"a": ...} cost 2^40 keyword evaluations without a budget.
EXPONENTIAL = {
    "$defs": {"x": {"type": "object", "additionalProperties": {"$ref": "#"}}},
    "anyOf": [{"allOf": [{"$ref": "#/$defs/x"}, {"maxProperties": 0}]}, {"$ref": "#/$defs/x"}],
}
BUDGET_PROBE = """
from bastion.records.documents import compile_schema, validate
from bastion.errors import AppError
import json, sys
validator = compile_schema(json.loads(sys.argv[1]))
document = {}
for _ in range(40):
    document = {"a": document}
try:
    validate(validator, document)
    print("valid")
except AppError as exc:
    print(exc.code)
"""


def test_a_schema_whose_work_doubles_per_level_is_cut_off():
    try:
        done = subprocess.run(
            [sys.executable, "-c", BUDGET_PROBE, json.dumps(EXPONENTIAL)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("validating one small document did not finish: exponential schema work")
    assert done.stdout.split() == ["records.invalid_collection"]


def test_a_modest_document_fits_the_budget():
    validator = compile_schema(EXPONENTIAL)
    document = {}
    for _ in range(6):
        document = {"a": document}
    validate(validator, document)
