"""The local broker as the demo and the benchmarks use it: start it when nothing answers."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
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
    Inside, a SIGTERM is an exit like Ctrl-C (`sigterm_exits`): the broker started here, and
    whatever the caller started inside and stops on its way out, stop.

    Raises:
        rtrank.deploy.kafka.broker.BrokerError: the broker cannot be started, or a remote one
            does not answer.
    """
    bootstrap = settings.bootstrap_servers.split(",")[0]
    started = None
    if not local_kafka.answers_metadata(bootstrap, **client_config(settings)):
        started = local_broker(settings)
        if started is None:
            raise local_kafka.BrokerError(f"the broker at {bootstrap} does not answer")
        log.info(local_kafka.up(started))
    try:
        with sigterm_exits():
            yield started is not None
    finally:
        if started is not None:
            log.info(local_kafka.down(started))


@contextmanager
def sigterm_exits() -> Iterator[None]:
    """Inside, SIGTERM raises ``SystemExit(143)`` in the main thread instead of ending the
    process on the spot, so that its ``finally`` blocks run.

    A bench or the demo stopped by ``timeout``, ``kill`` or a CI runner otherwise left its
    broker, and the workers and trainers it had started, running: they run in sessions of
    their own, so no signal to it reaches them, and the next bench used that broker as it
    found it. Only the main thread receives signals in Python; elsewhere nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


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
