"""The typed values of settings and the syntax of their ``RTRANK_*`` variables.

Each structured type parses its variable's text at load and `env_text` writes it back, so
``parse(env_text(value)) == value`` for every value a setting can hold (a child process
started with `rtrank.streams.settings.to_env` reads the same settings):

- `Weights`, ``name:number`` entries: ``view:1,click:2`` -> ``{"view": 1.0, "click": 2.0}``
- `Names`, names: ``id1,id2`` -> ``frozenset({"id1", "id2"})``
- `Pinned`, ``item@position`` entries: ``id@0,id2@3`` -> ``{"id": 0, "id2": 3}``

Entries are separated by commas and stripped; empty text is an empty value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr


def parse_weights(text: str) -> dict[str, float]:
    """``"view:1,click:2"`` -> {"view": 1.0, "click": 2.0}.

    Raises:
        ValueError: an entry is not ``name:number``.
    """
    out = {}
    for part in _entries(text):
        name, sep, value = part.rpartition(":")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"entry {part!r} is not name:number") from None
    return out


def parse_pinned(text: str) -> dict[str, int]:
    """``"id@0,id2@3"`` -> {"id": 0, "id2": 3}.

    Raises:
        ValueError: an entry is not ``item@position`` with a position >= 0.
    """
    out = {}
    for part in _entries(text):
        item, sep, position = part.rpartition("@")
        try:
            if not sep or not item.strip() or int(position) < 0:
                raise ValueError
            out[item.strip()] = int(position)
        except ValueError:
            raise ValueError(f"entry {part!r} is not item@position (position >= 0)") from None
    return out


def parse_names(text: str) -> frozenset[str]:
    """``"id1, id2"`` -> frozenset({"id1", "id2"}); empty entries are skipped."""
    return frozenset(_entries(text))


def _entries(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _from_text(parse: Callable[[str], object]) -> BeforeValidator:
    """Parse a value given in its variable's syntax; a typed value passes as it is."""
    return BeforeValidator(lambda value: parse(value) if isinstance(value, str) else value)


def _writable(names: Any) -> Any:
    """Each name must survive `to_env` and the parse back (``,`` separates entries)."""
    for name in names:
        if not name or name != name.strip() or "," in name:
            raise ValueError(f"{name!r} cannot be a name here (empty, padded, or with a comma)")
    return names


def _weights(weights: dict[str, float]) -> dict[str, float]:
    """A NaN weight would never equal itself read back, and an infinite one swamps every
    other; neither is a weight anyone means."""
    _writable(weights)
    bad = [name for name, w in weights.items() if not math.isfinite(w)]
    if bad:
        raise ValueError(f"weights must be finite numbers, not {', '.join(map(repr, bad))}")
    return weights


def _pinned(pinned: dict[str, int]) -> dict[str, int]:
    _writable(pinned)
    if any(position < 0 for position in pinned.values()):
        raise ValueError("positions must be >= 0")
    return pinned


def _device(name: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise ValueError("expected auto, cpu, cuda or cuda:N")
    return name


def _flag(value: Any) -> Any:
    """An empty variable means false (an unset one means the default)."""
    if isinstance(value, str):
        return value.strip() or False
    return value


Weights = Annotated[dict[str, float], _from_text(parse_weights), AfterValidator(_weights)]
Names = Annotated[frozenset[str], _from_text(parse_names), AfterValidator(_writable)]
Pinned = Annotated[dict[str, int], _from_text(parse_pinned), AfterValidator(_pinned)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Device = Annotated[str, AfterValidator(_device)]
LogLevel = Annotated[
    # the levels both Faust's ``-l`` and Python's logging accept
    Literal["debug", "info", "warn", "error"],
    BeforeValidator(lambda value: value.strip().lower() if isinstance(value, str) else value),
]
Port = Annotated[int, Field(ge=1, le=65535)]


def env_text(value: object) -> str:
    """``value`` in its variable's syntax, the inverse of what `Settings.from_env` parses.
    A secret is written in clear: this is for a child process, not for display."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    if isinstance(value, dict):  # weights hold floats, pinned items ints
        return ",".join(
            f"{k}:{_number(v)}" if isinstance(v, float) else f"{k}@{v}" for k, v in value.items()
        )
    return str(value)


def _number(x: float) -> str:
    """``1.0`` -> ``1``; otherwise the shortest text that reads back as the same float."""
    return str(int(x)) if x.is_integer() and abs(x) < 2**53 else repr(x)
