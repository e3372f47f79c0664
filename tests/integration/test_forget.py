"""Forgetting a user against a real broker, worker and trainer: `rtrank forget` leaves
tombstones on the user table's changelog and on the recommendations topic, the list
lookup answers 404, the trainer's replay buffer no longer holds the user, and neither a
restarted worker nor one that starts without local state (as a worker taking the
partitions over does: it reads the whole changelog) knows anything of them. The list
lookup runs behind a bearer token here.

A two-worker takeover is not run: what a new owner recovers is the changelog, as the worker
started without local state does here; tests/integration/test_takeover.py covers the
handover itself.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rtrank.deploy.kafka import broker as local_kafka
from rtrank.streams.bench.topic_reader import end_offsets
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.cli.forget import forget
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.online_trainer import Trainer
from rtrank.streams.worker.topics_and_tables import changelog
from tests.integration.conftest import isolated_settings, kill_and_show_log, read_topic, wait_for

TOKEN = "s3cret-token"
TS = 1_700_000_000_000


def get(settings: Settings, path: str, token: str | None = TOKEN) -> tuple[int, dict, dict]:
    """(status, headers, JSON body) of GET ``path`` on the worker."""
    request = urllib.request.Request(f"http://127.0.0.1:{settings.web_port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def events(user: str, items: list[str]) -> list[dict]:
    return [
        {"user_id": user, "item_id": item, "event_type": "view", "ts": TS + n}
        for n, item in enumerate(items)
    ]


def records_of(settings: Settings, topic: str, key: bytes) -> list:
    """``topic``'s records whose key is ``key`` (raw, or a JSON string), in offset order."""
    keys = {key, json.dumps(key.decode()).encode()}
    return sorted(
        (r for r in read_topic(settings.bootstrap_servers, topic) if r.key in keys),
        key=lambda r: r.offset,
    )


@pytest.fixture(scope="module")
def served(
    kafka_broker: local_kafka.Broker,
    synthetic_checkpoint: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, WorkerProcess]]:
    """One worker for the module (a start is the costly part), whose list lookup needs
    ``TOKEN``: started, with users u1 (3 events) and u2 (2 events) answered. The tests
    touch different users, in any order."""
    tmp = tmp_path_factory.mktemp("forget")
    settings = isolated_settings(kafka_broker, tmp).replace(
        checkpoint=str(synthetic_checkpoint), web_token=TOKEN
    )
    worker = WorkerProcess(settings, tmp / "worker.log")
    try:
        worker.start()
        send_events(settings, events("u1", ["1", "2", "3"]) + events("u2", ["4", "5"]), 0, False)
        worker.drain(5, timeout_s=60)
        yield settings, worker
    finally:
        kill_and_show_log(worker)


def test_the_list_lookup_needs_the_token_while_health_and_metrics_stay_open(served) -> None:
    settings, worker = served
    status, headers, _ = get(settings, "/recommendations/u2", token=None)
    assert (status, headers["WWW-Authenticate"]) == (401, 'Bearer realm="rtrank"')
    status, headers, _ = get(settings, "/recommendations/u2", token="guess")
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert get(settings, "/recommendations/u2")[0] == 200
    assert worker.healthy()  # /health, without a token
    assert "rtrank_events_total" in worker.metrics()  # /metrics, without a token


def test_a_forgotten_user_stays_gone_after_a_restart_and_a_recovery_from_the_changelog(
    served,
) -> None:
    settings, worker = served
    status, _, body = get(settings, "/recommendations/u1")
    assert status == 200 and body["items"]
    result = CliRunner().invoke(forget, ["u1"], obj=settings)
    assert result.exit_code == 0, result.output

    wait_for(lambda: get(settings, "/recommendations/u1")[0] == 404, timeout_s=30)
    assert get(settings, "/recommendations/u2")[0] == 200
    states = records_of(settings, changelog(settings, "user_to_history"), b"u1")
    assert states[0].value is not None and states[-1].value is None  # the tombstone last
    lists = records_of(settings, settings.recommendations_topic, b"u1")
    assert lists[0].value is not None and lists[-1].value is None
    examples = records_of(settings, settings.training_topic, b"u1")
    assert [r.value is None for r in examples] == [False, False, False, True]

    # In this process, to look into its buffer: no nice value or metrics port of its own.
    trainer = Trainer(settings.replace(trainer_metrics_port=0, trainer_nice=0))
    threads, stop = torch.get_num_threads(), threading.Event()
    thread = threading.Thread(target=trainer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        ends = end_offsets(settings, settings.training_topic)

        def held() -> set[str]:
            buffer = trainer.learner.buffer
            return {e.user_id for e in [*buffer.recent, *buffer.reservoir]}

        wait_for(
            lambda: (
                getattr(trainer, "offsets", None) is not None
                and all(trainer.offsets.get(p, 0) >= end for p, end in ends.items())
                and "u2" in held()  # stepped on: what it read joined the buffer
            ),
            timeout_s=60,
            message="the trainer did not learn from every training example",
        )
        assert held() == {"u2"}
    finally:
        stop.set()
        thread.join(timeout=30)
        torch.set_num_threads(threads)

    worker.stop()
    worker.start()
    assert get(settings, "/recommendations/u1")[0] == 404
    assert get(settings, "/recommendations/u2")[0] == 200

    # As a worker taking the partitions over: no local state, the whole changelog read.
    worker.stop()
    worker.settings = settings.replace(data_dir=settings.data_dir.parent / "new-owner")
    worker.start()
    assert get(settings, "/recommendations/u1")[0] == 404
    assert get(settings, "/recommendations/u2")[0] == 200

    send_events(settings, events("u1", ["9"]), 0, False)
    wait_for(lambda: get(settings, "/recommendations/u1")[0] == 200, timeout_s=30)
    latest = records_of(settings, changelog(settings, "user_to_history"), b"u1")[-1]
    assert json.loads(latest.value)["history"] == ["9"]  # a new history, nothing before
