"""The pipeline against a broker that requires TLS and a SCRAM login and enforces ACLs
(``rtrank kafka up --secure``): the worker, the trainer and the producer each log in as
their own user holding exactly their role's ACLs (`rtrank kafka acls`, docs/operating.md's table).

One secure broker and one worker and trainer serve the whole module.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import KafkaProducer
from kafka.errors import TopicAuthorizationFailedError

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.deploy.kafka import secure
from rtrank.model.checkpoint import load_checkpoint
from rtrank.streams.bench.topic_reader import end_offsets, read_topic
from rtrank.streams.bench.worker_process import TrainerProcess, WorkerProcess, settings_env
from rtrank.streams.cli.kafka import acls
from rtrank.streams.cli.produce import produce, send_events
from rtrank.streams.cli.tail import tail
from rtrank.streams.kafka_security import KafkaConnectError, check_connection, client_config
from rtrank.streams.settings import Settings
from tests.integration.conftest import kill_and_show_log, latest_by_key, wait_for

USERS = ("worker", "trainer", "producer")


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_kafka.Broker]:
    node = local_kafka.Broker(
        local_kafka.free_port(), tmp_path_factory.mktemp("secure-kafka"), secure=True
    )
    local_kafka.up(node, users=USERS)
    try:
        yield node
    finally:
        local_kafka.down(node)


def as_user(settings: Settings, node: local_kafka.Broker, user: str) -> Settings:
    """``settings`` logging in as ``user``, with the client settings `up --secure` prints."""
    env = secure.client_env(node.data_dir, node.bootstrap, user)
    return settings.replace(**{name.removeprefix("RTRANK_").lower(): v for name, v in env.items()})


@pytest.fixture(scope="module")
def base(
    secure_broker: local_kafka.Broker,
    synthetic_checkpoint: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """The module's pipeline, not yet logged in as anyone."""
    return Settings().isolated(
        f"secure-{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path_factory.mktemp("worker"),
        web_port=local_kafka.free_port(),
        trainer_metrics_port=0,
        partitions=2,
        standby_replicas=0,
        session_timeout_s=10.0,
        checkpoint=str(synthetic_checkpoint),
        trainer_publish_s=0.5,
    )


@pytest.fixture(scope="module")
def admin(base: Settings, secure_broker: local_kafka.Broker) -> Settings:
    return as_user(base, secure_broker, secure.ADMIN)


@pytest.fixture(scope="module")
def granted(admin: Settings) -> None:
    """Each role's ACLs granted to its user, by the command an operator runs."""
    for role in USERS:
        result = CliRunner().invoke(
            acls, ["--role", role, "--principal", f"User:{role}"], obj=admin
        )
        assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def serving(
    base: Settings,
    secure_broker: local_kafka.Broker,
    granted: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    """A worker logged in as ``worker`` and serving, then a trainer as ``trainer``."""
    logs = tmp_path_factory.mktemp("logs")
    worker = WorkerProcess(as_user(base, secure_broker, "worker"), logs / "worker.log")
    trainer_settings = as_user(base, secure_broker, "trainer")
    trainer = TrainerProcess(trainer_settings, logs / "trainer.log", checkpoint=base.checkpoint)
    try:
        worker.start()
        trainer.start()
        yield worker
        assert worker.running and trainer.running
    finally:
        kill_and_show_log(worker)
        trainer.stop(signal.SIGKILL)
        print("--- trainer log ---\n" + trainer.log.read_text(errors="replace")[-4000:])


def test_events_sent_by_the_producer_user_are_answered(
    serving: WorkerProcess, base: Settings, admin: Settings, secure_broker: local_kafka.Broker
) -> None:
    producer = as_user(base, secure_broker, "producer")
    users = [f"u{n}" for n in range(20)]
    events = [
        {"user_id": user, "item_id": f"item-{n}", "event_type": "view", "ts": None}
        for user in users
        for n in range(3)
    ]
    send_events(producer, events, progress=False)
    wait_for(
        lambda: set(users) <= set(latest_by_key(read_topic(admin, admin.recommendations_topic))),
        timeout_s=60,
        message="some users sent over SASL_SSL got no list",
    )


def test_a_bad_event_is_dead_lettered(
    serving: WorkerProcess, base: Settings, admin: Settings, secure_broker: local_kafka.Broker
) -> None:
    producer = as_user(base, secure_broker, "producer")
    send_events(producer, [{"user_id": "bad-1", "item_id": "i", "ts": None}], progress=False)

    def dead_lettered() -> bool:
        return any(b'"bad-1"' in r.value for r in read_topic(admin, admin.dlq_topic))

    wait_for(dead_lettered, timeout_s=60, message="the event without event_type was not in the DLQ")
    (record,) = [r for r in read_topic(admin, admin.dlq_topic) if b'"bad-1"' in r.value]
    assert dict(record.headers)["rtrank-reason"]


def test_the_trainers_update_is_applied_by_the_worker(
    serving: WorkerProcess, base: Settings
) -> None:
    start = load_checkpoint(base.checkpoint).version
    wait_for(
        lambda: serving.health()["model_version"] > start,
        timeout_s=60,
        message="the worker never served a version the trainer published over SASL_SSL",
    )


def test_a_user_without_write_on_model_updates_cannot_publish_one(
    serving: WorkerProcess, base: Settings, admin: Settings, secure_broker: local_kafka.Broker
) -> None:
    intruder = as_user(base, secure_broker, "worker")  # reads model updates, never writes
    before = end_offsets(admin, admin.model_updates_topic)
    producer = KafkaProducer(
        bootstrap_servers=intruder.bootstrap_servers,
        max_block_ms=10_000,
        **client_config(intruder),
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(intruder.model_updates_topic, b"forged").get(timeout=30)
    finally:
        producer.close()
    ends = end_offsets(admin, admin.model_updates_topic)
    assert all(ends[p] >= before[p] for p in before)  # the trainer may have published
    assert b"forged" not in {r.value for r in read_topic(admin, admin.model_updates_topic)}


def test_no_password_is_in_a_log_or_in_health(
    serving: WorkerProcess, secure_broker: local_kafka.Broker
) -> None:
    passwords = [secure.password_file(secure_broker.data_dir, u).read_text() for u in USERS]
    shown = [
        serving.log.read_text(errors="replace"),
        (serving.log.parent / "trainer.log").read_text(errors="replace"),
        json.dumps(serving.health()),
    ]
    assert all(shown)  # the processes logged, and /health answered
    assert [p for p in passwords if any(p in text for text in shown)] == []


def one_line_error(result) -> str:  # noqa: ANN001 - click's Result
    """The message of a command that ended with one ``Error:`` line and exit 1 (not an
    exception escaping it)."""
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_a_wrong_password_ends_tail_with_one_line(admin: Settings) -> None:
    wrong = admin.replace(kafka_password_file="", kafka_password="not-the-password")
    started = time.monotonic()
    line = one_line_error(CliRunner().invoke(tail, ["--limit", "1"], obj=wrong))
    assert "login refused" in line and "not-the-password" not in line
    assert time.monotonic() - started < 30  # refused, not retried until a timeout


def test_a_worker_with_a_wrong_password_ends_with_one_line_and_no_traceback(
    admin: Settings, tmp_path: Path
) -> None:
    wrong = admin.replace(
        kafka_password_file="",
        kafka_password="not-the-password",
        data_dir=tmp_path / "worker",
        web_port=local_kafka.free_port(),
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "rtrank.streams", "worker", "-l", "info"],
        env=settings_env(wrong),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith("Error: ") and "login refused" in result.stderr
    assert "not-the-password" not in result.stderr
    assert time.monotonic() - started < 60  # refused, not retried until a timeout


def test_an_untrusted_certificate_ends_produce_with_one_line(
    admin: Settings, tmp_path: Path
) -> None:
    secure.make_certificates(tmp_path)  # another CA, which never signed the broker's
    stranger = admin.replace(kafka_ca_file=str(tmp_path / "ca.pem"))
    started = time.monotonic()
    result = CliRunner().invoke(produce, ["--synthetic", "--events", "10"], obj=stranger)
    assert "TLS certificate is not trusted" in one_line_error(result)
    assert time.monotonic() - started < 30


def test_a_client_without_a_certificate_is_refused(admin: Settings) -> None:
    with pytest.raises(KafkaConnectError) as caught:
        check_connection(admin.replace(kafka_cert_file="", kafka_key_file=""), timeout_s=10)
    assert "\n" not in str(caught.value)


def test_a_client_certificate_from_another_ca_is_refused(admin: Settings, tmp_path: Path) -> None:
    secure.make_certificates(tmp_path)
    secure.make_client_certificate(tmp_path, "admin")
    pem = str(tmp_path / "admin.pem")
    with pytest.raises(KafkaConnectError) as caught:
        check_connection(admin.replace(kafka_cert_file=pem, kafka_key_file=pem), timeout_s=10)
    assert "\n" not in str(caught.value)


def test_status_sees_the_secure_broker_answer(secure_broker: local_kafka.Broker) -> None:
    running, line = local_kafka.status(secure_broker)
    assert running and "answering" in line and "not answering" not in line
