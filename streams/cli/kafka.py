"""``rtrank kafka up|status|down``: the local development broker or cluster
(see deploy/kafka/broker.py)."""

from __future__ import annotations

from pathlib import Path

import click

from rtrank.deploy.kafka import broker as local_kafka

port_option = click.option(
    "--port",
    type=int,
    default=local_kafka.DEFAULT_PORT,
    show_default=True,
    help="client port (of the first node; a cluster's nodes take the ports after it)",
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="KRaft storage, pid file and broker.log; a cluster's nodes in node-1, node-2, … "
    "[default: ~/.local/state/rtrank/kafka-PORT]",
)


def local_target(
    port: int, data_dir: Path | None, brokers: int | None = None
) -> local_kafka.Broker | local_kafka.Cluster:
    """The node or cluster in ``data_dir``: the cluster recorded there if one was started
    before (``status`` and ``down`` need no ``--brokers``), else a new one of ``brokers``
    nodes on ``port`` and the ports after it, else the single broker on ``port``.

    Raises:
        click.ClickException: ``brokers`` differs from the cluster recorded there.
    """
    data_dir = data_dir or local_kafka.default_data_dir(port)
    recorded = local_kafka.recorded_cluster(data_dir)
    if recorded is not None:
        if brokers not in (None, len(recorded.nodes)):
            raise click.ClickException(
                f"{data_dir} holds a cluster of {len(recorded.nodes)} nodes, not {brokers}; "
                "stop it and choose another --data-dir"
            )
        return recorded
    if brokers is None or brokers == 1:
        return local_kafka.Broker(port, data_dir)
    return local_kafka.new_cluster(data_dir, brokers, [port + n for n in range(brokers)])


@click.group()
def kafka() -> None:
    """Run a local Apache Kafka (KRaft), one node or a cluster, for development and tests."""


@kafka.command()
@port_option
@data_dir_option
@click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    default=None,
    help="nodes, each broker and controller [default: 1, or the cluster in --data-dir]",
)
def up(port: int, data_dir: Path | None, brokers: int | None) -> None:
    """Start the broker(s) in the background; return when every node answers."""
    try:
        click.echo(local_kafka.up(local_target(port, data_dir, brokers)))
    except local_kafka.BrokerError as exc:
        raise click.ClickException(str(exc)) from None


@kafka.command()
@port_option
@data_dir_option
def status(port: int, data_dir: Path | None) -> None:
    """Say whether the broker runs, each node of a cluster (exit code 1 when one does not)."""
    running, lines = local_kafka.status(local_target(port, data_dir))
    click.echo(lines)
    if not running:
        raise SystemExit(1)


@kafka.command()
@port_option
@data_dir_option
def down(port: int, data_dir: Path | None) -> None:
    """Stop the broker, or every node of the cluster, cleanly; nothing running is not an
    error."""
    click.echo(local_kafka.down(local_target(port, data_dir)))


@kafka.command()
def fetch() -> None:
    """Resolve the broker's jars from Maven Central into the cache (offline afterwards)."""
    try:
        click.echo(f"Kafka {local_kafka.kafka_version()} jars in {local_kafka.resolve_jars()}")
    except local_kafka.BrokerError as exc:
        raise click.ClickException(str(exc)) from None
