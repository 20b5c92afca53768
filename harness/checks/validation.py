"""Validating JSON against a schema shipped in schemas/: the one place checks ask "is this valid, and if not, why".

The verdict and the message always come from the ``jsonschema`` package (the reference implementation the
schemas are written and tested against). Where ``jsonschema-rs`` is installed (a dependency; Rust, about 100x
faster) it answers the common question first: an object it finds valid is valid. Only an object it rejects, or
cannot take (an integer beyond 64 bits, say), goes on to ``jsonschema``, which decides and explains. A grading run
validates every event of a dozen streams per submission, and that was the largest part of a grade's CPU.

The fast path can only pass what ``jsonschema`` would pass if the two agree on validity: tests/test_validation.py
checks that over every shipped schema, with generated and mutated documents.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def validator(name: str) -> Any:
    """The ``jsonschema`` validator for schema ``name`` (compiled once per process)."""
    import jsonschema

    from schemas import load_schema

    schema = load_schema(name)
    return jsonschema.validators.validator_for(schema)(schema)


@cache
def fast_validator(name: str) -> Any:
    """``jsonschema-rs``'s validator for schema ``name``, or None where the package is not installed."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    from schemas import load_schema

    try:
        return jsonschema_rs.validator_for(load_schema(name))
    except Exception:  # noqa: BLE001 - a schema it cannot compile is validated by jsonschema alone
        return None


def surely_valid(name: str, obj: Any) -> bool:
    """True when the fast validator accepts ``obj``; False when it rejects it, cannot take it, or is missing."""
    fast = fast_validator(name)
    if fast is None:
        return False
    try:
        return bool(fast.is_valid(obj))
    except Exception:  # noqa: BLE001 - a value it cannot convert (huge int, NaN...): ask jsonschema
        return False


def first_error(name: str, obj: Any) -> Any | None:
    """``jsonschema``'s first ValidationError of ``obj`` against schema ``name``; None when it is valid."""
    if surely_valid(name, obj):
        return None
    return next(iter(validator(name).iter_errors(obj)), None)


def all_errors(name: str, obj: Any) -> list[Any]:
    """Every ``jsonschema`` ValidationError of ``obj`` against schema ``name`` (empty when valid)."""
    if surely_valid(name, obj):
        return []
    return list(validator(name).iter_errors(obj))
