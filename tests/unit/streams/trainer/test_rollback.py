"""Rollback without a broker: the trainer's snapshot archive, the learner that continues
from an earlier version, and rollback requests as records."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rtrank.model.online import Example, OnlineConfig, OnlineLearner
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.update_error import UpdateError
from rtrank.model.vocab import Vocabulary
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.model_updates import is_control
from rtrank.streams.trainer.rollback import (
    find_version,
    parse_control,
    request_record,
    rolled_back,
    verify_request,
)
from rtrank.streams.trainer.snapshot_archive import SnapshotArchive
from rtrank.streams.trainer.update_signing import UpdateKeys, load_private_key, new_key_pair

ITEMS = [f"item-{n}" for n in range(40)]


@pytest.fixture
def learner() -> OnlineLearner:
    torch.manual_seed(0)
    vocab = Vocabulary(ITEMS)
    model = SASRec(SASRecConfig(num_items=len(vocab), max_len=8, dim=16, dropout=0.0))
    return OnlineLearner(model, vocab, 1, OnlineConfig())


def trained(learner: OnlineLearner, new_item: str = "") -> None:
    learner.step([Example((f"item-{i}",), new_item or f"item-{i + 1}") for i in range(20)])


def test_the_archive_keeps_the_newest_snapshots(learner, tmp_path) -> None:
    archive = SnapshotArchive(tmp_path / "archive", keep=2)
    for version in (2, 3, 4):
        trained(learner)
        archive.save(learner.publish(version, snapshot=True))
    assert archive.versions() == [3, 4]
    assert archive.load(2) is None
    kept = archive.load(4)
    assert kept.version == 4
    assert torch.equal(kept.state["item_emb.weight"], learner.model.item_emb.weight.detach())


def test_an_unreadable_archived_snapshot_is_not_loaded(tmp_path) -> None:
    archive = SnapshotArchive(tmp_path, keep=2)
    (tmp_path / "v5.safetensors").write_bytes(b"not a snapshot")
    assert archive.versions() == [5]
    assert archive.load(5) is None


def test_a_version_the_archive_kept_is_found_there(learner, tmp_path) -> None:
    archive = SnapshotArchive(tmp_path, keep=3)
    archive.save(learner.publish(2, snapshot=True))
    settings = Settings(broker="kafka://127.0.0.1:9")  # never asked: the archive has it
    found = find_version(settings, UpdateKeys("model-updates"), archive, 2)
    assert found.version == 2


def test_a_rolled_back_learner_has_the_old_weights_and_publishes_after_the_latest(
    learner,
) -> None:
    old = learner.publish(2, snapshot=True)
    trained(learner, new_item="item-new")
    learner.publish(3, snapshot=False)
    back = rolled_back(learner, old, OnlineConfig())
    assert back.version == 3
    assert back.buffer is learner.buffer
    assert "item-new" in back.vocab  # the buffer still names it: a new row, as in a stream
    rows = len(old.items) + 1
    assert torch.equal(back.model.item_emb.weight[:rows], old.state["item_emb.weight"])
    snapshot = back.publish(4, snapshot=True)
    assert snapshot.version == 4


def test_a_rollback_request_is_a_control_record(tmp_path) -> None:
    value = request_record("r1", 7, UpdateKeys("model-updates"))
    assert is_control(value)
    body = parse_control(value)
    assert (body["type"], body["id"], body["to"]) == ("rollback", "r1", 7)


@pytest.mark.parametrize("value", [b"RTCT{", b"RTCT[]", b'RTCT{"id": "x", "to": "7"}', b"RTMU..."])
def test_a_malformed_control_record_is_none(value: bytes) -> None:
    assert parse_control(value) is None


def test_a_signed_rollback_request_verifies_and_an_unsigned_one_does_not(tmp_path) -> None:
    new_key_pair(tmp_path)
    key = load_private_key(tmp_path / "update-signing.key")
    keys = UpdateKeys("model-updates", signing=key, verifying=key.public_key())
    verify_request(parse_control(request_record("r1", 7, keys)), keys)
    unsigned = parse_control(request_record("r1", 7, UpdateKeys("model-updates")))
    with pytest.raises(UpdateError) as err:
        verify_request(unsigned, keys)
    assert err.value.reason == "unsigned"
    tampered = {**parse_control(request_record("r1", 7, keys)), "to": 1}
    with pytest.raises(UpdateError) as err:
        verify_request(tampered, keys)
    assert err.value.reason == "bad_signature"


def test_an_archive_directory_that_does_not_exist_holds_nothing(tmp_path: Path) -> None:
    assert SnapshotArchive(tmp_path / "none", keep=1).versions() == []
