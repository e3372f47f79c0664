"""What ``rtrank bench index`` measures: the exact scan, the exact scan through a bfloat16
shortlist (where the machine runs bfloat16 natively, as the worker then does by default:
`rtrank.model.serving.resolve_shortlist`) and the IVF index (`IvfIndex`) over one
catalogue, side by side: users/s, memory, build time and recall@10 against the exact top-10.

The synthetic catalogue has the structure trained item rows have and random ones lack:
items gather around topics (a trained table's neighbourhoods of similar items), their norms
spread (popular items score higher for everyone), and a user's vector leans towards the
topics they read. A table of independent random rows has no neighbourhoods for any index
to find (every row nearly as close as any other), so `random_rows` is measured beside it as
the worst case, never as the expected one.

`data_users` measures the real case instead: a trained checkpoint's rows and the vectors it
encodes for a data set's users, their seen items excluded from both top-10s, as served.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rtrank.model.item_ann import IvfConfig, IvfIndex
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.serving import ItemIndex, encode_histories, resolve_shortlist
from rtrank.model.vocab import Vocabulary

ITEMS_PER_TOPIC = 200
UPDATE_ROWS = 1_000  # rows an online delta moves: about a second of the trainer's steps
TOPIC_SPREAD = 0.6  # an item's distance from its topic, relative to topics' distance apart
NORM_SPREAD = 0.25  # log-normal spread of item norms (popularity)


def topic_rows(num_items: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(items (num_items + 1, dim) with row 0 padding, topic centres (T, dim))."""
    rng = np.random.default_rng(seed)
    topics = max(2, num_items // ITEMS_PER_TOPIC)
    centres = rng.standard_normal((topics, dim), dtype=np.float32) / dim**0.5
    rows = np.zeros((num_items + 1, dim), dtype=np.float32)
    of = rng.integers(0, topics, num_items)
    noise = rng.standard_normal((num_items, dim), dtype=np.float32) * (TOPIC_SPREAD / dim**0.5)
    norms = np.exp(NORM_SPREAD * rng.standard_normal((num_items, 1))).astype(np.float32)
    rows[1:] = (centres[of] + noise) * norms
    return torch.from_numpy(rows), torch.from_numpy(centres)


def random_rows(num_items: int, dim: int, seed: int = 0) -> torch.Tensor:
    """Independent Gaussian rows (num_items + 1, dim), row 0 padding: the worst case."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(num_items + 1, dim, generator=gen) / dim**0.5
    rows[0] = 0
    return rows


def topic_users(centres: torch.Tensor, users: int, seed: int = 1) -> torch.Tensor:
    """User vectors (users, dim): a mix of two topics each, plus their own taste."""
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, centres.shape[0], (users, 2), generator=gen)
    weight = torch.rand(users, 1, generator=gen)
    mix = weight * centres[picks[:, 0]] + (1 - weight) * centres[picks[:, 1]]
    own = torch.randn(users, centres.shape[1], generator=gen) / centres.shape[1] ** 0.5
    return mix + 0.5 * own


def data_users(
    model: SASRec,
    vocab: Vocabulary,
    sequences: Mapping[str, Sequence[str]],
    users: int,
    seed: int = 0,
) -> tuple[torch.Tensor, list[list[int]]]:
    """(user vectors (B, dim), seen rows per user) for up to ``users`` users of ``sequences``
    drawn at random (``seed``) among those with an item ``vocab`` knows: each vector is
    ``model``'s encoding of the user's last ``max_len`` known items, and every known item of
    the user is seen (the worker's seen window holds 500, more than a Games user reads)."""
    known = [rows for rows in (vocab.rows(items) for items in sequences.values()) if rows]
    picks = np.random.default_rng(seed).permutation(len(known))[:users]
    histories = [known[n] for n in sorted(picks)]
    vectors = encode_histories(model, [h[-model.config.max_len :] for h in histories])
    return vectors, [sorted(set(h)) for h in histories]


def model_with_rows(rows: torch.Tensor) -> SASRec:
    """A SASRec whose item table is ``rows`` (the index reads nothing else)."""
    model = SASRec(SASRecConfig(num_items=2, dim=rows.shape[1], num_heads=1)).eval()
    model.item_emb = torch.nn.Embedding.from_pretrained(rows, freeze=True, padding_idx=0)
    return model


def recall(found: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean share of each user's ``truth`` rows (B, k) among their ``found`` rows."""
    hits = [
        len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist(), strict=True)
    ]
    return float(np.mean(hits)) if hits else 0.0


@dataclass
class IndexFigures:
    index: str  # exact | ivf lists/probe
    build_s: float
    users_per_s: float
    index_mb: float  # memory beyond the model's own item table
    recall_at_10: float
    update_ms: float  # following an update of `UPDATE_ROWS` rows (exact: a new table copy)


def measure(
    model: SASRec,
    users: torch.Tensor,
    config: IvfConfig,
    batch: int = 256,
    k: int = 10,
    exclude: list[list[int]] | None = None,
) -> list[IndexFigures]:
    """The exact scan, its bfloat16 shortlist (where native) and the IVF index over
    ``model``'s rows for ``users``, one row each; recall of each against the exact scan's
    top-``k`` (the exact scan's own is 1). Each user's ``exclude`` rows (their seen items)
    are left out of all."""
    out = []
    start = time.perf_counter()
    exact = ItemIndex(model, shortlist=False)
    built = time.perf_counter() - start
    truth, rate = top_rows(exact, users, batch, k, exclude)
    out.append(IndexFigures("exact", built, rate, _mb(exact.matrix), 1.0, built * 1e3))
    if resolve_shortlist("auto", model.device):
        start = time.perf_counter()
        short = ItemIndex(model, shortlist=True)
        short.warm_up(batch)
        built = time.perf_counter() - start
        found, rate = top_rows(short, users, batch, k, exclude)
        size = _mb(short.matrix) + _mb(short.short)
        out.append(IndexFigures("shortlist", built, rate, size, recall(found, truth), built * 1e3))
    start = time.perf_counter()
    ivf = IvfIndex(model, config)
    built = time.perf_counter() - start
    found, rate = top_rows(ivf, users, batch, k, exclude)
    size = ivf.index.ntotal * (ivf.index.code_size + 8) + ivf.lists * ivf.index.d * 4
    name = f"ivf {ivf.lists}/{ivf.index.nprobe}"
    moved = torch.randperm(model.item_emb.weight.shape[0] - 1)[:UPDATE_ROWS] + 1
    start = time.perf_counter()
    ivf.follow(model, moved)
    update_ms = (time.perf_counter() - start) * 1e3
    out.append(IndexFigures(name, built, rate, size / 2**20, recall(found, truth), update_ms))
    return out


def top_rows(
    index, users: torch.Tensor, batch: int, k: int, exclude: list[list[int]] | None = None
) -> tuple[torch.Tensor, float]:
    """(each user's top-``k`` rows (B, k), users/s) from ``index`` in calls of ``batch``
    users, each user's ``exclude`` rows left out."""
    rows = []
    start = time.perf_counter()
    for at in range(0, len(users), batch):
        seen = exclude[at : at + batch] if exclude else None
        rows.append(index.top_k(users[at : at + batch], k, seen)[1])
    return torch.cat(rows), len(users) / (time.perf_counter() - start)


def _mb(t: torch.Tensor) -> float:
    return t.numel() * t.element_size() / 2**20
