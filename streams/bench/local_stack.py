"""The local broker as the demo and the benchmarks use it: start it when nothing answers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.streams.kafka_security import client_config
from rtrank.streams.settings import Settings

log = logging.getLogger(__name__)


@contextmanager
def local_kafka_for(settings: Settings) -> Iterator[bool]:
    """Make sure the configured broker answers; yield whether we started it.

    A broker that already answers is used as it is and left running. A local address with
    nothing behind it gets a local broker (``rtrank kafka up``), stopped again on exit.

    Raises:
        rtrank.deploy.kafka.broker.BrokerError: the broker cannot be started, or a remote one
            does not answer.
    """
    bootstrap = settings.bootstrap_servers.split(",")[0]
    if local_kafka.answers_metadata(bootstrap, **client_config(settings)):
        yield False
        return
    broker = local_broker(settings)
    if broker is None:
        raise local_kafka.BrokerError(f"the broker at {bootstrap} does not answer")
    log.info(local_kafka.up(broker))
    try:
        yield True
    finally:
        log.info(local_kafka.down(broker))


def local_broker(settings: Settings) -> local_kafka.Broker | None:
    """The local broker (``rtrank kafka up``) the settings' first bootstrap address names;
    None for an address on another host."""
    parsed = urlparse(f"kafka://{settings.bootstrap_servers.split(',')[0]}")
    if parsed.hostname not in ("localhost", "127.0.0.1"):
        return None
    port = parsed.port or local_kafka.DEFAULT_PORT
    return local_kafka.Broker(port, local_kafka.default_data_dir(port))


def local_broker_pid(settings: Settings) -> int | None:
    """The process of that local broker when it runs, for its CPU figures; else None."""
    broker = local_broker(settings)
    return None if broker is None else local_kafka.running_pid(broker)
