"""Checkpoints: exact round trip; anything else is a CheckpointError, never an unpickle."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from rtrank.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.serving import pad_batch

FINGERPRINT = "ab" * 32


@pytest.fixture
def saved(tmp_path, tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, vocab, version=7, data_fingerprint=FINGERPRINT, extra={"epoch": 3})
    return path, model, vocab


def test_round_trip_restores_identical_weights_vocab_and_metadata(saved):
    path, model, vocab = saved
    ckpt = load_checkpoint(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(ckpt.model.state_dict()[name], tensor), name
    assert ckpt.vocab == vocab
    assert ckpt.version == 7
    assert ckpt.meta["data_fingerprint"] == FINGERPRINT
    assert ckpt.meta["extra"] == {"epoch": 3}
    assert ckpt.meta["config"]["num_items"] == 31
    assert "created_at" in ckpt.meta


def test_round_trip_gives_identical_recommendations(saved):
    path, model, _ = saved
    loaded = load_checkpoint(path).model
    seqs = pad_batch([[1, 2, 3], [4]], 10)
    assert torch.equal(loaded.encode(seqs), model.encode(seqs))


def test_save_refuses_a_vocabulary_of_another_size(tmp_path, tiny_model, tiny_vocab):
    with pytest.raises(ValueError, match="rows"):
        save_checkpoint(
            tmp_path / "m", tiny_model(30), tiny_vocab(5), version=1, data_fingerprint=""
        )


def test_truncated_file_is_rejected(saved):
    path, _, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_corrupt_header_is_rejected(saved):
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    data[8:20] = b"\x00" * 12
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_random_bytes_are_rejected(write_file):
    with pytest.raises(CheckpointError):
        load_checkpoint(write_file("x.safetensors", bytes(range(256)) * 10))


def test_pickle_file_is_rejected_without_unpickling(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_safetensors_without_our_metadata_is_rejected(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, path, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not an rtrank checkpoint"):
        load_checkpoint(path)


def test_tensor_shape_mismatch_is_rejected(saved, tmp_path):
    path, model, vocab = saved
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    tensors["pos_emb.weight"] = torch.zeros(3, 16)
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, bad, metadata=meta)
    with pytest.raises(CheckpointError, match="pos_emb.weight"):
        load_checkpoint(bad)


def test_malformed_metadata_is_rejected(saved, tmp_path):
    path, _, _ = saved
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta["config"] = json.dumps({"dim": "wide"})
    bad = tmp_path / "bad.safetensors"
    save_file(tensors, bad, metadata=meta)
    with pytest.raises(CheckpointError, match="metadata"):
        load_checkpoint(bad)


def test_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_a_checkpoint_written_before_positions_existed_loads_and_serves_as_written(saved, tmp_path):
    path, _, _ = saved
    model = load_checkpoint(path).model
    legacy = SASRec(SASRecConfig(**{**model.config.to_dict(), "positions": "from_end"}))
    legacy.load_state_dict(model.state_dict())
    old = tmp_path / "old.safetensors"
    with safe_open(os.fspath(path), framework="pt") as f:
        meta = f.metadata()
    config = json.loads(meta["config"])
    del config["positions"]
    tensors = {k: v.contiguous() for k, v in legacy.state_dict().items()}
    save_file(tensors, old, metadata={**meta, "config": json.dumps(config)})
    loaded = load_checkpoint(old).model
    assert loaded.config.positions == "from_end"
    seqs = torch.tensor([[0, 1, 2, 3]])
    torch.testing.assert_close(loaded.encode(seqs), legacy.eval().encode(seqs))
