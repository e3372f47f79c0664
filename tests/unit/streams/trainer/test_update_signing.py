"""Signed model updates: with a verifying key, only updates signed by the trainer's key for
this topic are assembled; without one, nothing is checked."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rtrank.model.online import Example, OnlineConfig, OnlineLearner
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.update_error import UpdateError
from rtrank.model.vocab import Vocabulary
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.model_updates import (
    MAGIC,
    Assembler,
    _complete_snapshots,
    parse_chunk,
    to_messages,
)
from rtrank.streams.trainer.update_signing import (
    KeyFileError,
    UpdateKeys,
    load_private_key,
    load_public_key,
    new_key_pair,
)

ITEMS = [f"item-{n}" for n in range(50)]
LIMIT = 16 * 1024


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    new_key_pair(tmp_path / "keys")
    return tmp_path / "keys"


def keys_of(key_dir: Path, topic: str = "model-updates") -> tuple[UpdateKeys, UpdateKeys]:
    """(the trainer's keys, a worker's keys) from ``key_dir``."""
    trainer = UpdateKeys(topic, signing=load_private_key(key_dir / "update-signing.key"))
    worker = UpdateKeys(topic, verifying=load_public_key(key_dir / "update-signing.pub"))
    return trainer, worker


@pytest.fixture
def learner() -> OnlineLearner:
    torch.manual_seed(0)
    vocab = Vocabulary(ITEMS)
    model = SASRec(SASRecConfig(num_items=len(vocab), max_len=8, dim=16, dropout=0.0))
    return OnlineLearner(model, vocab, 1, OnlineConfig())


def assemble(messages: list[tuple[bytes, bytes]], keys: UpdateKeys | None):
    assembler, done = Assembler(keys), []
    for _, value in messages:
        update = assembler.add(parse_chunk(value))
        if update is not None:
            done.append(update)
    return done


def with_header(value: bytes, **changes: object) -> bytes:
    """``value`` (a chunk) with its header fields changed (None: removed)."""
    n = int.from_bytes(value[4:8], "big")
    header = json.loads(value[8 : 8 + n])
    header.update(changes)
    header = {k: v for k, v in header.items() if v is not None}
    head = json.dumps(header).encode()
    return MAGIC + len(head).to_bytes(4, "big") + head + value[8 + n :]


def reason_of(messages, keys: UpdateKeys) -> str:
    with pytest.raises(UpdateError) as err:
        assemble(messages, keys)
    return err.value.reason


def test_an_update_signed_by_the_trainer_is_assembled_by_a_worker(key_dir, learner) -> None:
    trainer, worker = keys_of(key_dir)
    messages = to_messages(learner.publish(2, snapshot=True), LIMIT, trainer)
    assert len(messages) > 1
    [snapshot] = assemble(messages, worker)
    assert snapshot.version == 2


def test_a_signed_delta_is_assembled(key_dir, learner) -> None:
    trainer, worker = keys_of(key_dir)
    learner.step([Example(("item-1",), "item-2")])
    [delta] = assemble(to_messages(learner.publish(2, snapshot=False), LIMIT, trainer), worker)
    assert (delta.version, delta.base) == (2, 1)


def test_an_unsigned_update_is_rejected_as_unsigned(key_dir, learner) -> None:
    _, worker = keys_of(key_dir)
    assert reason_of(to_messages(learner.publish(2, snapshot=True), LIMIT), worker) == "unsigned"


def test_an_update_signed_by_another_key_is_rejected(key_dir, learner, tmp_path) -> None:
    new_key_pair(tmp_path / "other")
    forger, _ = keys_of(tmp_path / "other")
    _, worker = keys_of(key_dir)
    messages = to_messages(learner.publish(2, snapshot=True), LIMIT, forger)
    assert reason_of(messages, worker) == "bad_signature"


def test_an_update_replayed_from_another_topic_is_rejected(key_dir, learner) -> None:
    elsewhere, _ = keys_of(key_dir, topic="staging-model-updates")
    _, worker = keys_of(key_dir, topic="model-updates")
    messages = to_messages(learner.publish(2, snapshot=True), LIMIT, elsewhere)
    assert reason_of(messages, worker) == "bad_signature"


def test_a_signed_update_relabelled_with_another_version_is_rejected(key_dir, learner) -> None:
    trainer, worker = keys_of(key_dir)
    [(key, value)] = to_messages(learner.publish(2, snapshot=False), LIMIT, trainer)
    assert reason_of([(key, with_header(value, version=9))], worker) == "bad_signature"


def test_a_signature_that_is_not_base64_is_a_bad_signature(key_dir, learner) -> None:
    trainer, worker = keys_of(key_dir)
    [(key, value)] = to_messages(learner.publish(2, snapshot=False), LIMIT, trainer)
    assert reason_of([(key, with_header(value, sig="not base64!"))], worker) == "bad_signature"


def test_without_a_verifying_key_an_unsigned_update_is_assembled(learner) -> None:
    [snapshot] = assemble(to_messages(learner.publish(2, snapshot=True), LIMIT), None)
    assert snapshot.version == 2


def test_a_signing_key_alone_verifies_with_its_public_half(key_dir) -> None:
    settings = Settings(update_signing_key_file=str(key_dir / "update-signing.key"))
    keys = UpdateKeys.from_settings(settings)
    keys.verify(["x"], keys.sign(["x"]), "record")
    with pytest.raises(UpdateError):
        keys.verify(["y"], keys.sign(["x"]), "record")


def test_keys_are_read_from_their_settings(key_dir) -> None:
    settings = Settings(update_verify_key_file=str(key_dir / "update-signing.pub"))
    keys = UpdateKeys.from_settings(settings)
    assert (keys.signing, keys.topic) == (None, "model-updates")
    assert keys.verifying is not None


def test_no_key_settings_mean_no_keys() -> None:
    keys = UpdateKeys.from_settings(Settings())
    assert (keys.signing, keys.verifying, keys.sign(["x"])) == (None, None, None)


def test_a_missing_key_file_is_one_line_naming_its_variable_and_path(tmp_path) -> None:
    with pytest.raises(KeyFileError, match="RTRANK_UPDATE_VERIFY_KEY_FILE: .*nope.pub") as err:
        UpdateKeys.from_settings(Settings(update_verify_key_file=str(tmp_path / "nope.pub")))
    assert "\n" not in str(err.value)


def test_a_public_key_given_as_the_private_key_is_refused(key_dir) -> None:
    with pytest.raises(KeyFileError, match="not an unencrypted PEM private key"):
        load_private_key(key_dir / "update-signing.pub")


def test_a_new_key_pair_is_private_to_its_owner_and_never_overwritten(tmp_path) -> None:
    private_path, public_path = new_key_pair(tmp_path)
    assert private_path.stat().st_mode & 0o777 == 0o600
    before = private_path.read_bytes()
    with pytest.raises(FileExistsError):
        new_key_pair(tmp_path)
    assert private_path.read_bytes() == before and public_path.exists()


def test_a_forged_snapshot_after_the_real_one_is_not_taken_for_the_latest(
    key_dir, learner, tmp_path
) -> None:
    trainer, worker = keys_of(key_dir)
    new_key_pair(tmp_path / "forger")
    forger, _ = keys_of(tmp_path / "forger")
    real = to_messages(learner.publish(2, snapshot=True), LIMIT, trainer)
    forged = to_messages(learner.publish(3, snapshot=True), LIMIT, forger)
    records = [
        SimpleNamespace(offset=n, value=value) for n, (_, value) in enumerate([*real, *forged])
    ]
    assert _complete_snapshots(records, worker) == [(2, 0)]
    assert sorted(_complete_snapshots(records, None)) == [(2, 0), (3, len(real))]
