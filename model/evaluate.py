"""Ranking metrics and the two evaluation protocols.

Protocols (leave-one-out, see `rtrank.model.data.leave_one_out`):

- ``sampled100``: the held-out item is ranked among 100 items drawn uniformly, without
  replacement, from the items the user never interacted with (fixed seed) — the SASRec
  paper's protocol. Every user with a held-out item is evaluated (the paper's code
  evaluates a random 10,000 when there are more).
- ``full``: the held-out item is ranked against the whole catalogue, the items in the
  user's input history excluded (unless the held-out item itself is one of them).

For the test stage the input history includes the validation item. Ties count against
the held-out item (rank = number of other candidates scoring at least as high), so a
constant scorer gets the worst rank, not a lucky one.

Ranks are 0-based: Hit@k = rank < k, NDCG@k = 1 / log2(rank + 2) when rank < k,
MRR = 1 / (rank + 1) (not truncated).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rtrank.model.data import Split
from rtrank.model.sasrec import SASRec, exclude_rows
from rtrank.model.serving import encode_histories

PROTOCOLS = ("sampled100", "full")
NUM_SAMPLED = 100

# A scorer maps input histories (lists of rows, oldest first) to scores (B, num_rows).
Scorer = Callable[[list[list[int]]], torch.Tensor]


def hit_at_k(ranks: torch.Tensor, k: int) -> float:
    """Share of 0-based ranks below ``k``."""
    return (ranks < k).float().mean().item()


def ndcg_at_k(ranks: torch.Tensor, k: int) -> float:
    """Mean NDCG@k for one relevant item per user: 1/log2(rank+2) inside the top k."""
    r = ranks.double()
    gains = torch.where(ranks < k, 1.0 / torch.log2(r + 2.0), torch.zeros_like(r))
    return gains.mean().item()


def mrr(ranks: torch.Tensor) -> float:
    """Mean reciprocal rank, 1/(rank+1), over all ranks (not truncated)."""
    return (1.0 / (ranks.double() + 1.0)).mean().item()


@dataclass(frozen=True)
class Metrics:
    hit: float  # Hit@k
    ndcg: float  # NDCG@k
    mrr: float
    users: int
    k: int = 10

    def as_dict(self) -> dict[str, float]:
        return {f"hit@{self.k}": self.hit, f"ndcg@{self.k}": self.ndcg, "mrr": self.mrr}


def metrics_from_ranks(ranks: torch.Tensor, k: int = 10) -> Metrics:
    return Metrics(hit_at_k(ranks, k), ndcg_at_k(ranks, k), mrr(ranks), len(ranks), k)


@dataclass
class EvalSet:
    """Everything fixed about one evaluation: inputs, targets and, if sampled, candidates."""

    protocol: str
    histories: list[list[int]]
    targets: torch.Tensor  # (U,)
    candidates: torch.Tensor | None  # (U, 1 + 100), column 0 = target; -1 = no candidate


def make_eval_set(split: Split, stage: str, protocol: str, num_rows: int, seed: int = 0) -> EvalSet:
    """Builds the inputs of one protocol for stage ``valid`` or ``test``.

    The sampled negatives depend only on (data, stage, seed), so every model evaluated
    with the same arguments faces the same candidates.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    users, histories, targets = split.eval_inputs(stage)
    cands = None
    if protocol == "sampled100":
        rng = np.random.default_rng([seed, 0 if stage == "valid" else 1])
        cands = np.full((len(users), 1 + NUM_SAMPLED), -1, dtype=np.int64)
        for i, u in enumerate(users):
            seen = set(split.train[u]) | {split.valid[u], split.test[u]}
            cands[i, 0] = targets[i]
            cands[i, 1:] = _sample_unseen(rng, seen, num_rows, NUM_SAMPLED)
        cands = torch.from_numpy(cands)
    return EvalSet(protocol, histories, torch.tensor(targets, dtype=torch.long), cands)


def ranks_sampled(scores: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """0-based rank of column 0 among candidates (B, C); -1 entries are not candidates."""
    valid = candidates >= 0
    s = scores.gather(1, candidates.clamp(min=0))  # (B, C)
    higher = (s[:, 1:] >= s[:, :1]) & valid[:, 1:]
    return higher.sum(1)


def ranks_full(
    scores: torch.Tensor, targets: torch.Tensor, exclude: Sequence[Sequence[int]]
) -> torch.Tensor:
    """0-based rank of ``targets`` (B,) in scores (B, V), rows in ``exclude`` and row 0 left out."""
    s = scores.clone()
    exclude_rows(s, exclude)
    s[:, 0] = float("-inf")
    t = scores.gather(1, targets[:, None])  # (B, 1): the target keeps its score
    s.scatter_(1, targets[:, None], float("-inf"))
    return (s >= t).sum(1)


def evaluate(scorer: Scorer, eval_set: EvalSet, k: int = 10, batch_size: int = 1024) -> Metrics:
    """Scores every user of ``eval_set`` and returns its metrics."""
    ranks = []
    n = len(eval_set.histories)
    for start in range(0, n, batch_size):
        hist = eval_set.histories[start : start + batch_size]
        scores = scorer(hist).float().cpu()
        targets = eval_set.targets[start : start + batch_size]
        if eval_set.candidates is not None:
            ranks.append(ranks_sampled(scores, eval_set.candidates[start : start + batch_size]))
        else:
            ranks.append(ranks_full(scores, targets, hist))
    return metrics_from_ranks(torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long), k)


def model_scorer(model: SASRec) -> Scorer:
    """Wraps a model as a `Scorer` (eval mode, no grad, on the model's device)."""

    def score(histories: list[list[int]]) -> torch.Tensor:
        return model.scores(encode_histories(model, histories))

    return score


def _sample_unseen(rng: np.random.Generator, seen: set[int], num_rows: int, n: int) -> np.ndarray:
    """``n`` distinct rows in 1..num_rows-1 outside ``seen``, -1-filled when too few exist."""
    available = num_rows - 1 - len({s for s in seen if 0 < s < num_rows})
    out = np.full(n, -1, dtype=np.int64)
    if available <= 0:
        return out
    if available <= 2 * n:  # small catalogue: enumerate instead of rejection sampling
        pool = np.array([r for r in range(1, num_rows) if r not in seen], dtype=np.int64)
        take = rng.permutation(pool)[:n]
        out[: len(take)] = take
        return out
    picked: list[int] = []
    chosen: set[int] = set()
    while len(picked) < n:
        for r in rng.integers(1, num_rows, size=2 * n).tolist():
            if r not in seen and r not in chosen:
                chosen.add(r)
                picked.append(r)
                if len(picked) == n:
                    break
    out[:] = picked
    return out
