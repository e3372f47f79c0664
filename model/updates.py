"""Model updates as the model sees them: what a version carries, and how it is applied.

A `Delta` takes version ``base`` to ``version`` (dense parameters whole if trained, the rows
that changed, new vocabulary entries); a `Snapshot` is a whole model plus the trainer's
bookkeeping. `apply_update` is the one rule set that workers and a resuming trainer share:
a snapshot at or after the served version replaces it, a delta must apply to exactly the
served version, an update holding NaN or infinity is refused whole, and a rejected update
leaves the model as it was. Bytes are safetensors
with JSON metadata (`encode_update` / `decode_update`), never pickle.

No Kafka here: chunks, checksums and the topic are `rtrank.streams.trainer.model_updates`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.update_error import UpdateError
from rtrank.model.vocab import Vocabulary

EMB = "item_emb.weight"
UPDATE_FORMAT = "rtrank.update.v1"


@dataclass
class Delta:
    """What changed from version ``base`` to ``version``.

    ``new_items`` are appended to the vocabulary (first one at row ``vocab_len_before``);
    ``reused`` are rows a capped trainer gave to new items, (row, item id) each, the ids
    they held forgotten (`rtrank.model.vocab.Vocabulary.reassign`), applied before the
    appended ones; their new values are among ``rows``;
    ``rows``/``row_values`` are the embedding rows that changed (new rows included);
    ``dense`` is every other parameter, whole; or nothing, from a trainer that leaves them
    untrained (`rtrank.model.online.OnlineConfig.dense_lr` 0), and then the served ones stay.
    """

    version: int
    base: int
    vocab_len_before: int
    new_items: list[str]
    dense: dict[str, torch.Tensor]
    rows: torch.Tensor  # (R,) int64
    row_values: torch.Tensor  # (R, D)
    meta: dict[str, Any] = field(default_factory=dict)  # trainer bookkeeping (offsets, lags)
    reused: list[tuple[int, str]] = field(default_factory=list)  # (row, new item id)


@dataclass
class Snapshot:
    """A whole model: enough to serve, and for a trainer to resume (``meta``: offsets)."""

    version: int
    config: dict[str, Any]
    items: list[str]  # vocabulary in row order, row 1 first
    vocab_version: int
    state: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)


Update = Delta | Snapshot


def make_snapshot(
    model: SASRec, vocab: Vocabulary, version: int, meta: dict[str, Any] | None = None
) -> Snapshot:
    return Snapshot(
        version=version,
        config=model.config.to_dict(),
        items=vocab.items(),
        vocab_version=vocab.version,
        state={n: t.detach().cpu().clone() for n, t in model.state_dict().items()},
        meta=dict(meta or {}),
    )


def apply_update(
    model: SASRec | None,
    vocab: Vocabulary | None,
    version: int,
    update: Update,
    device: torch.device | str = "cpu",
) -> tuple[SASRec, Vocabulary, int]:
    """The served (model, vocabulary, version) after ``update``.

    A snapshot at or after ``version`` replaces the model (the trainer's state is the truth);
    a delta must apply to exactly ``version``. Deltas change ``model``/``vocab`` in place.

    Raises:
        UpdateError: ``non_finite`` (a NaN or an infinity anywhere in it), ``stale`` (older
            than what is served), ``out_of_order`` (a delta for another base) or
            ``incompatible``; the model is then unchanged.
    """
    check_finite(update)
    if isinstance(update, Snapshot):
        if update.version < version:
            raise UpdateError("stale", f"snapshot {update.version} is older than {version}")
        new_model, new_vocab = model_from_snapshot(update, device)
        return new_model, new_vocab, update.version
    if update.version <= version:
        raise UpdateError("stale", f"delta {update.version} is not newer than {version}")
    if model is None or vocab is None:
        raise UpdateError("out_of_order", f"delta {update.version} before any snapshot")
    apply_delta(model, vocab, version, update)
    return model, vocab, update.version


def check_finite(update: Update) -> None:
    """Raises: UpdateError ``non_finite`` when a floating-point tensor of ``update`` holds a
    NaN or an infinity (one would spread to every score that reads it)."""
    if isinstance(update, Snapshot):
        kind, tensors = "snapshot", dict(update.state)
    else:
        kind, tensors = "delta", {**update.dense, "row_values": update.row_values}
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UpdateError("non_finite", f"{kind} {update.version}: {name} holds NaN or inf")


def model_from_snapshot(
    snap: Snapshot, device: torch.device | str = "cpu"
) -> tuple[SASRec, Vocabulary]:
    """A new model and vocabulary from ``snap``.

    Raises:
        UpdateError: ``incompatible`` when the tensors do not fit the declared config.
    """
    try:
        config = SASRecConfig.from_dict(snap.config)
        vocab = Vocabulary(snap.items, version=snap.vocab_version)
        model = SASRec(config)
        if len(vocab) != config.num_items:
            raise ValueError(f"{len(vocab)} vocabulary rows for {config.num_items} embedding rows")
        model.load_state_dict(snap.state)
    except (TypeError, ValueError, RuntimeError) as e:
        raise UpdateError("incompatible", f"snapshot {snap.version}: {e}") from e
    return model.to(device).eval(), vocab


@torch.no_grad()
def apply_delta(model: SASRec, vocab: Vocabulary, version: int, delta: Delta) -> None:
    """Applies ``delta`` in place; on any error nothing is changed.

    Raises:
        UpdateError: ``out_of_order`` when ``delta.base != version``; ``incompatible`` when
            vocabulary or shapes do not fit.
    """
    if delta.base != version:
        raise UpdateError(
            "out_of_order", f"delta {delta.version} applies to {delta.base}, serving {version}"
        )
    if delta.vocab_len_before != len(vocab):
        raise UpdateError(
            "incompatible",
            f"delta {delta.version} expects {delta.vocab_len_before} vocabulary rows, have "
            f"{len(vocab)}",
        )
    state = model.state_dict()
    if delta.dense and set(delta.dense) != set(state) - {EMB}:
        raise UpdateError("incompatible", f"delta {delta.version}: parameter names differ")
    for name, t in delta.dense.items():
        if t.shape != state[name].shape or t.dtype != state[name].dtype:
            raise UpdateError("incompatible", f"delta {delta.version}: {name} is {tuple(t.shape)}")
    new_len = len(vocab) + len(delta.new_items)
    D = model.config.dim
    if delta.row_values.shape != (len(delta.rows), D) or (
        len(delta.rows) and (int(delta.rows.min()) < 1 or int(delta.rows.max()) >= new_len)
    ):
        raise UpdateError("incompatible", f"delta {delta.version}: embedding rows do not fit")
    if not _fits(vocab, delta):
        raise UpdateError("incompatible", f"delta {delta.version}: bad vocabulary entries")
    vocab.reassign(dict(delta.reused))
    for item in delta.new_items:
        vocab.add(item)
    model.grow(new_len)
    device = model.device
    for name, t in delta.dense.items():
        state[name].copy_(t.to(device))
    model.item_emb.weight[delta.rows.to(device)] = delta.row_values.to(device)


def _fits(vocab: Vocabulary, delta: Delta) -> bool:
    """True when ``delta``'s reused rows are distinct item rows of ``vocab`` and the ids
    afterwards (reused and appended) are distinct non-empty strings."""
    items = vocab.items()
    rows = [row for row, _ in delta.reused]
    if len(set(rows)) != len(rows) or not all(0 < row < len(vocab) for row in rows):
        return False
    for row, item in delta.reused:
        items[row - 1] = item
    after = items + list(delta.new_items)
    return all(isinstance(i, str) and i for i in after) and len(set(after)) == len(after)


# --- bytes: safetensors + JSON metadata (never pickle) ----------------------------------


def encode_update(update: Update) -> bytes:
    """safetensors bytes; everything that is not a tensor is JSON in the metadata."""
    if isinstance(update, Snapshot):
        tensors = {f"state/{n}": t.contiguous() for n, t in update.state.items()}
        head = {
            "kind": "snapshot",
            "version": update.version,
            "config": update.config,
            "items": update.items,
            "vocab_version": update.vocab_version,
            "meta": update.meta,
        }
    else:
        tensors = {f"dense/{n}": t.contiguous() for n, t in update.dense.items()}
        tensors["rows"] = update.rows.contiguous()
        tensors["row_values"] = update.row_values.contiguous()
        head = {
            "kind": "delta",
            "version": update.version,
            "base": update.base,
            "vocab_len_before": update.vocab_len_before,
            "new_items": update.new_items,
            "meta": update.meta,
        }
        if update.reused:  # a delta of an uncapped vocabulary reads as before
            head["reused"] = update.reused
    tensors = {k: v.detach().cpu() for k, v in tensors.items()}
    return st_save(tensors, metadata={"format": UPDATE_FORMAT, "head": json.dumps(head)})


def decode_update(data: bytes) -> Update:
    """The inverse of `encode_update`.

    Raises:
        UpdateError: ``corrupt`` for anything that is not one of our updates.
    """
    try:
        meta = _safetensors_metadata(data)
        if meta.get("format") != UPDATE_FORMAT:
            raise ValueError("not an rtrank update")
        head = json.loads(meta["head"])
        tensors = st_load(data)
        if head["kind"] == "snapshot":
            state = {k[len("state/") :]: v for k, v in tensors.items() if k.startswith("state/")}
            return Snapshot(
                version=int(head["version"]),
                config=dict(head["config"]),
                items=list(head["items"]),
                vocab_version=int(head["vocab_version"]),
                state=state,
                meta=dict(head.get("meta", {})),
            )
        if head["kind"] == "delta":
            dense = {k[len("dense/") :]: v for k, v in tensors.items() if k.startswith("dense/")}
            return Delta(
                version=int(head["version"]),
                base=int(head["base"]),
                vocab_len_before=int(head["vocab_len_before"]),
                new_items=list(head["new_items"]),
                dense=dense,
                rows=tensors["rows"].long(),
                row_values=tensors["row_values"],
                meta=dict(head.get("meta", {})),
                reused=_row_items(head.get("reused", [])),
            )
        raise ValueError(f"unknown kind {head['kind']!r}")
    except UpdateError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError, SafetensorError) as e:
        raise UpdateError("corrupt", f"undecodable update ({e})") from e


def _row_items(pairs: Any) -> list[tuple[int, str]]:
    """``[[row, item id], ...]`` as (int, str) pairs; ValueError for anything else."""
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and type(p[0]) is int and isinstance(p[1], str)
        for p in pairs
    ):
        raise ValueError("reused must be a list of [row, item id]")
    return [(row, item) for row, item in pairs]


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes (8-byte little-endian header length)."""
    if len(data) < 8:
        raise ValueError("too short")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError("header longer than the data")
    header = json.loads(data[8 : 8 + n])
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return dict(header.get("__metadata__") or {})
