"""A request to forget a user: its wire format, written by ``rtrank forget`` (or any producer)
and read by the worker's ingest.

A request is a record on the **events** topic, not on a topic of its own: key = the user id,
header ``rtrank-request: forget``, value ``{"user_id", "requested_at"}`` (for people
reading the topic; the key is what counts). Keyed like the user's events, it lands on their
partition, so the worker that owns the user reads it in offset order with their events:
every event produced before the request is forgotten with it, every event after it starts
a new history (docs/decisions.md, "Forgetting a user is a record on the events topic").
The header, not a field of the value, marks it: an event's extra fields are the
producer's, and no field name is safe from them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rtrank.streams.validation import Limits, Rejection, parse_identifier

HEADER = "rtrank-request"
FORGET = b"forget"


@dataclass(frozen=True)
class Forget:
    """Forget everything about ``user_id`` read before this request."""

    user_id: str


def is_forget(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> bool:
    """True for the headers of a forget request (Kafka clients give a list of pairs)."""
    if not headers:
        return False
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return any(name == HEADER and value == FORGET for name, value in pairs)


def forget_record(user_id: str, now_ms: int | None = None) -> tuple[bytes, bytes, list]:
    """(key, value, headers) of the request to forget ``user_id``."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = json.dumps({"user_id": user_id, "requested_at": now_ms}).encode()
    return user_id.encode(), value, [(HEADER, FORGET)]


def parse_forget(key: bytes | None, limits: Limits) -> Forget | Rejection:
    """The request a record marked `is_forget` makes, or why it makes none: the key must be
    a valid user id (without it the record's partition, and so the worker that reads it,
    would not be the user's)."""
    if key is None:
        return Rejection("missing_key", "a forget request must be keyed by the user_id")
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection("key_not_utf8", "record key is not UTF-8")
    user = parse_identifier("user_id", text, limits, allow_int=False)
    return user if isinstance(user, Rejection) else Forget(user)
