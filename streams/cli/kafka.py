"""``rtrank kafka up|status|down|fetch``: the local development broker or cluster
(see deploy/kafka/broker.py; ``up --secure``: deploy/kafka/secure.py), and ``rtrank kafka
acls``: a role's least-privilege ACLs on any cluster (`rtrank.streams.kafka_acls`)."""

from __future__ import annotations

from pathlib import Path

import click
from kafka.errors import KafkaError

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.deploy.kafka import secure as local_secure
from rtrank.streams import kafka_acls
from rtrank.streams.cli.context import pass_settings
from rtrank.streams.kafka_security import check_connection
from rtrank.streams.settings import Settings

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
    port: int, data_dir: Path | None, brokers: int | None = None, secure: bool = False
) -> local_kafka.Broker | local_kafka.Cluster:
    """The node or cluster in ``data_dir``: the cluster recorded there if one was started
    before (``status`` and ``down`` need no ``--brokers``), else a new one of ``brokers``
    nodes on ``port`` and the ports after it, else the single broker on ``port`` (secure
    when asked, or when it was made secure before).

    Raises:
        click.ClickException: ``brokers`` differs from the cluster recorded there, or a
            secure cluster is asked for (a secure broker is a single node).
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
        return local_kafka.Broker(port, data_dir, secure=secure or local_secure.is_secure(data_dir))
    if secure:
        raise click.ClickException("--secure starts a single broker; leave out --brokers")
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
@click.option(
    "--secure",
    is_flag=True,
    help="one broker with a SASL_SSL listener (TLS, SCRAM users) and ACLs enforced; "
    "prints the client settings",
)
@click.option(
    "--user",
    "users",
    multiple=True,
    default=("worker", "trainer", "producer"),
    show_default=True,
    help="SCRAM users besides admin, made when a secure broker's storage is formatted",
)
def up(
    port: int, data_dir: Path | None, brokers: int | None, secure: bool, users: tuple[str, ...]
) -> None:
    """Start the broker(s) in the background; return when every node answers."""
    target = local_target(port, data_dir, brokers, secure)
    try:
        click.echo(local_kafka.up(target, users=users))
    except local_kafka.BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    if isinstance(target, local_kafka.Broker) and target.secure:
        click.echo(secure_instructions(target))


def secure_instructions(node: local_kafka.Broker) -> str:
    """The client settings of each user of a secure node, as ``export`` lines."""
    lines = [
        "Clients connect with these settings (admin: a super user; grant the others their "
        "role's ACLs with `rtrank kafka acls`):"
    ]
    for user in local_secure.users(node.data_dir):
        env = local_secure.client_env(node.data_dir, node.bootstrap, user)
        lines += ["", f"# as {user}", *(f"export {k}={v}" for k, v in env.items())]
    return "\n".join(lines)


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


@kafka.command()
@click.option("--role", type=click.Choice(kafka_acls.ROLES), required=True)
@click.option("--principal", required=True, help="e.g. User:worker")
@click.option("--show", is_flag=True, help="print the ACLs, apply nothing")
@pass_settings
def acls(settings: Settings, role: kafka_acls.Role, principal: str, show: bool) -> None:
    """Grant PRINCIPAL the least-privilege ACLs of ROLE (topic names from the settings),
    connecting as the settings' user (an admin)."""
    if show:
        for grant in kafka_acls.grants(settings, role):
            click.echo(f"{principal} {grant}")
        return
    try:
        check_connection(settings)
        count = kafka_acls.apply(settings, role, principal)
    except (RuntimeError, KafkaError) as exc:
        raise click.ClickException(f"ACLs of {role} for {principal} not applied: {exc}") from None
    click.echo(f"{count} ACLs of {role} granted to {principal}")
