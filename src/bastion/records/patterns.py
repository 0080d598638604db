"""JSON Schema ``pattern`` and ``patternProperties`` on RE2, a linear-time regular expression
engine, instead of Python's backtracking ``re``.

A collection's schema is tenant input. Under ``re``, ``^(a+)+$`` against a few dozen characters
backtracks for ever while holding the GIL, so one tenant's document would freeze the whole
process for every tenant. RE2 runs in time linear in the text; what it cannot express
(backreferences, lookaround) is refused when the schema is compiled, with a JSON Pointer to it.
RE2's ``\\d``, ``\\w`` and ``\\s`` are ASCII, as in ECMA-262, the dialect JSON Schema names.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, Final

import re2

MAX_CACHED_PATTERNS: Final = 1024
# Subschema keywords whose values are data, not schemas: a "pattern" member in them is a value.
DATA_KEYWORDS: Final = frozenset({"const", "enum", "default", "examples"})


class UnsupportedPattern(ValueError):
    """A pattern RE2 cannot compile (or not a regular expression at all)."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a refused tenant pattern is a 422, not a line on stderr
    return options


_OPTIONS: Final = _options()


@functools.lru_cache(maxsize=MAX_CACHED_PATTERNS)
def compiled(pattern: str) -> Any:
    """The RE2 program for ``pattern``; UnsupportedPattern if RE2 cannot compile it."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise UnsupportedPattern(str(exc)) from None


def search(pattern: str, text: str) -> bool:
    """``re.search`` semantics (unanchored), in linear time."""
    return compiled(pattern).search(text) is not None


def first_unsupported(
    node: Any, path: tuple[str | int, ...] = ()
) -> tuple[tuple[str | int, ...], str] | None:
    """Where the first pattern RE2 cannot run is in a schema, and why; None if all can."""
    if isinstance(node, list):
        return _first_in(enumerate(node), path)
    if not isinstance(node, dict):
        return None
    found = _check(node.get("pattern"), (*path, "pattern"))
    if found is not None:
        return found
    properties = node.get("patternProperties")
    if isinstance(properties, dict):
        for name in properties:
            found = _check(name, (*path, "patternProperties", name))
            if found is not None:
                return found
    return _first_in(
        ((name, value) for name, value in node.items() if name not in DATA_KEYWORDS), path
    )


def _first_in(
    children: Iterable[tuple[str | int, Any]], path: tuple[str | int, ...]
) -> tuple[tuple[str | int, ...], str] | None:
    for name, value in children:
        found = first_unsupported(value, (*path, name))
        if found is not None:
            return found
    return None


def _check(
    pattern: object, path: tuple[str | int, ...]
) -> tuple[tuple[str | int, ...], str] | None:
    if not isinstance(pattern, str):
        return None
    try:
        compiled(pattern)
    except UnsupportedPattern as exc:
        return path, f"not supported (no backreferences or lookaround): {exc}"[:300]
    return None
