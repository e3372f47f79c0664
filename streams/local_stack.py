"""The local broker as the demo and the benchmarks use it: start it when nothing answers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from deploy.kafka import broker as local_kafka
from streams.settings import Settings

log = logging.getLogger(__name__)


@contextmanager
def local_kafka_for(settings: Settings) -> Iterator[bool]:
    """Make sure the configured broker answers; yield whether we started it.

    A broker that already answers is used as it is and left running. A local address with
    nothing behind it gets a local broker (``rtrank kafka up``), stopped again on exit.

    Raises:
        deploy.kafka.broker.BrokerError: the broker cannot be started, or a remote one
            does not answer.
    """
    bootstrap = settings.bootstrap_servers.split(",")[0]
    if local_kafka.answers_metadata(bootstrap):
        yield False
        return
    parsed = urlparse(f"kafka://{bootstrap}")
    if parsed.hostname not in ("localhost", "127.0.0.1"):
        raise local_kafka.BrokerError(f"the broker at {bootstrap} does not answer")
    port = parsed.port or local_kafka.DEFAULT_PORT
    broker = local_kafka.Broker(port, local_kafka.default_data_dir(port))
    log.info(local_kafka.up(broker))
    try:
        yield True
    finally:
        log.info(local_kafka.down(broker))
