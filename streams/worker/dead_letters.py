"""Dead-lettering a record: the one way the worker sets a rejected record aside.

The DLQ copy keeps the original key and bytes (an operator can fix and replay them) and
says why and where from in its headers (`rtrank.streams.validation.Rejection.dead_letter_headers`:
``rtrank-reason``, ``rtrank-source``); each is counted in ``rtrank_dead_letters`` by reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rtrank.streams.validation import Rejection
from rtrank.streams.worker.metrics import Metrics

if TYPE_CHECKING:
    from rtrank.streams.worker.dataflow import Sink


async def dead_letter(
    sink: Sink,
    topic: str,
    message: Any,
    rejection: Rejection,
    metrics: Metrics,
    reason_prefix: str = "",
) -> None:
    """Send ``message`` (anything with ``key``, ``value``, ``topic``, ``partition`` and
    ``offset``: a Faust message, an `EventRecord`) to ``topic`` as it came, with the reason
    headers, and count it as ``reason_prefix + rejection.code``."""
    metrics.dead_letters.labels(reason_prefix + rejection.code).inc()
    await sink.send(topic, message.key, message.value, rejection.dead_letter_headers(message))
