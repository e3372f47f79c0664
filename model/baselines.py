"""Non-neural baselines, scored by the same evaluation code as the model.

Both are fitted on the training part of a split only (like the model), and are `Scorer`s:
call them with input histories to get scores (B, num_rows).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import torch


class Popular:
    """Scores every item by its number of training interactions."""

    def __init__(self, train: Iterable[Sequence[int]], num_rows: int) -> None:
        counts = torch.zeros(num_rows, dtype=torch.float64)
        for seq in train:
            counts.index_add_(
                0,
                torch.tensor(list(seq), dtype=torch.long),
                torch.ones(len(seq), dtype=torch.float64),
            )
        counts[0] = 0.0
        self.counts = counts

    def __call__(self, histories: list[list[int]]) -> torch.Tensor:
        return self.counts.expand(len(histories), -1)


class Transitions:
    """Scores items by how often they followed the user's latest item in training.

    Items never seen after it fall back to popularity: scores are the transition count
    plus popularity scaled into [0, 1), so popularity only breaks ties between equal
    counts.
    """

    def __init__(self, train: Iterable[Sequence[int]], num_rows: int) -> None:
        train = list(train)
        pop = Popular(train, num_rows).counts
        self.fallback = pop / (pop.max() + 1.0)
        counts: dict[int, Counter[int]] = defaultdict(Counter)
        for seq in train:
            for a, b in zip(seq, seq[1:], strict=False):
                counts[a][b] += 1
        self.next_rows = {
            a: (
                torch.tensor(list(c.keys()), dtype=torch.long),
                torch.tensor(list(c.values()), dtype=torch.float64),
            )
            for a, c in counts.items()
        }

    def __call__(self, histories: list[list[int]]) -> torch.Tensor:
        scores = self.fallback.expand(len(histories), -1).clone()
        for i, hist in enumerate(histories):
            nxt = self.next_rows.get(hist[-1]) if hist else None
            if nxt is not None:
                scores[i].index_add_(0, nxt[0], nxt[1])
        return scores
