"""Decoding JSON that outside producers wrote, without any input raising past the decoder.

Python's `json` accepts what strict JSON (RFC 8259) does not, and fails on some valid JSON
in ways callers do not expect: an integer of more than 4,300 digits raises a plain
``ValueError`` (the interpreter's int-from-text limit), deep nesting ``RecursionError``,
``NaN`` / ``Infinity`` literals and numbers like ``1e999`` become non-finite floats, and a
repeated key silently keeps its last value. `loads` turns each into a `JsonError` with a
stable code, so a caller either gets a value or a reason.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_INT_DIGITS = 100  # far beyond any id or epoch-ms timestamp; bounds the work of int()


class JsonError(ValueError):
    """Why bytes are not acceptable JSON; ``code`` is a stable short name (a metric label)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def loads(value: bytes) -> Any:
    """The JSON value of UTF-8 ``value``.

    Raises:
        JsonError: ``not_utf8``, ``not_json`` (also for nesting too deep to decode),
            ``number_too_large``, ``non_finite_number`` or ``duplicate_key``.
    """
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonError(
            "not_utf8", f"value is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        return json.loads(
            text,
            parse_int=_int,
            parse_float=_float,
            parse_constant=_constant,
            object_pairs_hook=_object,
        )
    except JsonError:
        raise
    except RecursionError:
        raise JsonError("not_json", "value nests too deeply to decode") from None
    except ValueError as exc:  # json.JSONDecodeError and anything else the scanner raises
        raise JsonError("not_json", f"value is not JSON ({exc})") from None


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonError("number_too_large", f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise JsonError("non_finite_number", f"number {text[:32]} is out of range")
    return number


def _constant(name: str) -> float:
    raise JsonError("non_finite_number", f"{name} is not a JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise JsonError("duplicate_key", f"key {repeated[:64]!r} appears more than once")
    return obj
