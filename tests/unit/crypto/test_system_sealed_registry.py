"""Every value sealed with the system data key lives in a registered column.

Retiring a system data-key version destroys it once no *registered* column holds a value sealed
with it; a column nobody registered would silently become unreadable. So every ``seal_system``
call in the source must use a purpose constant that a declaration in
``bootstrap.SYSTEM_SEALED_COLUMNS`` carries, and every declaration must be a valid column.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from sqlalchemy import create_engine

import bastion
from bastion.bootstrap import SYSTEM_SEALED_COLUMNS
from bastion.crypto import SystemSealedColumn

SOURCE = Path(bastion.__file__).parent
# The keyring itself re-seals values under the purpose they were found with (re-encryption).
EXEMPT = ("bastion.crypto",)


def _module_name(path: Path) -> str:
    relative = path.relative_to(SOURCE.parent).with_suffix("")
    return ".".join(relative.parts).removesuffix(".__init__")


def seal_system_calls(module: str, tree: ast.AST) -> list[tuple[str, int, object]]:
    """(module, line, purpose) of every ``<x>.seal_system(purpose=...)`` call; ``purpose`` is the
    constant's value, or an explanation string starting with '?' when it cannot be resolved."""
    found: list[tuple[str, int, object]] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "seal_system"
        ):
            continue
        purpose = next((k.value for k in node.keywords if k.arg == "purpose"), None)
        if isinstance(purpose, ast.Constant):
            found.append((module, node.lineno, purpose.value))
        elif isinstance(purpose, ast.Name):
            value = getattr(importlib.import_module(module), purpose.id, None)
            found.append((module, node.lineno, value if value is not None else "?unresolved"))
        else:
            found.append((module, node.lineno, "?not a named constant"))
    return found


def unregistered(calls, registered):
    return [(module, line, purpose) for module, line, purpose in calls if purpose not in registered]


def _all_calls():
    calls = []
    for path in sorted(SOURCE.rglob("*.py")):
        module = _module_name(path)
        if any(module == e or module.startswith(e + ".") for e in EXEMPT):
            continue
        calls.extend(seal_system_calls(module, ast.parse(path.read_text(), filename=str(path))))
    return calls


REGISTERED = {purpose for _, purpose in SYSTEM_SEALED_COLUMNS}


def test_every_seal_system_call_uses_a_registered_purpose():
    calls = _all_calls()
    # The scan finds the known sealing sites (a scan that finds nothing would pass vacuously).
    assert {module for module, _, _ in calls} >= {
        "bastion.identity.keys",
        "bastion.identity.mfa",
        "bastion.mail.queue",
        "bastion.access.invitations",
    }
    assert unregistered(calls, REGISTERED) == [], (
        "seal_system with a purpose no SYSTEM_SEALED declaration carries: declare the column "
        "(ORM column, purpose) in the domain and add it to bootstrap.SYSTEM_SEALED_COLUMNS"
    )


def test_every_registered_purpose_is_sealed_somewhere():
    used = {purpose for _, _, purpose in _all_calls()}
    assert used >= REGISTERED, f"declared but never sealed: {sorted(REGISTERED - used)}"


def test_the_check_catches_an_unregistered_or_dynamic_purpose():
    source = (
        "PURPOSE = 'x.new_secret'\n"
        "def f(keys, row):\n"
        "    keys.seal_system(purpose='x.literal', record_id=row.id, plaintext=b'')\n"
        "    keys.seal_system(purpose=row.kind, record_id=row.id, plaintext=b'')\n"
    )
    calls = seal_system_calls("bastion.identity.keys", ast.parse(source))
    assert [purpose for _, _, purpose in unregistered(calls, REGISTERED)] == [
        "x.literal",
        "?not a named constant",
    ]


@pytest.mark.parametrize(
    ("attribute", "purpose"), SYSTEM_SEALED_COLUMNS, ids=[p for _, p in SYSTEM_SEALED_COLUMNS]
)
def test_every_declaration_is_a_valid_system_sealed_column(attribute, purpose):
    column = SystemSealedColumn.of(attribute, purpose=purpose, engine=create_engine("sqlite://"))
    assert column.name.startswith("system:")
    assert column.purpose == purpose


def test_declarations_are_unique_per_column():
    engine = create_engine("sqlite://")
    names = [
        SystemSealedColumn.of(attribute, purpose=purpose, engine=engine).name
        for attribute, purpose in SYSTEM_SEALED_COLUMNS
    ]
    assert len(names) == len(set(names))


def test_a_column_needs_one_text_primary_key_and_a_purpose():
    from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table

    engine = create_engine("sqlite://")
    metadata = MetaData()
    composite = Table(
        "composite",
        metadata,
        Column("a", String, primary_key=True),
        Column("b", String, primary_key=True),
        Column("sealed", LargeBinary),
    )
    numeric = Table(
        "numeric", metadata, Column("id", Integer, primary_key=True), Column("sealed", LargeBinary)
    )
    good = Table(
        "good", metadata, Column("id", String, primary_key=True), Column("sealed", LargeBinary)
    )
    for table in (composite, numeric):
        with pytest.raises(ValueError, match="one-column text key"):
            SystemSealedColumn(engine=engine, table=table, column="sealed", purpose="p")
    with pytest.raises(ValueError, match="purpose"):
        SystemSealedColumn(engine=engine, table=good, column="sealed", purpose="")
    assert SystemSealedColumn(engine=engine, table=good, column="sealed", purpose="p").name == (
        "system:good.sealed"
    )
