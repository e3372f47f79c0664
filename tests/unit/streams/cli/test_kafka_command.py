"""Which local Kafka `rtrank kafka up|status|down` acts on, without starting Java."""

import click
import pytest

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.streams.cli.kafka import local_target


def test_without_brokers_it_is_the_single_broker_on_the_port(tmp_path) -> None:
    assert local_target(9092, tmp_path) == local_kafka.Broker(9092, tmp_path)


def test_a_new_cluster_takes_the_port_and_the_ports_after_it(tmp_path) -> None:
    cluster = local_target(9092, tmp_path, brokers=3)
    assert [(n.node_id, n.port) for n in cluster.nodes] == [(1, 9092), (2, 9093), (3, 9094)]


def _record(cluster: local_kafka.Cluster) -> None:
    for node in cluster.nodes:
        local_kafka.write_properties(node, cluster)


def test_status_and_down_find_the_cluster_started_in_the_data_dir(tmp_path) -> None:
    cluster = local_kafka.new_cluster(tmp_path, 3, [9300, 9301, 9302])
    _record(cluster)
    assert local_target(9092, tmp_path) == cluster


def test_another_node_count_than_the_recorded_cluster_is_refused(tmp_path) -> None:
    _record(local_kafka.new_cluster(tmp_path, 3, [9300, 9301, 9302]))
    with pytest.raises(click.ClickException, match="holds a cluster of 3 nodes, not 2"):
        local_target(9092, tmp_path, brokers=2)
