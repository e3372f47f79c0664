"""Per-user state kept in the ``user_to_history`` table, and how one event changes it.

State stores external item ids (never embedding rows, whose meaning a vocabulary update
could change). ``last_offset`` is the events-topic offset of the last event applied: a
user's events all come from one partition, so after a crash the events that Kafka
redelivers (offset <= last_offset) are recognised and not applied twice. ``last_list`` is
the list last emitted to the user: the next event is tested against it (online evaluation,
`rtrank.streams.worker.online_eval`), and it survives restarts with the rest of the state.

``seen_at`` is when the broker appended the user's last applied event (the events topic's
log-append time, epoch ms): idle time is measured by the broker's clock, never by the ``ts``
a producer wrote, so a user expires (`is_expired`, `rtrank.streams.worker.expiry`) after
``RTRANK_STATE_TTL_S`` of the broker's time without an event, however the producers' clocks
are set. It is part of the state, so expiry goes on where it stopped after a restart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rtrank.streams.records import Event


@dataclass
class UserState:
    history: list[str] = field(default_factory=list)  # last history_len items, oldest first
    seen: list[str] = field(default_factory=list)  # last seen_len distinct items, oldest first
    events: int = 0  # events applied in total
    last_offset: int = -1  # events-topic offset of the last applied event
    last_ts: int = 0
    last_list: list[str] = field(default_factory=list)  # item ids last recommended, best first
    last_list_version: int = -1  # model version that produced last_list (online evaluation)
    seen_at: int = 0  # broker's log-append time of the last applied event, epoch ms; 0: unknown

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> UserState:
        return cls() if data is None else cls(**data)

    def to_json(self) -> dict[str, Any]:
        """A shallow dict (``asdict`` deep-copies, measurably, once per event): the lists are
        shared, which is safe because state lists are replaced, never changed in place."""
        return dict(vars(self))


def is_applied(state: UserState, offset: int) -> bool:
    """True when the event at ``offset`` is already part of ``state`` (a redelivery)."""
    return offset <= state.last_offset


def apply_event(
    state: UserState,
    event: Event,
    offset: int,
    history_len: int,
    seen_len: int,
    seen_at: int = 0,
) -> UserState:
    """The state after ``event``, which the broker appended at ``seen_at`` (epoch ms; 0 when
    unknown keeps the last known); ``state`` itself is left unchanged."""
    history = (state.history + [event.item_id])[-history_len:]
    seen = [item for item in state.seen if item != event.item_id] + [event.item_id]
    return UserState(
        history=history,
        seen=seen[-seen_len:],
        events=state.events + 1,
        last_offset=offset,
        last_ts=event.ts,
        last_list=state.last_list,
        last_list_version=state.last_list_version,
        seen_at=seen_at or state.seen_at,
    )


def last_active_ms(stored: bytes) -> int:
    """When the user of ``stored`` (a state as the table holds it: `UserState.to_json` as
    JSON) was last active, epoch ms: the broker's time of their last event; for a state
    written before ``seen_at`` was kept (or with it 0), the event's own ``ts`` (validated
    against the clock skew when it was read); 0 when neither is known.

    Read from those two fields alone, not by decoding the state: an expiry sweep reads every
    state of the table, and decoding one whole costs as much as its history and seen items
    are long; this costs the same for any (docs/decisions.md, "Idle users expire").
    """
    return _stored_time(stored, b'"seen_at"') or _stored_time(stored, b'"last_ts"')


# After a key: the colon and an integer. JSON escapes a quote inside a string, so a
# quoted name followed by a colon is a key, never part of an item id.
_INTEGER_VALUE = re.compile(rb"\s*:\s*(-?\d+)")


def _stored_time(stored: bytes, key: bytes) -> int:
    """The integer value of ``key`` (quoted) in the JSON object ``stored``; 0 when it has
    none (absent, or null). Searched from the end, where `UserState` keeps its times."""
    end = len(stored)
    while (at := stored.rfind(key, 0, end)) >= 0:
        value = _INTEGER_VALUE.match(stored, at + len(key))
        if value is not None:
            return int(value.group(1))
        end = at
    return 0


def is_expired(last_active: int, now_ms: int, ttl_ms: int) -> bool:
    """True when a user last active at ``last_active`` (`last_active_ms`, epoch ms) has
    been idle for more than ``ttl_ms`` at ``now_ms``, the broker's clock; never when
    ``ttl_ms`` is 0 (expiry off)."""
    return ttl_ms > 0 and now_ms - last_active > ttl_ms
