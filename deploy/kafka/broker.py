"""A local Apache Kafka (KRaft) for development and tests: one node, or a small cluster.

    rtrank kafka up [--brokers 3] [--port 9092] [--data-dir DIR]
    rtrank kafka status
    rtrank kafka down

The jars come from Maven Central through `pom.xml` beside this file. They are resolved once
into a cache outside git (``RTRANK_KAFKA_CACHE``, default ``~/.cache/rtrank/kafka``); every
later start is offline. Every node is both broker and controller (a cluster of three is its
own quorum of three controllers, which survives one dead node), listens on 127.0.0.1 only,
runs the log cleaner (Faust changelogs are compacted) and never auto-creates topics: a topic
that the pipeline did not declare is an error, not a silent one-partition surprise. Kafka's
internal topics get replication min(3, nodes) and min.insync.replicas 2 from three nodes on.

A node's data directory holds its KRaft storage, ``server.properties``, ``broker.pid`` and
``broker.log``; the pid file is how ``status`` and ``down`` find it again. A cluster's nodes
live in ``node-1``, ``node-2``, … under the cluster's directory, and their
``server.properties`` record its layout (ports, quorum), so a later ``up`` — of the whole
cluster, or of one node that died — starts every node where its peers expect it.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from rtrank.deploy.kafka import secure
from rtrank.deploy.kafka.processes import free_port, is_zombie, port_taken, stop_pids

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG_CONFIG = HERE / "log4j2.properties"
DEFAULT_PORT = 9092
HEAP = "-Xmx512m"
CLUSTER_HEAP = "-Xmx256m"  # per node: three JVMs share a developer's machine
# Kafka's own defaults (``kafka-run-class.sh``): G1 sized to pause about 20 ms, not 200.
# Then the JIT's first tier only: a local broker carries a test's, a benchmark's or the
# demo's load, which C1's code handles, and the second tier's compiles took cores from the
# pipeline for minutes after each start (docs/decisions.md, "The local broker compiles
# with C1 only").
KAFKA_JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:TieredStopAtLevel=1",
)


class BrokerError(RuntimeError):
    """A broker operation failed; the message is one line meant for the operator."""


@dataclass(frozen=True)
class Broker:
    """Where one local node lives: its client port and its data directory.

    In a cluster a node also has its id and a fixed controller port, which its peers know;
    a lone node (``controller_port`` 0) takes a free one at each start. A ``secure`` node
    (a lone one) has a SASL_SSL listener instead of PLAINTEXT (`rtrank.deploy.kafka.secure`).
    """

    port: int
    data_dir: Path
    node_id: int = 1
    controller_port: int = 0
    secure: bool = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def client_config(self) -> dict:
        """kafka-python keyword arguments of an admin client of this node: none for a
        plain node, the admin user's login for a secure one."""
        if not self.secure:
            return {}
        from rtrank.streams.kafka_security import client_config
        from rtrank.streams.settings import Settings

        env = secure.client_env(self.data_dir, self.bootstrap, secure.ADMIN)
        return client_config(Settings.from_env(env))

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "kraft"


@dataclass(frozen=True)
class Cluster:
    """Local KRaft nodes forming one cluster; every node is a broker and a controller."""

    nodes: tuple[Broker, ...]

    @property
    def bootstrap(self) -> str:
        """Every node's client address: clients find the cluster through any live one."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def quorum_voters(self) -> str:
        """``controller.quorum.voters``: ``id@host:port`` of every controller."""
        return ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)


def new_cluster(data_dir: Path, brokers: int, ports: list[int] | None = None) -> Cluster:
    """A cluster of ``brokers`` nodes under ``data_dir`` (``node-1`` …): client ports
    ``ports`` (default: free ones), controller ports free now and fixed from then on."""
    ports = ports or [free_port() for _ in range(brokers)]
    if len(ports) != brokers:
        raise ValueError(f"{brokers} nodes need {brokers} client ports, got {len(ports)}")
    controllers: list[int] = []
    while len(controllers) < brokers:
        port = free_port()
        if port not in controllers and port not in ports:
            controllers.append(port)
    return Cluster(
        tuple(
            Broker(port, data_dir / f"node-{n}", n, controller)
            for n, (port, controller) in enumerate(zip(ports, controllers, strict=True), 1)
        )
    )


def recorded_cluster(data_dir: Path) -> Cluster | None:
    """The cluster whose nodes' ``server.properties`` are under ``data_dir``, or None."""
    nodes = []
    for properties in sorted(data_dir.glob("node-*/server.properties")):
        values = _read_properties(properties)
        ports = dict(item.split("://") for item in values["listeners"].split(","))
        nodes.append(
            Broker(
                port=int(ports.get("PLAINTEXT", ports.get(secure.LISTENER, "")).rsplit(":", 1)[1]),
                data_dir=properties.parent,
                node_id=int(values["node.id"]),
                controller_port=int(ports["CONTROLLER"].rsplit(":", 1)[1]),
                secure=secure.LISTENER in ports,
            )
        )
    return Cluster(tuple(sorted(nodes, key=lambda n: n.node_id))) if nodes else None


def default_data_dir(port: int) -> Path:
    """Per-port default, so a test broker on a free port never touches the dev broker."""
    base = os.environ.get("RTRANK_KAFKA_DATA_DIR")
    if base:
        return Path(base)
    return Path.home() / ".local" / "state" / "rtrank" / f"kafka-{port}"


def kafka_version() -> str:
    """The Kafka release pinned in pom.xml (the single source of truth)."""
    text = POM.read_text()
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>", start)].strip()


def jar_dir() -> Path:
    base = Path(os.environ.get("RTRANK_KAFKA_CACHE", Path.home() / ".cache" / "rtrank" / "kafka"))
    return base / kafka_version()


def resolve_jars() -> Path:
    """Copy the broker's jars from Maven into the cache once; return the folder.

    A ``.complete`` marker is written last, so an interrupted download is redone rather
    than leaving a broker that fails at class loading.
    """
    libs = jar_dir()
    if (libs / ".complete").exists():
        return libs
    _require("java", "Java 17+ is needed to run Kafka; install a JDK (e.g. openjdk-17-jre).")
    mvn = _require("mvn", "Maven is needed once to fetch the Kafka jars; install maven.")
    if libs.exists():
        shutil.rmtree(libs)
    libs.mkdir(parents=True)
    cmd = [
        mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise BrokerError(f"resolving Kafka jars with Maven failed: {' | '.join(tail)}")
    (libs / ".complete").write_text(kafka_version())
    return libs


def running_pid(broker: Broker) -> int | None:
    """The pid from the pid file if that process is alive, else None."""
    try:
        pid = int(broker.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    if is_zombie(pid):
        return None
    return pid


def answers_metadata(bootstrap: str, timeout_s: float = 3.0, **client: object) -> bool:
    """True when the broker answers a metadata request (not merely accepts a TCP connect);
    ``client``: the login of a secure node (`Broker.client_config`)."""
    return live_broker_ids(bootstrap, timeout_s, **client) is not None


def live_broker_ids(bootstrap: str, timeout_s: float = 3.0, **client: object) -> set[int] | None:
    """Ids of the brokers that the cluster's metadata lists unfenced, asked at
    ``bootstrap``; None when nothing there answers.

    A broker is unfenced while it heartbeats to the active controller and has caught up
    with the cluster's metadata: every node in the set means the controller quorum stands
    and every broker serves. A killed broker stays listed, unfenced, until its session
    with the controller times out (seconds).
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
            **client,
        )
    except (KafkaError, OSError, ValueError):
        return None
    try:
        brokers = admin.describe_cluster()["brokers"]
    except (KafkaError, OSError):
        return None
    finally:
        admin.close()
    return {b["broker_id"] for b in brokers if not b.get("is_fenced")}


def up(target: Broker | Cluster, wait_s: float = 90.0, users: tuple[str, ...] = ()) -> str:
    """Start the node(s) not running, in the background; return once each answers at its
    own address and the cluster lists every node unfenced (`live_broker_ids`: the controller
    quorum stands). Both: a node killed moments ago is still listed unfenced.

    A secure node gets the SCRAM ``users`` (besides ``admin``) when its storage is first
    formatted; later starts keep the users it has.

    Returns a one-line message; raises BrokerError with a log path when a node does not
    come up (the nodes this call started are stopped again).
    """
    cluster = _as_cluster(target)
    pids = [running_pid(node) for node in cluster.nodes]
    if all(pids):
        return f"Kafka is already running ({_pids(pids)}) on {cluster.bootstrap}"
    for node, pid in zip(cluster.nodes, pids, strict=True):
        for port in (node.port, node.controller_port) if pid is None else ():
            if port and port_taken(port):
                raise BrokerError(f"port {port} is already in use by another process")
    java = _require("java", "Java 17+ is needed to run Kafka; install a JDK (e.g. openjdk-17-jre).")
    classpath = f"{resolve_jars()}/*"
    if isinstance(target, Broker) and target.controller_port == 0:
        cluster = Cluster((replace(target, controller_port=free_port()),))
    cluster_id = _cluster_id(cluster)
    started: dict[Broker, subprocess.Popen] = {}
    for n, node in enumerate(cluster.nodes):
        if pids[n] is None:
            started[node] = _start(java, classpath, node, cluster, cluster_id, users)
            pids[n] = started[node].pid
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for node, process in started.items():
            if process.poll() is not None:
                _stop_all(started)
                raise BrokerError(
                    f"Kafka exited with code {process.returncode} during start; see {node.log_file}"
                )
        client = cluster.nodes[0].client_config
        if all(answers_metadata(node.bootstrap, 2.0, **client) for node in started) and (
            live_broker_ids(cluster.bootstrap, 2.0, **client) == {n.node_id for n in cluster.nodes}
        ):
            what = "is up" if len(cluster.nodes) == 1 else f"cluster of {len(cluster.nodes)} is up"
            return f"Kafka {kafka_version()} {what} ({_pids(pids)}) on {cluster.bootstrap}"
        time.sleep(0.5)
    _stop_all(started)
    logs = ", ".join(str(node.log_file) for node in started)
    raise BrokerError(f"Kafka did not answer within {wait_s:.0f}s; see {logs}")


def status(target: Broker | Cluster) -> tuple[bool, str]:
    """(every node running, a description: one line, plus one per node in a cluster)."""
    if isinstance(target, Broker):
        pid = running_pid(target)
        if pid is None:
            return False, f"Kafka is not running (data dir {target.data_dir})"
        answering = answers_metadata(target.bootstrap, **target.client_config)
        state = "answering" if answering else "not answering yet"
        return (
            True,
            f"Kafka is running (pid {pid}) on {target.bootstrap}, {state}; log {target.log_file}",
        )
    pids = [running_pid(node) for node in target.nodes]
    live = (live_broker_ids(target.bootstrap) or set()) if any(pids) else set()
    lines = []
    for node, pid in zip(target.nodes, pids, strict=True):
        if pid is None:
            lines.append(f"  node {node.node_id} on {node.bootstrap}: not running")
            continue
        state = "serving" if node.node_id in live else "not serving (starting or fenced)"
        lines.append(
            f"  node {node.node_id} (pid {pid}) on {node.bootstrap}: {state}; log {node.log_file}"
        )
    running, size = sum(pid is not None for pid in pids), len(target.nodes)
    head = f"Kafka cluster: {running} of {size} nodes running on {target.bootstrap}"
    return running == size, "\n".join([head, *lines])


def down(target: Broker | Cluster, wait_s: float = 30.0) -> str:
    """Stop every node (SIGTERM to all at once, SIGKILL after wait_s). Not running is not
    an error. All at once: a node stopped alone in a cluster would wait for the quorum."""
    nodes = _as_cluster(target).nodes
    pids = [running_pid(node) for node in nodes]
    live = [pid for pid in pids if pid is not None]
    if not live:
        for node in nodes:
            node.pid_file.unlink(missing_ok=True)
        return "Kafka is not running"
    stop_pids(live, wait_s)
    for node in nodes:
        node.pid_file.unlink(missing_ok=True)
    return f"Kafka stopped ({_pids(pids)})"


def server_properties(node: Broker, cluster: Cluster) -> dict[str, str]:
    """The ``server.properties`` of ``node`` in ``cluster`` (a lone node: a cluster of one)."""
    size = len(cluster.nodes)
    replication = str(min(3, size))
    min_isr = "2" if size >= 3 else "1"
    plain = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": cluster.quorum_voters,
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(node.storage_dir),
        # Internal topics as replicated as the cluster allows; one node: a single replica.
        "offsets.topic.replication.factor": replication,
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": min_isr,
        "default.replication.factor": replication,
        "min.insync.replicas": min_isr,
        # Our topics are declared with their partition counts; never invent them.
        "auto.create.topics.enable": "false",
        # Faust changelogs are compacted topics: the cleaner must run, with a small buffer.
        "log.cleaner.enable": "true",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    if not node.secure:
        return plain
    return {**plain, **secure.properties(node.data_dir, node.port, node.controller_port)}


def write_properties(node: Broker, cluster: Cluster) -> None:
    """Write `server_properties` into the node's data directory (created if missing)."""
    node.data_dir.mkdir(parents=True, exist_ok=True)
    properties = server_properties(node, cluster)
    text = "".join(f"{k}={v}\n" for k, v in properties.items())
    # 0600: a secure node's file holds the broker's own SCRAM password
    fd = os.open(node.properties_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _as_cluster(target: Broker | Cluster) -> Cluster:
    return Cluster((target,)) if isinstance(target, Broker) else target


def _pids(pids: list[int | None]) -> str:
    numbers = [str(pid) for pid in pids if pid is not None]
    return f"pid{'s' if len(numbers) > 1 else ''} {', '.join(numbers)}"


def _start(
    java: str,
    classpath: str,
    node: Broker,
    cluster: Cluster,
    cluster_id: str,
    users: tuple[str, ...] = (),
) -> subprocess.Popen:
    formatted = (node.storage_dir / "meta.properties").exists()
    if node.secure:
        secure.prepare(node.data_dir, () if formatted else users)
    write_properties(node, cluster)
    if not formatted:
        _format_storage(java, classpath, node, cluster_id)
    process = subprocess.Popen(
        [
            java,
            HEAP if len(cluster.nodes) == 1 else CLUSTER_HEAP,
            "-Xms128m",
            *KAFKA_JVM_FLAGS,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG_CONFIG}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(node.properties_file),
        ],  # fmt: skip
        stdout=node.log_file.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    node.pid_file.write_text(str(process.pid))
    return process


def _stop_all(started: dict[Broker, subprocess.Popen]) -> None:
    stop_pids([process.pid for process in started.values()])
    for node in started:
        node.pid_file.unlink(missing_ok=True)


def _cluster_id(cluster: Cluster) -> str:
    """The id the cluster's storage was formatted with (a node whose storage is gone
    rejoins under it), or a new one."""
    for node in cluster.nodes:
        meta = node.storage_dir / "meta.properties"
        if meta.exists():
            found = _read_properties(meta).get("cluster.id")
            if found:
                return found
    return _kafka_uuid()


def _read_properties(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in path.read_text(errors="replace").splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def _format_storage(java: str, classpath: str, node: Broker, cluster_id: str) -> None:
    cmd = [
        java, "-Xmx256m", f"-Dlog4j2.configurationFile={LOG_CONFIG}", "-cp", classpath,
        "kafka.tools.StorageTool", "format", "--ignore-formatted",
        "-t", cluster_id, "-c", str(node.properties_file),
        *(secure.scram_arguments(node.data_dir) if node.secure else []),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerError(f"formatting KRaft storage failed: {done.stdout + done.stderr}".strip())


def _kafka_uuid() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    One id in 64 would begin with "-", which the storage tool's argument parser reads as an
    option ("--cluster-id: expected one argument"); like Kafka's own ``Uuid.randomUuid`` we
    draw again until the id does not.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _require(program: str, message: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise BrokerError(f"{program} not found: {message}")
    return path
