"""``rtrank rollback --to V``: every worker serves version V's weights, and the trainer
continues from them.

    rtrank rollback --to 41            # waits for the trainer's answer (60 s at most)

It writes a rollback request to model-updates and waits for the running trainer's answer
(`rtrank.streams.trainer.rollback`: how V is found and served). Done: one line naming the
new version that carries V's weights. Refused (V unknown, the request not signed by the
trainer's key) or unanswered: one line saying why, exit 1.
"""

from __future__ import annotations

import time
import uuid

import click
from kafka import KafkaProducer
from kafka.errors import KafkaError

from rtrank.streams.cli.context import pass_settings
from rtrank.streams.kafka_security import (
    KafkaConnectError,
    KafkaSecurityError,
    check_connection,
    client_config,
)
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.model_updates import updates_consumer
from rtrank.streams.trainer.rollback import parse_control, request_record
from rtrank.streams.trainer.update_signing import KeyFileError, UpdateKeys


@click.command("rollback")
@click.option("--to", "to", type=click.IntRange(min=0), required=True, help="version to serve")
@click.option(
    "--wait-s",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="how long to wait for the trainer's answer",
)
@pass_settings
def rollback(settings: Settings, to: int, wait_s: float) -> None:
    """Serve an earlier model version again (the trainer republishes it)."""
    try:
        keys = UpdateKeys.from_settings(settings)
        check_connection(settings)
        answer = request_rollback(settings, keys, to, wait_s)
    except (KeyFileError, KafkaSecurityError, KafkaConnectError, KafkaError) as e:
        raise click.ClickException(str(e)) from None
    if answer is None:
        raise click.ClickException(
            f"no trainer answered within {wait_s:.0f} s (a trainer acts only on requests "
            "made while it runs)"
        )
    if answer["type"] != "rollback_done":
        raise click.ClickException(f"rollback refused: {answer.get('error', 'no reason')}")
    click.echo(f"version {answer['version']} carries version {to}'s weights; workers serve it")


def request_rollback(settings: Settings, keys: UpdateKeys, to: int, wait_s: float) -> dict | None:
    """Write the request, then read the topic after it for the trainer's answer; None when
    none came within ``wait_s``."""
    request_id = uuid.uuid4().hex
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", **client_config(settings)
    )
    try:
        future = producer.send(
            settings.model_updates_topic,
            key=b"rollback",
            value=request_record(request_id, to, keys),
            partition=0,
        )
        offset = future.get(timeout=settings.producer_delivery_timeout_s).offset
    finally:
        producer.close()
    consumer, tp = updates_consumer(settings)
    try:
        consumer.seek(tp, offset + 1)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500).get(tp, []):
                body = parse_control(record.value)
                if body is not None and body["id"] == request_id and body["type"] != "rollback":
                    return body
        return None
    finally:
        consumer.close()
