"""The catalogue a bench's synthetic items come with: a record on the items topic for each,
created over the past year, as a shop's items are. Without one the re-rank stage has no
catalogue to read (no fresh items to explore, no availability to check), and the bench
measures less than a worker does.

    publish_catalogue(settings, items)    # before the worker starts
    wait_for_catalogue(settings, items)   # until the worker's copy holds every item
"""

from __future__ import annotations

import random
import time

import click

from rtrank.model.synthetic import item_id
from rtrank.streams.bench.topic_reader import TopicReader
from rtrank.streams.cli.produce import DeliveryError, Receipts, event_producer, flush
from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import DAY_MS, catalogue_changelog

CREATED_OVER_DAYS = 365  # the items' creation times spread evenly over this many days
CATEGORIES = 100
PROGRESS_EVERY_S = 10.0


def catalogue_records(items: int, now_ms: int, seed: int = 0) -> list[dict]:
    """One available item record for each of ``items`` synthetic items (`item_id`), in
    `CATEGORIES` categories, created at random (``seed``) over the `CREATED_OVER_DAYS`
    before ``now_ms``."""
    rng = random.Random(seed)
    return [
        {
            "item_id": item_id(n),
            "available": True,
            "category": f"category-{n % CATEGORIES}",
            "created_at": now_ms - rng.randrange(CREATED_OVER_DAYS * DAY_MS),
        }
        for n in range(items)
    ]


def publish_catalogue(settings: Settings, items: int) -> None:
    """Write `catalogue_records` to the items topic, keyed by item id; wait for every ack.

    Raises:
        DeliveryError: some records were not delivered.
    """
    records = catalogue_records(items, int(time.time() * 1000))
    receipts = Receipts()
    with event_producer(settings) as producer:
        for record in records:
            future = producer.send(settings.items_topic, key=record["item_id"], value=record)
            future.add_callback(receipts.delivered).add_errback(receipts.failed)
        flush(producer)
    if receipts.count < len(records):
        raise DeliveryError(
            f"{len(records) - receipts.count} of {len(records)} item records were not "
            f"delivered to {settings.items_topic!r} (first error: {receipts.first_error!r})"
        )


def wait_for_catalogue(settings: Settings, items: int, timeout_s: float = 900.0) -> None:
    """Wait until the worker's catalogue copy holds ``items`` items: its table's changelog
    (created with the run's topics, its own) has as many records, with a line of progress
    every `PROGRESS_EVERY_S`.

    Raises:
        RuntimeError: not within ``timeout_s``.
    """
    with TopicReader(settings, catalogue_changelog(settings)) as changelog:
        deadline = time.monotonic() + timeout_s
        shown = time.monotonic()
        while time.monotonic() < deadline:
            held = sum(changelog.end_offsets().values())
            if held >= items:
                return
            if time.monotonic() - shown > PROGRESS_EVERY_S:
                click.echo(f"    the worker's catalogue: {held:,} of {items:,} items", err=True)
                shown = time.monotonic()
            time.sleep(0.5)
    raise RuntimeError(f"the worker's catalogue did not reach {items} items in {timeout_s:.0f}s")
