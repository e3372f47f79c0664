"""An approximate top-K index over the item rows, for catalogues too large to scan per list.

    index = IvfIndex(model, IvfConfig(lists=0, probe=32))
    scores, rows = index.top_k(user_vecs, 10, exclude=seen_rows)
    index.follow(model, changed_rows)  # after a model update moved or added rows

A faiss IVF index (inner product): the rows are cut into ``lists`` cells by k-means, and a
user's search reads only the ``probe`` cells whose centres score highest for them, not the
whole catalogue. The cells hold the rows in float16: half the bytes a search reads, and
no range to train, so a row moved anywhere by training is held as well as the first ones.
Its candidates are then scored exactly against the model's current float32 rows, excluded
rows dropped, and the best ``k`` returned: the scores are the exact scan's, only which rows
are found is approximate (recall@10 against the exact scan: ``rtrank bench index``,
docs/benchmarks.md).

Following online training (docs/decisions.md, "Approximate item index"): the rows an update
moves or adds are removed and added again at once, each into the cell whose centre is
nearest now, so the index never holds a stale row. The centres are trained again only when
the catalogue has grown past `RETRAIN_GROWTH` times the rows they were trained on, or the
cells' imbalance (faiss's ``imbalance_factor``: how uneven the cell sizes are, which is
what searches pay for) passed `RETRAIN_IMBALANCE` times its value after training; that
runs in the background (`IvfIndex`).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

import faiss
import numpy as np
import torch

from rtrank.model.sasrec import SASRec, listed_rows, table_rows

log = logging.getLogger(__name__)

RETRAIN_GROWTH = 2.0  # rows over those the centres were trained on that trains them again
RETRAIN_IMBALANCE = 2.0  # cell imbalance over the trained one that trains the centres again
TRAIN_POINTS_PER_LIST = 32  # k-means sample per cell: enough for centres, fast at 1M rows
MIN_POINTS_PER_LIST = 39  # faiss's own floor for a meaningful k-means cell


@dataclass(frozen=True)
class IvfConfig:
    """``lists``: cells (0 = about 2·√rows); ``probe``: cells read per user, the knob
    between recall and speed."""

    lists: int = 0
    probe: int = 32  # the lowest that met recall@10 >= 0.95 on a trained Games model

    def __post_init__(self) -> None:
        if self.lists < 0 or self.probe < 1:
            raise ValueError(f"lists >= 0 and probe >= 1, not {self.lists} and {self.probe}")


def cells_for(rows: int, lists: int) -> int:
    """Cells for ``rows`` items: ``lists`` (or 2·√rows), at most rows/39, at least 1."""
    wanted = lists or round(2 * math.sqrt(rows))
    return max(1, min(wanted, rows // MIN_POINTS_PER_LIST))


def build_ivf(table: torch.Tensor, config: IvfConfig) -> faiss.IndexIVF:
    """An IVF index of ``table``'s rows (V, D) but padding row 0, ids = row numbers.

    Thread-safe for a ``table`` no one else writes (faiss releases the GIL meanwhile).
    """
    rows, dim = table.shape[0] - 1, table.shape[1]
    lists = cells_for(rows, config.lists)
    fp16, inner = faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, lists, fp16, inner)
    index.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST  # faiss samples the rest
    index.cp.min_points_per_centroid = 1
    vectors = _numpy(table[1:])
    if rows:
        index.train(vectors)
    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # removal by id, not a scan
    if rows:
        index.add_with_ids(vectors, np.arange(1, rows + 1, dtype=np.int64))
    index.nprobe = min(config.probe, lists)
    return index


class IvfIndex:
    """`rtrank.model.serving.ItemIndex`'s ``top_k`` contract over an IVF index of the
    model's item rows (row 0, padding, never indexed); one thread uses it at a time.

    Training the centres again runs in a thread of its own on a copy of the rows (a build
    at 1M rows takes longer than a model call may), while this index keeps serving and
    following updates; the rows moved meanwhile are re-placed in the new index when it is
    installed, at the next call after it is ready.
    """

    def __init__(self, model: SASRec, config: IvfConfig) -> None:
        self.config = config
        self.model = model
        self._retrain: threading.Thread | None = None
        self._retrained: list[tuple[faiss.IndexIVF, int]] = []  # (index, rows copied)
        self._moved_since_copy: list[torch.Tensor] = []
        table = model.item_emb.weight.detach()
        self._install(build_ivf(table, config), table.shape[0])

    def _install(self, index: faiss.IndexIVF, size: int) -> None:
        self.index = index
        self.lists = index.nlist
        self.size = size  # rows indexed, padding included
        self.trained_rows = size - 1
        self.trained_imbalance = index.invlists.imbalance_factor() if size > 1 else 1.0

    def follow(self, model: SASRec, changed: torch.Tensor | None) -> None:
        """Index ``model``'s rows from now on: ``changed`` rows (int64) re-placed, rows past
        those indexed added; ``changed`` None (a new model, e.g. a snapshot) = every row
        that differs from the model indexed so far. Starts training the centres again when
        the catalogue outgrew them or their cells grew unbalanced (module docstring)."""
        self._install_retrained()
        table = model.item_emb.weight.detach()
        if table.shape[1] != self.index.d:
            self.model = model  # another architecture: nothing of this index applies
            self.settle()
            self._install(build_ivf(table, self.config), table.shape[0])
            return
        if changed is None:
            old = self.model.item_emb.weight.detach()
            common = min(old.shape[0], self.size, table.shape[0])
            changed = (old[:common] != table[:common]).any(dim=1).nonzero().squeeze(1)
        changed = changed.to(torch.int64).cpu()
        kept = min(self.size, table.shape[0])
        moved = changed[(changed > 0) & (changed < kept)].unique()
        added = _span(self.size, table.shape[0])
        self.model = model
        self._replace(self.index, table, moved, added, _span(kept, self.size))
        self.size = table.shape[0]
        if self._retrain is not None:
            self._moved_since_copy.append(torch.cat([moved, added]))
        elif (
            self.size - 1 > RETRAIN_GROWTH * max(self.trained_rows, 1)
            or self.index.invlists.imbalance_factor() > RETRAIN_IMBALANCE * self.trained_imbalance
        ):
            self._start_retrain(table.clone())

    def settle(self) -> None:
        """Wait for a retraining in progress and install it (tests, benchmarks)."""
        if self._retrain is not None:
            self._retrain.join()
        self._install_retrained()

    def _start_retrain(self, table: torch.Tensor) -> None:
        def run() -> None:
            try:
                self._retrained.append((build_ivf(table, self.config), table.shape[0]))
            except Exception:  # noqa: BLE001 - any failure: keep serving the old cells
                log.exception("training the item index's cells again failed")

        self._moved_since_copy = []
        self._retrain = threading.Thread(target=run, name="ivf-retrain", daemon=True)
        self._retrain.start()

    def _install_retrained(self) -> None:
        if self._retrain is None or self._retrain.is_alive():
            return
        self._retrain = None
        if not self._retrained:  # the build failed (logged): keep the old cells
            return
        index, copied = self._retrained.pop()
        table = self.model.item_emb.weight.detach()
        since = torch.cat([torch.empty(0, dtype=torch.int64), *self._moved_since_copy])
        since = since.unique()
        moved = since[since < min(copied, self.size)]
        added = _span(copied, self.size)
        self._replace(index, table, moved, added, _span(self.size, copied))
        size = self.size
        self._install(index, copied)
        self.size = size

    @staticmethod
    def _replace(
        index: faiss.IndexIVF,
        table: torch.Tensor,
        moved: torch.Tensor,
        added: torch.Tensor,
        gone: torch.Tensor,
    ) -> None:
        """Remove ``moved`` and ``gone`` rows from ``index``, add ``moved`` and ``added``
        ones from ``table``."""
        ids = np.ascontiguousarray(torch.cat([moved, gone]).numpy())
        if len(ids):
            index.remove_ids(faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids)))
        rows = torch.cat([moved, added])
        if len(rows):
            index.add_with_ids(_numpy(table[rows.to(table.device)]), rows.numpy())

    @torch.no_grad()
    def top_k(
        self, user_vecs: torch.Tensor, k: int, exclude: list[list[int]] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores (B, k), rows (B, k)), best first, exact scores of the rows found;
        padding and ``exclude`` never returned. A -inf tail where the probed cells hold
        fewer than k rows beyond the excluded ones."""
        self._install_retrained()
        if exclude and len(exclude) != user_vecs.shape[0]:
            raise ValueError(f"exclude has {len(exclude)} lists for {user_vecs.shape[0]} users")
        table = self.model.item_emb.weight.detach()
        k = max(0, min(k, self.size - 1))
        depth = k + max((len(e) for e in exclude), default=0) if exclude else k
        vecs = user_vecs.to(table.device, torch.float32)
        _, found = self.index.search(_numpy(vecs), max(depth, 1))  # (B, depth), -1: none
        candidates = torch.from_numpy(found).to(table.device)
        missing = candidates < 0
        candidates = candidates.clamp(min=0)
        exact = torch.bmm(table_rows(table, candidates), vecs.unsqueeze(2)).squeeze(2)  # (B, depth)
        exact[missing] = float("-inf")
        if exclude:
            exact[_excluded(candidates, exclude, self.size)] = float("-inf")
        scores, picked = exact.topk(k, dim=1)
        return scores, candidates.gather(1, picked)


def _excluded(candidates: torch.Tensor, exclude: list[list[int]], size: int) -> torch.Tensor:
    """(B, depth) mask of the candidates in their user's ``exclude`` list."""
    users = torch.arange(candidates.shape[0], device=candidates.device).unsqueeze(1)
    keys = users * size + candidates  # (B, depth): one key per (user, row)
    users_of, rows = listed_rows(exclude)
    banned = (users_of * size + rows).to(candidates.device)
    return torch.isin(keys, banned)


def _span(start: int, stop: int) -> torch.Tensor:
    """Rows start..stop-1 (int64), none when stop <= start."""
    return torch.arange(start, max(start, stop))


def _numpy(rows: torch.Tensor) -> np.ndarray:
    """A C-contiguous float32 CPU copy, as faiss reads it."""
    return np.ascontiguousarray(rows.detach().to("cpu", torch.float32).numpy())
