"""Two limits inside Faust that held a live stream back, set where Faust has no setting.

**The consumer's fetch wait.** Faust builds its aiokafka consumer with
``fetch_max_wait_ms=1500``, fixed. aiokafka sends one fetch at a time to a broker, and leaves
out of it every partition whose records the worker has not yet taken. So while the worker
is busy, the next fetch often holds only partitions that get no new records (Faust's own
leader topic, for one): the broker keeps it for the whole wait, and until it returns no
partition is fetched again. Under a steady stream the worker then read nothing for
~1.5 s at a time. `rtrank bench online`'s Games stream (2,000 events/s, worker and
trainer): the last event was answered 9.4 s after the replay began with 1,500 ms, 6.3 s
with 100 ms; the trainer received examples 2.1 s after their events (median) instead of
0.9 s. A shorter wait costs an idle worker one more small fetch request per wait.

**The producer buffer.** Table writes go to the changelog through Faust's producer buffer,
and Faust's consumer stops handing over events while that buffer holds more than 100
messages. A batch writes one state per answered user (hundreds at a time), so every
batch paused ingest until its writes had drained, message by message. The buffer's bound
is raised to twice the largest batch (`Settings.batch_max_events`): still a bound, and one
our writes never reach. Same run: 98 such pauses before, none after.
"""

from __future__ import annotations

from typing import Any

PRODUCER_BUFFER_BATCHES = 2  # batches of table writes the producer buffer may hold


def producer_buffer_max(batch_max_events: int) -> int:
    """Messages Faust's producer buffer may hold before its consumer waits for it."""
    return PRODUCER_BUFFER_BATCHES * batch_max_events


def set_fetch_wait(faust_consumer: Any, wait_ms: int) -> bool:
    """Set the fetch wait of the aiokafka consumer inside a started Faust consumer, for
    every fetch it sends from now on; False when it runs none (nothing changes)."""
    fetcher = _fetcher(faust_consumer)
    if fetcher is None:
        return False
    faust_consumer._thread._consumer._fetch_max_wait_ms = wait_ms  # for a rebuilt fetcher
    fetcher._fetch_max_wait_ms = wait_ms  # read for every fetch request
    return True


def fetch_wait_ms(faust_consumer: Any) -> int | None:
    """The fetch wait in force in a started Faust consumer (None: no aiokafka consumer)."""
    fetcher = _fetcher(faust_consumer)
    return None if fetcher is None else fetcher._fetch_max_wait_ms


def _fetcher(faust_consumer: Any) -> Any | None:
    """Faust's consumer runs aiokafka's in a thread of its own (``_thread._consumer``);
    the consumer's fetcher exists once it has started."""
    consumer = getattr(getattr(faust_consumer, "_thread", None), "_consumer", None)
    return getattr(consumer, "_fetcher", None)
