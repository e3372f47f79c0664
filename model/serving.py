"""The small helpers a scorer needs around `SASRec.encode` / `SASRec.top_k`.

Typical use from the stream (one micro-batch)::

    device = resolve_device("auto")
    ckpt = load_checkpoint(path, device)
    seqs = pad_batch([ckpt.vocab.rows(h) for h in histories], ckpt.model.config.max_len)
    scores, rows = ckpt.model.top_k(ckpt.model.encode(seqs), 10, exclude=seen_rows)
    items = [[ckpt.vocab.item(r) for r in rr] for rr in rows.tolist()]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def resolve_device(name: str = "auto") -> torch.device:
    """Turns ``auto``/``cpu``/``cuda``/``cuda:N`` into a device; ``auto`` prefers CUDA.

    Raises:
        ValueError: for an unknown name, or a CUDA device when CUDA is not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA devices")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}: use auto, cpu, cuda or cuda:N")
    return device


def pad_batch(
    rows_lists: Sequence[Sequence[int]],
    max_len: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Builds a left-padded (B, W) LongTensor from per-user row lists (oldest first).

    Each list keeps its latest ``max_len`` rows; W is the longest kept length (at least 1),
    so narrow batches stay cheap. Row 0 pads on the left.
    """
    kept = [list(r)[-max_len:] if max_len > 0 else [] for r in rows_lists]
    width = max([len(r) for r in kept] + [1])
    out = np.zeros((len(kept), width), dtype=np.int64)  # numpy: no tensor per row
    for i, r in enumerate(kept):
        if r:
            out[i, width - len(r) :] = r
    seqs = torch.from_numpy(out)
    return seqs if device is None else seqs.to(device)
