"""Per-user state kept in the ``user_to_history`` table, and how one event changes it.

State stores external item ids (never embedding rows, whose meaning a vocabulary update
could change). ``last_offset`` is the events-topic offset of the last event applied: a
user's events all come from one partition, so after a crash the events that Kafka
redelivers (offset <= last_offset) are recognised and not applied twice. ``last_list`` is
the list last emitted to the user: the next event is tested against it (online evaluation,
`rtrank.streams.worker.online_eval`), and it survives restarts with the rest of the state.
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
    state: UserState, event: Event, offset: int, history_len: int, seen_len: int
) -> UserState:
    """The state after ``event``; ``state`` itself is left unchanged."""
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
    )
