"""A single-node Apache Kafka (KRaft) broker for development and tests.

    rtrank kafka up [--port 9092] [--data-dir DIR]
    rtrank kafka status
    rtrank kafka down

The jars come from Maven Central through `pom.xml` beside this file. They are resolved once
into a cache outside git (``RTRANK_KAFKA_CACHE``, default ``~/.cache/rtrank/kafka``); every
later start is offline. One node is both broker and controller, listens on 127.0.0.1 only,
keeps replication factors at 1, runs the log cleaner (Faust changelogs are compacted) and
never auto-creates topics: a topic that the pipeline did not declare is an error, not a
silent one-partition surprise.

The data directory holds the KRaft storage, ``server.properties``, ``broker.pid`` and
``broker.log``; the pid file is how ``status`` and ``down`` find the broker again.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
LOG_CONFIG = HERE / "log4j2.properties"
DEFAULT_PORT = 9092
HEAP = "-Xmx512m"


class BrokerError(RuntimeError):
    """A broker operation failed; the message is one line meant for the operator."""


@dataclass(frozen=True)
class Broker:
    """Where one local broker lives: its client port and its data directory."""

    port: int
    data_dir: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

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
    if _is_zombie(pid):
        return None
    return pid


def answers_metadata(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """True when the broker answers a metadata request (not merely accepts a TCP connect)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def up(broker: Broker, wait_s: float = 90.0) -> str:
    """Start the broker in the background; return once it answers a metadata request.

    Returns a one-line message; raises BrokerError with the log path when it does not come up.
    """
    pid = running_pid(broker)
    if pid is not None:
        return f"Kafka is already running (pid {pid}) on {broker.bootstrap}"
    if _port_taken(broker.port):
        raise BrokerError(f"port {broker.port} is already in use by another process")
    java = _require("java", "Java 17+ is needed to run Kafka; install a JDK (e.g. openjdk-17-jre).")
    libs = resolve_jars()
    broker.data_dir.mkdir(parents=True, exist_ok=True)
    controller_port = free_port()
    broker.properties_file.write_text(_server_properties(broker, controller_port))
    classpath = f"{libs}/*"
    if not (broker.storage_dir / "meta.properties").exists():
        _format_storage(java, classpath, broker)
    log = broker.log_file.open("ab")
    process = subprocess.Popen(
        [
            java,
            HEAP,
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG_CONFIG}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(broker.properties_file),
        ],  # fmt: skip
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    broker.pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            broker.pid_file.unlink(missing_ok=True)
            raise BrokerError(
                f"Kafka exited with code {process.returncode} during start; see {broker.log_file}"
            )
        if answers_metadata(broker.bootstrap, timeout_s=2.0):
            return f"Kafka {kafka_version()} is up (pid {process.pid}) on {broker.bootstrap}"
        time.sleep(0.5)
    _stop(process.pid)
    broker.pid_file.unlink(missing_ok=True)
    raise BrokerError(f"Kafka did not answer within {wait_s:.0f}s; see {broker.log_file}")


def status(broker: Broker) -> tuple[bool, str]:
    """(running, one-line description)."""
    pid = running_pid(broker)
    if pid is None:
        return False, f"Kafka is not running (data dir {broker.data_dir})"
    state = "answering" if answers_metadata(broker.bootstrap) else "not answering yet"
    return (
        True,
        f"Kafka is running (pid {pid}) on {broker.bootstrap}, {state}; log {broker.log_file}",
    )


def down(broker: Broker, wait_s: float = 30.0) -> str:
    """Stop the broker cleanly (SIGTERM, SIGKILL after wait_s). Not running is not an error."""
    pid = running_pid(broker)
    if pid is None:
        broker.pid_file.unlink(missing_ok=True)
        return "Kafka is not running"
    _stop(pid, wait_s)
    broker.pid_file.unlink(missing_ok=True)
    return f"Kafka stopped (pid {pid})"


def _server_properties(broker: Broker, controller_port: int) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker.port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker.port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(broker.storage_dir),
        # One node: every internal topic must be satisfiable with a single replica.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
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
    return "".join(f"{k}={v}\n" for k, v in settings.items())


def _format_storage(java: str, classpath: str, broker: Broker) -> None:
    cluster_id = _kafka_uuid()
    cmd = [
        java, "-Xmx256m", f"-Dlog4j2.configurationFile={LOG_CONFIG}", "-cp", classpath,
        "kafka.tools.StorageTool", "format", "--ignore-formatted",
        "-t", cluster_id, "-c", str(broker.properties_file),
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


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _is_zombie(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return False
    return fields[0] == "Z"


def _stop(pid: int, wait_s: float = 30.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if _is_zombie(pid):
            _reap(pid)
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
