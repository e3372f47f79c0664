"""``rtrank tail``: a readable live view of a topic (recommendations by default)."""

from __future__ import annotations

import json

import click
from kafka import KafkaConsumer

from rtrank.streams.cli.context import pass_settings
from rtrank.streams.kafka_security import KafkaConnectError, check_connection, client_config
from rtrank.streams.settings import Settings


@click.command()
@click.option("--topic", default=None, help="[default: the recommendations topic]")
@click.option("--limit", type=int, default=0, help="stop after this many records (0 = never)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.option("--from-beginning", is_flag=True, help="start at the oldest record, not the newest")
@pass_settings
def tail(
    settings: Settings, topic: str | None, limit: int, as_json: bool, from_beginning: bool
) -> None:
    """Follow a topic and print each record as it arrives (Ctrl-C stops)."""
    try:
        check_connection(settings)
    except KafkaConnectError as exc:
        raise click.ClickException(str(exc)) from None
    consumer = KafkaConsumer(
        topic or settings.recommendations_topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        group_id=None,
        **client_config(settings),
    )
    shown = 0
    try:
        for message in consumer:
            click.echo(render(message.key, message.value, dict(message.headers or []), as_json))
            shown += 1
            if limit and shown >= limit:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def render(key: bytes | None, value: bytes | None, headers: dict[str, bytes], as_json: bool) -> str:
    """One line for one record: a recommendation list, a dead letter, or raw JSON."""
    text = (value or b"").decode("utf-8", "replace")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = None
    reason = headers.get("rtrank-reason")
    if as_json:
        if isinstance(obj, dict) and reason is None:
            return json.dumps(obj)
        return json.dumps(
            {
                "key": (key or b"").decode("utf-8", "replace"),
                "value": text,
                **({"reason": reason.decode("utf-8", "replace")} if reason else {}),
            }
        )
    if reason is not None:
        return f"DLQ  {reason.decode('utf-8', 'replace')}  value={text[:80]!r}"
    if isinstance(obj, dict) and "items" in obj and "based_on" in obj:
        items = ", ".join(f"{i['item_id']} {i['score']:.2f}" for i in obj["items"][:5])
        more = f" +{len(obj['items']) - 5}" if len(obj["items"]) > 5 else ""
        src = obj["based_on"]
        answered_ms = obj["timings"].get("queued", 0) + obj["timings"].get("inference", 0)
        return (
            f"{obj['user_id']:<14} v{obj['model_version']}  [{items}{more}]  "
            f"after {src['topic']}/{src['partition']}@{src['offset']}  "
            f"answered in {answered_ms:.0f} ms"
        )
    return text
