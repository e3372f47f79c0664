"""Dead-lettering a record: the one way the worker sets a rejected record aside.

The DLQ copy keeps the original key and bytes (an operator can fix and replay them) and
says why and where from in its headers (`rtrank.streams.validation.Rejection.dead_letter_headers`:
``rtrank-reason``, ``rtrank-source``); each is counted in ``rtrank_dead_letters`` by reason.

A record too large to be sent again as it came (a producer with a higher size limit than
the worker's, e.g. an event of about 1 MB) is cut: its first ``MAX_VALUE_BYTES`` of value
and ``MAX_KEY_BYTES`` of key, with ``rtrank-value-cut-from`` / ``rtrank-key-cut-from``
headers holding the original sizes. Sending it whole would fail (``MessageSizeTooLargeError``)
every time the record is read, and a record that can never be dead-lettered can never be
acknowledged either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rtrank.streams.validation import Rejection
from rtrank.streams.worker.metrics import Metrics

if TYPE_CHECKING:
    from rtrank.streams.worker.dataflow import Sink

# Faust's producer refuses requests over ``producer_max_request_size`` (1,000,000 bytes, not
# changed by rtrank) and brokers records over ``message.max.bytes`` (1 MiB by default): a
# dead letter within these sizes, plus its headers, fits both with room to spare.
MAX_VALUE_BYTES = 512 * 1024
MAX_KEY_BYTES = 4 * 1024


async def dead_letter(
    sink: Sink,
    topic: str,
    message: Any,
    rejection: Rejection,
    metrics: Metrics,
    reason_prefix: str = "",
) -> None:
    """Send ``message`` (anything with ``key``, ``value``, ``topic``, ``partition`` and
    ``offset``: a Faust message, an `EventRecord`) to ``topic`` as it came (cut when too
    large), with the reason headers, and count it as ``reason_prefix + rejection.code``."""
    metrics.dead_letters.labels(reason_prefix + rejection.code).inc()
    headers = rejection.dead_letter_headers(message)
    key, value = message.key, message.value
    if key is not None and len(key) > MAX_KEY_BYTES:
        headers["rtrank-key-cut-from"] = str(len(key)).encode()
        key = key[:MAX_KEY_BYTES]
    if value is not None and len(value) > MAX_VALUE_BYTES:
        headers["rtrank-value-cut-from"] = str(len(value)).encode()
        value = value[:MAX_VALUE_BYTES]
    await sink.send(topic, key, value, headers)
