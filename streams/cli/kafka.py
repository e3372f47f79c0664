"""``rtrank kafka up|status|down``: the local development broker (see deploy/kafka/broker.py)."""

from __future__ import annotations

from pathlib import Path

import click

from rtrank.deploy.kafka import broker as local_kafka

port_option = click.option(
    "--port", type=int, default=local_kafka.DEFAULT_PORT, show_default=True, help="client port"
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="KRaft storage, pid file and broker.log [default: ~/.local/state/rtrank/kafka-PORT]",
)


def _broker(port: int, data_dir: Path | None) -> local_kafka.Broker:
    return local_kafka.Broker(port, data_dir or local_kafka.default_data_dir(port))


@click.group()
def kafka() -> None:
    """Run a local single-node Apache Kafka (KRaft) for development and tests."""


@kafka.command()
@port_option
@data_dir_option
def up(port: int, data_dir: Path | None) -> None:
    """Start the broker in the background; return when it answers."""
    try:
        click.echo(local_kafka.up(_broker(port, data_dir)))
    except local_kafka.BrokerError as exc:
        raise click.ClickException(str(exc)) from None


@kafka.command()
@port_option
@data_dir_option
def status(port: int, data_dir: Path | None) -> None:
    """Say whether the broker runs (exit code 1 when it does not)."""
    running, line = local_kafka.status(_broker(port, data_dir))
    click.echo(line)
    if not running:
        raise SystemExit(1)


@kafka.command()
@port_option
@data_dir_option
def down(port: int, data_dir: Path | None) -> None:
    """Stop the broker cleanly; nothing running is not an error."""
    click.echo(local_kafka.down(_broker(port, data_dir)))


@kafka.command()
def fetch() -> None:
    """Resolve the broker's jars from Maven Central into the cache (offline afterwards)."""
    try:
        click.echo(f"Kafka {local_kafka.kafka_version()} jars in {local_kafka.resolve_jars()}")
    except local_kafka.BrokerError as exc:
        raise click.ClickException(str(exc)) from None
