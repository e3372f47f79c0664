"""``rtrank forget USER_ID``: ask the workers to forget a user.

    rtrank forget u42        # one line: where the request was written

The request is a record on the events topic (`rtrank.streams.forgetting`), read by the
worker that owns the user in order with the user's events: it deletes the user's state
(a tombstone in the table's changelog), writes tombstones for the user's lists and
training examples (the trainer drops the user's examples from its replay buffer), and
``GET /recommendations/USER_ID`` answers 404 from then on. Events of the user written after
the request start a new history.
"""

from __future__ import annotations

import click
from kafka import KafkaProducer
from kafka.errors import KafkaError

from rtrank.streams.cli.context import pass_settings
from rtrank.streams.cli.produce import DeliveryError
from rtrank.streams.forgetting import forget_record
from rtrank.streams.kafka_security import KafkaConnectError, check_connection, client_config
from rtrank.streams.settings import Settings
from rtrank.streams.validation import Limits, Rejection, parse_identifier
from rtrank.streams.worker.topics_and_tables import TopicLayoutError, ensure_topics


@click.command()
@click.argument("user_id")
@pass_settings
def forget(settings: Settings, user_id: str) -> None:
    """Forget USER_ID: their state, lists and training examples (a record on the events topic).

    Ends with an error (exit 1) when the broker did not acknowledge the request.
    """
    checked = parse_identifier("user_id", user_id, Limits.from_settings(settings), False)
    if isinstance(checked, Rejection):
        raise click.BadParameter(checked.detail, param_hint="USER_ID")
    try:
        check_connection(settings)
        ensure_topics(settings)
        partition, offset = send_forget(settings, user_id)
    except (TopicLayoutError, KafkaConnectError, DeliveryError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"forget request for user {user_id!r} written to "
        f"{settings.events_topic}/{partition}@{offset}",
        err=True,
    )


def send_forget(settings: Settings, user_id: str) -> tuple[int, int]:
    """Write the request to forget ``user_id``; its (partition, offset) once acknowledged.

    Raises:
        DeliveryError: not acknowledged within ``producer_delivery_timeout_s``.
    """
    delivery_ms = max(1, int(settings.producer_delivery_timeout_s * 1000))
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=0,
        delivery_timeout_ms=delivery_ms,
        request_timeout_ms=min(30_000, delivery_ms),  # kafka-python: at most delivery
        **client_config(settings),
    )
    key, value, headers = forget_record(user_id)
    try:
        future = producer.send(settings.events_topic, key=key, value=value, headers=headers)
        metadata = future.get(timeout=settings.producer_delivery_timeout_s + 5)
    except KafkaError as e:
        raise DeliveryError(
            f"the request to forget {user_id!r} was not delivered to "
            f"{settings.events_topic!r}: {e!r}"
        ) from None
    finally:
        producer.close()
    return metadata.partition, metadata.offset
