"""The model as the stream sees it: ``Scorer.from_settings(settings)`` once,
``recommend(batch)`` per micro-batch. No Faust here; the worker's model process calls it
(`rtrank.streams.scorer.served_model`).

Without ``RTRANK_CHECKPOINT`` the worker serves a randomly initialised model whose
vocabulary grows with the items the stream shows (so lists are valid but not yet learned);
with a checkpoint, items unknown to its vocabulary are ignored until a model update brings
them. ``apply(update)`` swaps in what the trainer published (`rtrank.model.updates`); the
worker calls it between batches, in the same thread as ``recommend``.
"""

from __future__ import annotations

import logging

import faiss
import torch

from rtrank.model.checkpoint import load_checkpoint
from rtrank.model.encode_cache import EncodeCache, UserSequence
from rtrank.model.item_ann import IvfConfig, IvfIndex
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.serving import ItemIndex, encode_histories, resolve_device, resolve_shortlist
from rtrank.model.updates import Delta, Snapshot, Update, apply_update
from rtrank.model.vocab import Vocabulary
from rtrank.streams.scorer.model_wire import ScoreRequest
from rtrank.streams.settings import Settings

log = logging.getLogger(__name__)


class Scorer:
    """Owns the served model, its vocabulary and version; one thread uses it at a time.

    ``max_users`` caps the users of one model call: a backlogged worker's batches reach
    thousands of users, and their score matrix (users x catalogue floats) must stay small.
    ``shortlist``: find each list's items through a bfloat16 shortlist (`ItemIndex`).
    ``ivf``: find them through an approximate IVF index instead (`rtrank.model.item_ann`),
    which follows updates row by row rather than being built again.
    ``cache_bytes``: bound of the per-user encode cache (`rtrank.model.encode_cache`), used
    for requests that name their user when the model counts positions from the start; 0 =
    none. An update of item rows only drops the users whose window reads them; any other
    update empties it (`apply`).
    """

    def __init__(
        self,
        model: SASRec,
        vocab: Vocabulary,
        version: int,
        grows_with_stream: bool,
        max_users: int = 256,
        shortlist: bool = False,
        cache_bytes: int = 0,
        ivf: IvfConfig | None = None,
    ) -> None:
        if max_users < 1:
            raise ValueError(f"at least one user per model call, not {max_users}")
        self.model = model.eval()
        self.vocab = vocab
        self.version = version
        self.grows_with_stream = grows_with_stream
        self.max_users = max_users
        self.shortlist = shortlist
        # renewed (exact) or followed (ivf) whenever the item table changes; the kernels of
        # a catalogue grown past its rounding are made by the batches that meet them
        self.items: ItemIndex | IvfIndex
        if ivf:
            self.items = IvfIndex(self.model, ivf)
        else:
            self.items = ItemIndex(self.model, shortlist)
            self.items.warm_up(max_users)
        self.cache = EncodeCache(cache_bytes)

    @classmethod
    def setup(
        cls,
        checkpoint: str,
        device: str,
        seed: int = 0,
        threads: int = 1,
        max_users: int = 256,
        shortlist: str = "auto",
        cache_mb: float = 0,
        item_index: str = "exact",
        ivf: IvfConfig | None = None,
    ) -> Scorer:
        """Load ``checkpoint`` onto ``device`` (``auto`` = CUDA when present).

        ``threads`` caps torch's CPU threads for this process: on a small machine, more
        intra-op threads than spare cores make inference slower, not faster.

        Raises:
            rtrank.model.checkpoint.CheckpointError: the checkpoint cannot be loaded.
            ValueError: the device is unknown or unavailable, ``max_users`` < 1, or
                ``shortlist`` is not auto, on or off, or ``item_index`` not exact or ivf.
        """
        if item_index not in ("exact", "ivf"):
            raise ValueError(f"unknown item index {item_index!r}: use exact or ivf")
        ivf = (ivf or IvfConfig()) if item_index == "ivf" else None
        target = resolve_device(device)
        short = resolve_shortlist(shortlist, target)
        cache_bytes = int(cache_mb * (1 << 20))
        torch.set_num_threads(max(1, threads))
        faiss.omp_set_num_threads(max(1, threads))
        if checkpoint:
            ckpt = load_checkpoint(checkpoint, target)
            log.info(
                "serving %s version %d on %s (%d items)",
                checkpoint,
                ckpt.version,
                target,
                len(ckpt.vocab) - 1,
            )
            return cls(
                ckpt.model, ckpt.vocab, ckpt.version, False, max_users, short, cache_bytes, ivf
            )
        torch.manual_seed(seed)
        model = SASRec(SASRecConfig(num_items=2)).to(target)
        log.warning("no checkpoint: serving a randomly initialised model on %s", target)
        return cls(model, Vocabulary(), 0, True, max_users, short, cache_bytes, ivf)

    @classmethod
    def from_settings(cls, settings: Settings) -> Scorer:
        """`setup` as the served settings say (``RTRANK_CHECKPOINT``, ``RTRANK_DEVICE``,
        ``RTRANK_ENCODE_CACHE_MB``, ``RTRANK_ITEM_INDEX``, ...): the worker's model and each
        frozen variant's alike."""
        return cls.setup(
            settings.checkpoint,
            settings.device,
            settings.seed,
            settings.torch_threads,
            settings.score_max_users,
            settings.score_shortlist,
            settings.encode_cache_mb,
            settings.item_index,
            IvfConfig(settings.item_index_lists, settings.item_index_probe),
        )

    @property
    def device(self) -> torch.device:
        return self.model.device

    def apply(self, update: Update) -> None:
        """Serve ``update`` from now on (call between batches, from the thread that scores).

        Raises:
            rtrank.model.updates.UpdateError: stale, out of order or incompatible; the model
                served so far is left exactly as it was.
        """
        served = self.model
        model, vocab, version = apply_update(
            self.model, self.vocab, self.version, update, self.device
        )
        self.model, self.vocab, self.version = model.eval(), vocab, version
        # a delta names the rows it moved or added; a snapshot is compared row by row
        self._follow_table(update.rows if isinstance(update, Delta) else None)
        # cached keys and values read the transformer and their window's item rows
        if isinstance(update, Delta) and not update.dense and model is served:
            self.cache.forget_items(update.rows)
        else:
            self.cache.clear()
        if isinstance(update, Snapshot):
            self.grows_with_stream = False  # the trainer's vocabulary is the truth now

    def recommend(self, requests: list[ScoreRequest], k: int) -> list[list[tuple[str, float]]]:
        """Top-``k`` (item_id, score) per request, best first, excluded items never returned.

        Histories are encoded in groups of similar length
        (`rtrank.model.serving.encode_histories`), then scored against the catalogue
        ``max_users`` at a time; a list is shorter than k
        only when the catalogue minus exclusions is smaller than k.
        """
        if self.grows_with_stream:
            self._learn_items(requests)
        lists: list[list[tuple[str, float]]] = []
        excluded = float("-inf")
        with torch.inference_mode():
            vecs = self._encode(requests)
            for start in range(0, len(requests), self.max_users):
                part = requests[start : start + self.max_users]
                exclude = [self.vocab.rows(r.exclude) for r in part]
                scores, rows = self.items.top_k(vecs[start : start + self.max_users], k, exclude)
                for row_scores, row_items in zip(scores.tolist(), rows.tolist(), strict=True):
                    ids = self.vocab.ids(row_items)
                    lists.append(
                        [(i, s) for i, s in zip(ids, row_scores, strict=True) if s != excluded]
                    )
        return lists

    def _encode(self, requests: list[ScoreRequest]) -> torch.Tensor:
        """User vectors (B, D): through the encode cache when it can serve every request
        (each names its user, the model counts positions from the start), else whole."""
        cached = self.cache.max_bytes > 0 and self.model.config.positions == "from_start"
        if cached and all(r.user_id for r in requests):
            users = [UserSequence(r.user_id, r.partition, r.events, r.history) for r in requests]
            return self.cache.encode(self.model, self.vocab, users, self.max_users)
        histories = [self.vocab.rows(r.history) for r in requests]
        return encode_histories(self.model, histories, self.max_users)

    def forget_partitions(self, partitions: set[int]) -> int:
        """Drop the cached users of ``partitions`` (revoked from this worker); returns how
        many were dropped."""
        return self.cache.forget_groups(partitions)

    def forget_users(self, users: list[str]) -> int:
        """Drop ``users`` (forgotten) from the encode cache; returns how many it held."""
        return self.cache.forget_users(users)

    def _learn_items(self, requests: list[ScoreRequest]) -> None:
        for request in requests:
            for item_id in request.history:
                self.vocab.add(item_id)
        if len(self.vocab) > self.model.config.num_items:
            self.model.grow(len(self.vocab))
            self._follow_table(torch.empty(0, dtype=torch.int64))  # new rows only

    def _follow_table(self, changed: torch.Tensor | None) -> None:
        """The item index after the model's table changed: the IVF index re-places the
        ``changed`` rows and adds new ones (None: every row that differs); the exact scan's
        copy of the table is made anew."""
        if isinstance(self.items, IvfIndex):
            self.items.follow(self.model, changed)
        else:
            self.items = ItemIndex(self.model, self.shortlist)
