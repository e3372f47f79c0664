"""Where an event's time goes on its way to its list: stage durations between stamps the
worker already has (the broker's append time, the consumer's read and ingest of each event,
its batch's start, model answer and send), observed in ``rtrank_stage_seconds{stage}`` and
carried, in ms, in each list's ``timings`` (what ``rtrank bench pipeline`` breaks its
latency down by). Nothing is logged per event: a few subtractions and histogram observations.

The stages, in order (`STAGES`):

- ``fetch``: broker append -> the consumer read it. The broker's clock against this host's
  (the worker's own clock on one host); clamped at 0, and 0 when the append time is unknown.
- ``handover``: the consumer read -> ingest (Faust's delivery to the ingest agent).
- ``queued``: ingest -> its batch started (waiting behind the batch being answered, then the
  batch window).
- ``inference``: the batch's model process call as the worker waits on it (pickling, the
  pipe, and the model's own work).
- ``compute``: the part of ``inference`` the model process spent on the batch itself (as
  it reports it; the rest of ``inference`` is the call's way there and back).
- ``emit``: the model's answer -> the batch's lists and state writes handed to the producer
  and sent now (`Dataflow._answer`). Histogram only: a list is written before it ends.

The list's ``timings`` also carry ``produce``: the event's ``ts`` to its broker append (the
sending client's linger and round trip, on the client's clock, so not in the histogram).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import Histogram

STAGES = ("fetch", "handover", "queued", "inference", "compute", "emit")


@dataclass(slots=True, frozen=True)
class BatchStamps:
    """A batch's ``time.monotonic()`` readings, the wall clock's lead over it
    (``wall_offset``: ``time.time() - time.monotonic()``, to place a broker append time) and
    the model's own seconds on it (``compute``)."""

    started: float
    scored: float
    wall_offset: float
    compute: float = 0.0

    @staticmethod
    def starting_now() -> BatchStamps:
        now = time.monotonic()
        return BatchStamps(now, now, time.time() - now)


def event_stages(
    appended_ms: int, fetched: float, ingested: float, batch: BatchStamps
) -> dict[str, float]:
    """Seconds of each stage up to the model's answer for one event: broker append time
    ``appended_ms`` (epoch ms, 0 when unknown), consumer read ``fetched`` (monotonic, 0 when
    unknown: then ``handover`` is 0) and ingest ``ingested`` (monotonic), in ``batch``."""
    fetched = fetched or ingested
    appended = appended_ms / 1000 - batch.wall_offset if appended_ms > 0 else fetched
    return {
        "fetch": max(0.0, fetched - appended),
        "handover": max(0.0, ingested - fetched),
        "queued": max(0.0, batch.started - ingested),
        "inference": batch.scored - batch.started,
        "compute": batch.compute,
    }


def stage_ms(stages: dict[str, float]) -> dict[str, float]:
    """``stages`` in milliseconds, rounded to the µs, for a list's ``timings``."""
    return {name: round(seconds * 1000, 3) for name, seconds in stages.items()}


class StageHistograms:
    """``rtrank_stage_seconds{stage}``, with each stage's child bound once (an event
    observes every stage)."""

    def __init__(self, histogram: Histogram) -> None:
        self.children = {stage: histogram.labels(stage) for stage in STAGES}

    def observe(self, stages: dict[str, float]) -> None:
        for stage, seconds in stages.items():
            self.children[stage].observe(seconds)
