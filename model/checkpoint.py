"""Checkpoints: one safetensors file, weights plus JSON metadata in its header.

The header's ``metadata`` (str -> str) holds ``format`` (= `FORMAT`), ``config`` (the
`SASRecConfig` as JSON), ``vocab`` (`Vocabulary.to_json`), ``vocab_version``, ``version``
(the model version), ``data_fingerprint`` (sha256 of the training data), ``created_at``
(UTC ISO-8601) and ``extra`` (free JSON object). Loading never unpickles: safetensors holds
raw tensors only, and anything that is not exactly one of our checkpoints raises
`CheckpointError`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.vocab import Vocabulary

FORMAT = "rtrank.sasrec.v1"


class CheckpointError(ValueError):
    """A file is not a loadable rtrank checkpoint (corrupt, truncated, foreign, mismatched)."""


@dataclass
class Checkpoint:
    model: SASRec
    vocab: Vocabulary
    version: int
    meta: dict[str, Any]  # decoded metadata: config, data_fingerprint, created_at, extra, ...


def save_checkpoint(
    path: str | os.PathLike[str],
    model: SASRec,
    vocab: Vocabulary,
    *,
    version: int,
    data_fingerprint: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """Writes ``model`` and ``vocab`` to ``path`` atomically (temp file + rename).

    Raises:
        ValueError: when the vocabulary does not match the model's embedding rows.
    """
    if len(vocab) != model.config.num_items:
        raise ValueError(f"vocabulary has {len(vocab)} rows but the model {model.config.num_items}")
    meta = {
        "format": FORMAT,
        "config": json.dumps(model.config.to_dict()),
        "vocab": vocab.to_json(),
        "vocab_version": str(vocab.version),
        "version": str(int(version)),
        "data_fingerprint": data_fingerprint,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "extra": json.dumps(extra or {}),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Checkpoint:
    """Loads a checkpoint written by `save_checkpoint` onto ``device`` (model in eval mode).

    Raises:
        CheckpointError: when the file is missing, not safetensors, truncated, lacks our
            metadata, or its tensors do not fit the configuration it declares.
    """
    try:
        with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
            raw = f.metadata() or {}
            if raw.get("format") != FORMAT:
                raise CheckpointError(f"{path}: not an rtrank checkpoint (no {FORMAT} metadata)")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open API
    except CheckpointError:
        raise
    except FileNotFoundError as e:
        raise CheckpointError(f"{path}: no such file") from e
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    try:
        cfg_dict = json.loads(raw["config"])
        config = SASRecConfig.from_dict(cfg_dict)
        vocab = Vocabulary.from_json(raw["vocab"], version=int(raw.get("vocab_version", "0")))
        version = int(raw["version"])
        extra = json.loads(raw.get("extra", "{}"))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: checkpoint metadata is malformed ({e})") from e
    if len(vocab) != config.num_items:
        raise CheckpointError(
            f"{path}: vocabulary has {len(vocab)} rows but the config {config.num_items}"
        )
    model = SASRec(config)
    expected = model.state_dict()
    if set(expected) != set(tensors):
        missing, unexpected = set(expected) - set(tensors), set(tensors) - set(expected)
        raise CheckpointError(
            f"{path}: tensors do not match the model (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})"
        )
    for name, t in tensors.items():
        if t.shape != expected[name].shape or t.dtype != expected[name].dtype:
            raise CheckpointError(
                f"{path}: tensor {name} is {tuple(t.shape)} {t.dtype}, "
                f"expected {tuple(expected[name].shape)} {expected[name].dtype}"
            )
    model.load_state_dict(tensors)
    model.to(device).eval()
    meta = {k: v for k, v in raw.items() if k not in ("config", "vocab", "extra")}
    meta.update(config=cfg_dict, extra=extra, version=version)
    return Checkpoint(model=model, vocab=vocab, version=version, meta=meta)
