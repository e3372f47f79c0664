"""Signed model updates and rollback against a real broker: an update reader holding the
public key (a worker's) takes the trainer's signed versions and rejects forged ones; `rtrank
rollback --to V` makes the worker serve V's weights and the trainer continue from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from kafka import KafkaProducer

from rtrank.model.checkpoint import load_checkpoint
from rtrank.model.online import Example, OnlineConfig, OnlineLearner
from rtrank.streams.bench.worker_metrics import metric_value
from rtrank.streams.bench.worker_process import TrainerProcess
from rtrank.streams.cli.rollback import rollback
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.model_updates import to_messages
from rtrank.streams.trainer.rollback import find_version
from rtrank.streams.trainer.update_feed import UpdateFeed
from rtrank.streams.trainer.update_signing import UpdateKeys, load_private_key, new_key_pair
from tests.integration.conftest import kill_and_show_log, wait_for
from tests.integration.test_online import (
    complete_versions,
    newest_version,
    rejections,
    send_examples,
)

EXAMPLES = [Example((f"item-{n % 50}",), f"item-{(n + 1) % 50}") for n in range(300)]


@pytest.fixture
def signed(settings: Settings, synthetic_checkpoint: Path, tmp_path: Path) -> Settings:
    """Trainer and worker share these settings: the trainer signs with the private key, the
    worker verifies with the public one; versions every 0.3 s, none trimmed meanwhile."""
    new_key_pair(tmp_path / "keys")
    return settings.replace(
        checkpoint=str(synthetic_checkpoint),
        trainer_publish_s=0.3,
        snapshot_every=50,
        trainer_metrics_port=0,
        update_signing_key_file=str(tmp_path / "keys" / "update-signing.key"),
        update_verify_key_file=str(tmp_path / "keys" / "update-signing.pub"),
    )


@pytest.fixture
def trainer(signed: Settings, tmp_path: Path):
    proc = TrainerProcess(signed, tmp_path / "trainer.log", checkpoint=signed.checkpoint)
    try:
        yield proc
    finally:
        kill_and_show_log(proc)


def served_version(worker) -> int:
    return int(metric_value(worker.metrics(), "rtrank_model_version"))


def test_a_reader_with_the_public_key_applies_signed_versions_and_rejects_forged_ones(
    signed, trainer, tmp_path
) -> None:
    trainer.start()  # publishes its base snapshot, signed
    trainer.stop()
    base = newest_version(signed)
    new_key_pair(tmp_path / "forger")
    forger = UpdateKeys(
        signed.model_updates_topic, load_private_key(tmp_path / "forger" / "update-signing.key")
    )
    ckpt = load_checkpoint(signed.checkpoint)
    torch.manual_seed(0)
    stray = OnlineLearner(ckpt.model, ckpt.vocab, version=base, config=OnlineConfig())
    stray.step(EXAMPLES[:50])
    forged = to_messages(stray.publish(base + 100, snapshot=True), signed.update_max_bytes, forger)
    unsigned = to_messages(stray.publish(base + 101, snapshot=True), signed.update_max_bytes)
    producer = KafkaProducer(bootstrap_servers=signed.bootstrap_servers, acks="all")
    for key, value in [*forged, *unsigned]:
        producer.send(signed.model_updates_topic, key=key, value=value, partition=0)
    producer.flush()
    producer.close()

    rejected: list[str] = []
    feed = UpdateFeed(signed, lambda reason, detail: rejected.append(reason))
    feed.start()  # as a worker's model process reads model-updates
    try:
        assert feed.caught_up.wait(60), "the feed did not catch up"
        wait_for(lambda: len(rejected) == 2, timeout_s=30, message=f"rejected only {rejected}")
        applied = feed.drain()
    finally:
        feed.stop()
    assert sorted(rejected) == ["bad_signature", "unsigned"]
    assert [u.version for u in applied] == [base]


def test_rollback_makes_the_worker_serve_the_old_weights_and_the_trainer_continue(
    signed, worker, trainer
) -> None:
    keys = UpdateKeys.from_settings(signed)
    trainer.start()
    worker.settings = signed
    worker.start()
    target = newest_version(signed)  # the base snapshot
    for learned in (1, 2):  # a version after each batch: V's weights differ from the latest
        send_examples(signed, EXAMPLES)
        wait_for(
            lambda n=learned: newest_version(signed) >= target + n,
            message="the trainer did not learn",
        )
    old = find_version(signed, keys, None, target)

    result = CliRunner().invoke(rollback, ["--to", str(target)], obj=signed)
    assert result.exit_code == 0, result.output
    said = re.fullmatch(
        r"version (\d+) carries version (\d+)'s weights; workers serve it\n", result.output
    )
    assert said is not None and int(said.group(2)) == target, result.output
    carrier = int(said.group(1))
    wait_for(lambda: served_version(worker) == carrier, timeout_s=30, message="not served")
    now = find_version(signed, keys, None, carrier)
    assert now.meta["rollback_to"] == target
    assert now.items[: len(old.items)] == old.items
    rows = len(old.items) + 1  # items the buffer names that V lacked get rows after them
    assert all(torch.equal(now.state[n][:rows], t[:rows]) for n, t in old.state.items())

    send_examples(signed, EXAMPLES)
    wait_for(
        lambda: any(h.get("base") == carrier for h in complete_versions(signed)),
        message="the trainer published no delta on the rolled-back version",
    )
    assert rejections(worker) == {}


def test_rollback_to_a_version_never_published_ends_with_one_line(signed, trainer) -> None:
    trainer.start()
    result = CliRunner().invoke(rollback, ["--to", "100000", "--wait-s", "30"], obj=signed)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: rollback refused: version 100000 is not published (the latest is "
        f"{newest_version(signed)})"
    ]
