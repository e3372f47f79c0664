"""Turning raw event bytes into an `Event`, or a reason why not.

Every reason is a short stable code (used as a metric label and a DLQ header) plus a
human-readable detail. Nothing here raises on bad input: the stream must go on.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rtrank.streams import safe_json
from rtrank.streams.records import Event

if TYPE_CHECKING:
    from rtrank.streams.settings import Settings

REQUIRED = ("user_id", "item_id", "event_type", "ts")
MIN_TS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_TS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
MAX_DEPTH = 8  # extra fields nested deeper than this are garbage, not data
BAD_ID_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # C0, DEL, C1, surrogates


@dataclass(frozen=True)
class Rejection:
    code: str  # e.g. "not_json", "missing_field"; a metric label
    detail: str

    def dead_letter_headers(self, message: Any) -> dict[str, bytes]:
        """Headers of the DLQ copy of ``message``: why it was rejected and where it came from
        (``topic/partition/offset``), so an operator can find and replay the original."""
        return {
            "rtrank-reason": f"{self.code}: {self.detail}".encode(),
            "rtrank-source": f"{message.topic}/{message.partition}/{message.offset}".encode(),
        }


@dataclass(frozen=True)
class Limits:
    max_id_bytes: int = 256
    max_event_bytes: int = 64 * 1024
    max_clock_skew_ms: int = 300_000  # an event's ts may be at most this far in the future

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_id_bytes,
            settings.max_event_bytes,
            round(settings.max_clock_skew_s * 1000),
        )


def parse_json_object(value: bytes | None, limits: Limits) -> dict[str, Any] | Rejection:
    """The JSON object a record's value holds, or why it holds none: the first check of
    every topic a producer outside rtrank writes (events, items, rank requests)."""
    if value is None:
        return Rejection("empty", "record has no value")
    if len(value) > limits.max_event_bytes:
        return Rejection("too_large", f"{len(value)} bytes > {limits.max_event_bytes}")
    try:
        obj = safe_json.loads(value)
    except safe_json.JsonError as exc:
        return Rejection(exc.code, exc.detail)
    if not isinstance(obj, dict):
        return Rejection("not_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def parse_event(
    key: bytes | None, value: bytes | None, limits: Limits, now_ms: int | None = None
) -> Event | Rejection:
    """Validate one raw record from the events topic.

    The key, when present, must be the UTF-8 ``user_id``: a disagreeing key would put the
    user's state on the wrong partition. ``user_id`` and ``item_id`` may be JSON strings or
    integers (integers become their decimal string); ``ts`` is integral epoch milliseconds
    between 2000 and 2100, and at most ``limits.max_clock_skew_ms`` after ``now_ms`` (the
    wall clock by default): a producer's clock may run a little ahead, but an event dated
    years ahead would outweigh every real one wherever recency counts.
    """
    obj = parse_json_object(value, limits)
    if isinstance(obj, Rejection):
        return obj
    for name in REQUIRED:
        if name not in obj:
            return Rejection("missing_field", f"missing field {name!r}")
        if obj[name] is None:
            return Rejection("null_field", f"field {name!r} is null")
    fields: dict[str, str] = {}
    for name in ("user_id", "item_id", "event_type"):
        checked = parse_identifier(name, obj[name], limits, allow_int=name != "event_type")
        if isinstance(checked, Rejection):
            return checked
        fields[name] = checked
    ts = obj["ts"]
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return Rejection("wrong_type", f"ts must be epoch milliseconds, got {type(ts).__name__}")
    if isinstance(ts, float) and not ts.is_integer():
        return Rejection("wrong_type", f"ts must be integral milliseconds, got {ts}")
    if not MIN_TS <= ts < MAX_TS:
        return Rejection("ts_out_of_range", f"ts {ts} is outside 2000..2100 in epoch ms")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if ts - now_ms > limits.max_clock_skew_ms:
        return Rejection(
            "ts_in_future",
            f"ts {int(ts)} is {int(ts) - now_ms} ms ahead of the clock "
            f"(more than {limits.max_clock_skew_ms} ms)",
        )
    extra = {k: v for k, v in obj.items() if k not in REQUIRED}
    if _depth(extra) > MAX_DEPTH:
        return Rejection("too_nested", f"extra fields nest deeper than {MAX_DEPTH} levels")
    if key is not None:
        try:
            key_text = key.decode("utf-8")
        except UnicodeDecodeError:
            return Rejection("key_not_utf8", "record key is not UTF-8")
        if key_text != fields["user_id"]:
            return Rejection("key_mismatch", f"key {key_text[:64]!r} is not the user_id")
    return Event(fields["user_id"], fields["item_id"], fields["event_type"], int(ts), extra)


def parse_identifier(name: str, value: object, limits: Limits, allow_int: bool) -> str | Rejection:
    """A user, item or request id: a non-empty string (or an integer, as its decimal string)
    within the size limit, without control characters (C0, DEL, C1) or lone surrogates: ids
    end up in keys, logs and terminals."""
    if isinstance(value, bool) or not (
        isinstance(value, str) or allow_int and isinstance(value, int)
    ):
        kinds = "a string or an integer" if allow_int else "a string"
        return Rejection("wrong_type", f"{name} must be {kinds}, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        return Rejection("empty_id", f"{name} is empty")
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_id_bytes:
        return Rejection("id_too_long", f"{name} is longer than {limits.max_id_bytes} bytes")
    if BAD_ID_CHARACTERS.search(text):
        return Rejection("bad_characters", f"{name} contains control or surrogate characters")
    return text


def _depth(value: object, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level
