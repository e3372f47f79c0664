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


def idle_since(state: dict[str, Any]) -> int:
    """When the user (a state as stored, `UserState.to_json`) was last active, epoch ms: the
    broker's time of their last event; for a state written before ``seen_at`` was kept, the
    event's own ``ts`` (validated against the clock skew when it was read)."""
    return state.get("seen_at") or state.get("last_ts") or 0


def is_expired(state: dict[str, Any], now_ms: int, ttl_ms: int) -> bool:
    """True when the user (a stored state) has been idle for more than ``ttl_ms`` at
    ``now_ms``, the broker's clock; never when ``ttl_ms`` is 0 (expiry off)."""
    return ttl_ms > 0 and now_ms - idle_since(state) > ttl_ms
