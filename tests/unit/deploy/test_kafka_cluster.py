"""The local cluster's layout and each node's server.properties, without starting Java."""

from pathlib import Path

from rtrank.deploy.kafka import broker
from rtrank.deploy.kafka.broker import Broker, Cluster, new_cluster, recorded_cluster


def _three(tmp_path: Path) -> Cluster:
    return Cluster(
        tuple(Broker(9092 + n, tmp_path / f"node-{n + 1}", n + 1, 19092 + n) for n in range(3))
    )


def test_the_quorum_voters_name_every_nodes_controller() -> None:
    cluster = _three(Path("/x"))
    assert cluster.quorum_voters == "1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094"


def test_clients_bootstrap_from_every_node() -> None:
    assert _three(Path("/x")).bootstrap == "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"


def test_each_node_is_broker_and_controller_under_its_own_id_and_ports(tmp_path) -> None:
    cluster = _three(tmp_path)
    props = broker.server_properties(cluster.nodes[1], cluster)
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == cluster.quorum_voters
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9093"
    assert props["log.dirs"] == str(tmp_path / "node-2" / "kraft")


def test_three_nodes_replicate_internal_topics_thrice_with_two_in_sync(tmp_path) -> None:
    cluster = _three(tmp_path)
    props = broker.server_properties(cluster.nodes[0], cluster)
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"


def test_a_lone_node_keeps_every_topic_on_one_replica(tmp_path) -> None:
    node = Broker(9092, tmp_path, controller_port=19092)
    props = broker.server_properties(node, Cluster((node,)))
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19092"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["default.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"


def test_a_new_cluster_numbers_its_nodes_and_gives_each_a_distinct_controller_port(
    tmp_path,
) -> None:
    cluster = new_cluster(tmp_path, 3, [9092, 9093, 9094])
    assert [(n.node_id, n.port, n.data_dir) for n in cluster.nodes] == [
        (1, 9092, tmp_path / "node-1"),
        (2, 9093, tmp_path / "node-2"),
        (3, 9094, tmp_path / "node-3"),
    ]
    controllers = {n.controller_port for n in cluster.nodes}
    assert len(controllers) == 3 and not controllers & {9092, 9093, 9094}


def test_a_cluster_is_found_again_from_its_nodes_server_properties(tmp_path) -> None:
    cluster = _three(tmp_path)
    for node in cluster.nodes:
        broker.write_properties(node, cluster)
    assert recorded_cluster(tmp_path) == cluster


def test_a_folder_without_nodes_holds_no_cluster(tmp_path) -> None:
    (tmp_path / "kraft").mkdir()
    assert recorded_cluster(tmp_path) is None


def test_a_node_whose_storage_is_gone_rejoins_under_the_clusters_id(tmp_path) -> None:
    cluster = _three(tmp_path)
    kept = cluster.nodes[2].storage_dir
    kept.mkdir(parents=True)
    (kept / "meta.properties").write_text("version=1\ncluster.id=AbCdEfGhIjKlMnOpQrStUv\n")
    assert broker._cluster_id(cluster) == "AbCdEfGhIjKlMnOpQrStUv"


def test_status_of_a_cluster_names_every_node_that_is_not_running(tmp_path) -> None:
    running, text = broker.status(_three(tmp_path))
    assert not running
    assert text.splitlines() == [
        "Kafka cluster: 0 of 3 nodes running on 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094",
        "  node 1 on 127.0.0.1:9092: not running",
        "  node 2 on 127.0.0.1:9093: not running",
        "  node 3 on 127.0.0.1:9094: not running",
    ]


def test_down_of_a_cluster_not_running_is_not_an_error(tmp_path) -> None:
    assert broker.down(_three(tmp_path)) == "Kafka is not running"
