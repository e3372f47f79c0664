"""``rtrank produce``: replay a data set (or a synthetic stream) into the events topic."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click
from kafka import KafkaProducer
from kafka.errors import KafkaError
from tqdm import tqdm

from rtrank.model.data import FORMATS, DataError
from rtrank.streams.bench.replay import Replay, from_file, synthetic_replay
from rtrank.streams.cli.context import pass_settings
from rtrank.streams.kafka_security import KafkaConnectError, check_connection, client_config
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.model_updates import flush
from rtrank.streams.worker.topics_and_tables import TopicLayoutError, ensure_topics

SHOWN_BAD_LINES = 20
PACING_TICK_S = 0.02  # a paced replay sends what is due in bursts this far apart (`Pacer`)


@click.command()
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option("--rate", type=float, default=0.0, help="events per second (0 = as fast as possible)")
@click.option("--limit", type=int, default=0, help="send at most this many events (0 = all)")
@click.option("--synthetic", is_flag=True, help="replay a generated stream instead of PATH")
@click.option("--users", type=int, default=2000, show_default=True, help="with --synthetic")
@click.option("--items", type=int, default=500, show_default=True, help="with --synthetic")
@click.option("--events", type=int, default=20000, show_default=True, help="with --synthetic")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="interleaving / generator seed"
)
@pass_settings
def produce(
    settings: Settings,
    path: str | None,
    fmt: str,
    rate: float,
    limit: int,
    synthetic: bool,
    users: int,
    items: int,
    events: int,
    seed: int,
) -> None:
    """Replay PATH (pairs, sequences, csv, jsonl) or --synthetic events into the events topic.

    Users are interleaved while each user's order is kept; events without a timestamp are
    stamped when sent. Malformed lines are reported with their line number and skipped.
    Events the broker did not acknowledge end the command with an error (exit 1).
    """
    if synthetic == (path is not None):
        raise click.UsageError("give either PATH or --synthetic")
    try:
        replay = (
            synthetic_replay(users, items, events, seed)
            if synthetic
            else from_file(path, fmt, seed)
        )
    except (DataError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    _report_bad_lines(replay)
    stream = replay.events[:limit] if limit else replay.events
    try:
        check_connection(settings)
        ensure_topics(settings)
    except (TopicLayoutError, KafkaConnectError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        sent, seconds = send_events(settings, stream, rate)
    except DeliveryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"sent {sent} events to {settings.events_topic!r} in {seconds:.1f}s "
        f"({sent / max(seconds, 1e-9):.0f}/s); skipped {len(replay.bad_lines)} bad lines",
        err=True,
    )


class DeliveryError(RuntimeError):
    """The broker did not acknowledge records sent (events, a forget request); the message
    says which and why."""


def send_events(
    settings: Settings, events: list[dict], rate: float = 0.0, progress: bool = True
) -> tuple[int, float]:
    """Send ``events`` keyed by user_id, paced at ``rate`` per second; wait for every ack.

    The producer retries each event for up to ``producer_delivery_timeout_s``.

    Raises:
        DeliveryError: some events were not delivered; it says how many.
    """
    with event_producer(settings) as producer:
        seconds = send_all(producer, settings.events_topic, events, rate, progress)
    return len(events), seconds


@contextmanager
def event_producer(settings: Settings) -> Iterator[KafkaProducer]:
    """The producer events are sent with (`send_all`), closed on exit: acknowledged by
    every in-sync replica, each event retried for up to ``producer_delivery_timeout_s``."""
    linger_ms = 5
    # kafka-python refuses a delivery timeout under linger_ms + request_timeout_ms
    delivery_ms = max(linger_ms + 1, int(settings.producer_delivery_timeout_s * 1000))
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=linger_ms,
        delivery_timeout_ms=delivery_ms,
        request_timeout_ms=min(30_000, delivery_ms - linger_ms),
        key_serializer=str.encode,
        value_serializer=lambda v: json.dumps(v).encode(),
        **client_config(settings),
    )
    try:
        yield producer
    finally:
        producer.close()


def send_all(
    producer: KafkaProducer,
    topic: str,
    events: list[dict],
    rate: float = 0.0,
    progress: bool = False,
) -> float:
    """Send ``events`` to ``topic`` through ``producer``, paced at ``rate`` per second (0:
    no limit), and wait until each was acknowledged or failed; returns the seconds from
    the first send to the last acknowledgement. Results are counted as they come (no round
    trip per event, no future kept per event); sending stops at the first event ``send``
    itself refuses.

    The pace starts once the producer knows the topic's partitions: the first send's wait
    for them (a connection and a metadata request) otherwise put the events due meanwhile
    out in one burst, which `rtrank bench pipeline` timed as the pipeline's latency.

    Raises:
        DeliveryError: with how many of ``events`` were not delivered, and the first error.
    """
    receipts, pacer = Receipts(), None
    try:
        producer.partitions_for(topic)
        pacer = Pacer(rate)
        shown = tqdm(events, unit="ev", disable=not progress, file=sys.stderr)
        for n, event in enumerate(shown):
            pacer.wait_for(n)
            if event.get("ts") is None:
                event = {**event, "ts": int(time.time() * 1000)}
            future = producer.send(topic, key=event["user_id"], value=event)
            future.add_callback(receipts.delivered).add_errback(receipts.failed)
    except KafkaError as e:
        receipts.failed(e)
    flush(producer)
    missing = len(events) - receipts.count
    if missing:
        raise DeliveryError(
            f"{missing} of {len(events)} events were not delivered to {topic!r} "
            f"(first error: {receipts.first_error!r})"
        )
    return time.monotonic() - pacer.started if pacer is not None else 0.0


@dataclass
class Receipts:
    """Acknowledgements counted from the producer's callbacks (its I/O thread)."""

    count: int = 0
    first_error: BaseException | None = None

    def delivered(self, _metadata: object) -> None:
        self.count += 1

    def failed(self, error: BaseException) -> None:
        if self.first_error is None:
            self.first_error = error


@dataclass
class Pacer:
    """Holds a replay to ``rate`` events/s (0: no limit), in bursts ``tick_s`` apart.

    Event ``n`` is due ``n / rate`` seconds after the start. Sleeping until each event was
    due woke the replay (and its producer's thread) for every event, CPU several times that
    of sending, which the system under test then lacked in `rtrank bench`. So it sleeps only
    once the replay is a tick ahead, and sends what became due meanwhile in one burst;
    events still carry the time they were sent.
    """

    rate: float
    tick_s: float = PACING_TICK_S
    started: float = field(default_factory=time.monotonic)

    def wait_for(self, n: int) -> None:
        """Return when event ``n`` may be sent: at most ``tick_s`` before it is due."""
        if self.rate <= 0:
            return
        ahead = self.started + n / self.rate - time.monotonic()
        if ahead > self.tick_s:
            time.sleep(ahead)


def _report_bad_lines(replay: Replay) -> None:
    for bad in replay.bad_lines[:SHOWN_BAD_LINES]:
        click.echo(f"line {bad.line_no}: {bad.reason} (skipped)", err=True)
    hidden = len(replay.bad_lines) - SHOWN_BAD_LINES
    if hidden > 0:
        click.echo(f"... and {hidden} more bad lines (skipped)", err=True)
