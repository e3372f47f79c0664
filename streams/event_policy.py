"""Which event types enter a user's sequence, which make an item seen, and how much each
counts: the ``RTRANK_EVENT_WEIGHTS``, ``RTRANK_SEQUENCE_EVENT_TYPES`` and
``RTRANK_REPEAT_EVENT_TYPES`` settings as the worker's ingest and the model process's
popularity counts both read them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rtrank.streams.records import Event
from rtrank.streams.settings import Settings


@dataclass(frozen=True)
class EventPolicy:
    """Which event types enter a user's sequence, which make an item seen, and how much
    each counts."""

    weights: Mapping[str, float]
    sequence_types: frozenset[str]  # empty = every type
    repeatable_types: frozenset[str] = frozenset()  # seen only via these: may be shown again

    @classmethod
    def from_settings(cls, settings: Settings) -> EventPolicy:
        return cls(
            settings.event_weights, settings.sequence_event_types, settings.repeat_event_types
        )

    def weight(self, event_type: str) -> float:
        """Weight of an example of this type; types not configured count 1."""
        return self.weights.get(event_type, 1.0)

    def enters_sequence(self, event_type: str) -> bool:
        return not self.sequence_types or event_type in self.sequence_types

    def seen_after(self, before: list[str], after: list[str], event: Event) -> list[str]:
        """The seen list to keep after ``event``: only items the seen filter must hide.

        An event of a repeatable type (``repeat_event_types``, e.g. views) does not make
        its item seen; an item already seen through another type (e.g. bought) stays seen.
        """
        if event.event_type in self.repeatable_types and event.item_id not in before:
            return [i for i in after if i != event.item_id]
        return after
