"""What travels on rtrank's topics.

Events arrive as raw JSON bytes from any producer and are parsed by `rtrank.streams.validation`
into `Event`. What rtrank writes is plain JSON (``to_json``), readable by any consumer:
serialised here once per record rather than through Faust's model layer, which measured
as a large share of the event loop's time under load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """A validated user behaviour event. ``extra`` keeps every field we do not interpret."""

    user_id: str
    item_id: str
    event_type: str
    ts: int  # epoch milliseconds
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceRef:
    """The event a recommendation answers: where it was read and its event time."""

    topic: str
    partition: int
    offset: int
    ts: int


@dataclass(frozen=True)
class Recommendation:
    """One ranked list for one user, keyed by ``user_id`` on the recommendations topic.

    ``items`` are ``{"item_id", "score"}`` objects, best first. ``timings`` (milliseconds):
    the event's stages up to its batch's model answer (``fetch``, ``handover``, ``queued``,
    ``inference``: `rtrank.streams.worker.stage_timing`), ``produce`` from the event's
    ``ts`` to its broker append, ``total`` from the event's ``ts`` to ``emitted_at``
    (meaningful when producer and worker clocks agree).
    """

    user_id: str
    items: list[dict[str, Any]]
    model_version: int
    based_on: SourceRef
    emitted_at: int  # epoch ms
    timings: dict[str, float]
    batch_size: int
    experiment: tuple[str, str] | None = None  # (experiment, variant) when one runs

    def to_json(self) -> bytes:
        src = self.based_on
        out = {
            "user_id": self.user_id,
            "items": self.items,
            "model_version": self.model_version,
            "based_on": {
                "topic": src.topic,
                "partition": src.partition,
                "offset": src.offset,
                "ts": src.ts,
            },
            "emitted_at": self.emitted_at,
            "timings": self.timings,
            "batch_size": self.batch_size,
        }
        if self.experiment is not None:
            out["experiment"] = {"name": self.experiment[0], "variant": self.experiment[1]}
        return compact_json(out)


@dataclass(frozen=True)
class TrainingExample:
    """The user's items before the event (oldest first), and the event's item."""

    user_id: str
    prefix: list[str]
    item_id: str
    event_type: str
    ts: int
    weight: float = 1.0  # how much the example counts (RTRANK_EVENT_WEIGHTS by event type)
    variant: str = ""  # the user's experiment variant: the trainer learns from one arm's

    def to_json(self) -> bytes:
        out = {
            "user_id": self.user_id,
            "prefix": self.prefix,
            "item_id": self.item_id,
            "event_type": self.event_type,
            "ts": self.ts,
            "weight": self.weight,
        }
        if self.variant:
            out["variant"] = self.variant
        return compact_json(out)


def compact_json(obj: dict[str, Any]) -> bytes:
    """Compact JSON; built from explicit dicts because ``dataclasses.asdict`` deep-copies
    (it showed up in the worker's profile)."""
    return json.dumps(obj, separators=(",", ":")).encode()
