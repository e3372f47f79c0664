"""A Faust agent that forwards every event untouched: the framework's own ceiling, and the
floor under the pipeline's latency.

    python -m rtrank.streams.bench.faust_passthrough COUNT [--send-now]   # settings: RTRANK_*

(`rtrank.streams.bench.pipeline_bench.faust_passthrough_rate` starts it, reads its result,
stops it.)

`rtrank bench pipeline` runs this beside the bare aiokafka pass-through, so its table shows
how much of the gap between aiokafka and the pipeline is Faust's per-event cost (consume,
event bookkeeping, acks) and how much is rtrank's work. The app is an `RtrankApp` built from
the same settings as the worker, and the agent reads and acknowledges the way the worker's
ingest does; it forwards ``events`` to ``recommendations`` and, after COUNT events, logs
one line ``forwarded COUNT events at R events/s`` (timed from the first event; `RESULT`
finds it) and keeps running until it is stopped.

With ``--send-now`` each event is sent on as soon as it is forwarded, not when the
producer's linger ends, as the worker sends each batch's lists: the event -> record time of
an agent that does no work, on the same machine, broker and clients, which
`rtrank.streams.bench.pipeline_bench.faust_passthrough_latency` measures under the
pipeline's latency.
"""

from __future__ import annotations

import logging
import re
import sys
import time

import faust

from rtrank.streams.settings import Settings
from rtrank.streams.worker.app import RtrankApp
from rtrank.streams.worker.faust_patches import send_app_buffer_now
from rtrank.streams.worker.topics_and_tables import declare_topics

RESULT = re.compile(r"forwarded \d+ events at ([0-9.]+) events/s")

log = logging.getLogger(__name__)


SEND_NOW = "--send-now"


def build_passthrough(settings: Settings, count: int, send_now: bool = False) -> faust.App:
    app = RtrankApp(settings)
    topics = declare_topics(app, settings)

    @app.agent(topics.events, name="forward")
    async def forward(stream: faust.StreamT) -> None:
        manual = stream.noack()
        forwarded, started = 0, 0.0
        async for event in manual.events():
            if not forwarded:
                started = time.monotonic()
            message = event.message
            await app.producer.send(
                settings.recommendations_topic, message.key, message.value, None, None, None
            )
            if send_now:
                send_app_buffer_now(app)
            await manual.ack(event)
            forwarded += 1
            if forwarded == count:
                rate = count / max(time.monotonic() - started, 1e-9)
                log.warning("forwarded %d events at %.1f events/s", count, rate)

    return app


def main() -> None:
    count, send_now = int(sys.argv[1]), SEND_NOW in sys.argv[2:]
    settings = Settings.from_env()
    app = build_passthrough(settings, count, send_now)
    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
