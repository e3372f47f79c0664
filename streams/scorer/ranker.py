"""From the model's top-N to emitted lists: cold start, explanations, re-rank (model process).

The worker's model process (`rtrank.streams.scorer.served_model`) owns one `Ranker` next to
its `rtrank.streams.scorer.scoring.Scorer` and serves one call at a time, so the popularity
counts and the model are never touched concurrently.

    ranker = Ranker(settings, Catalogue(items))
    ranker.observe(events)                                   # each batch, before scoring
    lists = ranker.rerank_lists(scorer, requests, top_n)     # model top-N -> final lists
    order, filtered = ranker.rank_candidates(scorer, history, candidates)  # rank requests

Cold start: a user with at most ``cold_start_max_history`` items the model knows gets the
trending list (time-decayed popularity from the stream), filled up with the model's
candidates when trending has too few items. Explanations (``explain``): the history items
whose embeddings have the largest dot product with the recommended item's — the terms
through which the history pulls that item up (SASRec scores are dot products).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import torch

from rtrank.model.serving import pad_batch
from rtrank.streams.catalogue import Catalogue, ItemInfo
from rtrank.streams.event_policy import EventPolicy
from rtrank.streams.records import Event
from rtrank.streams.scorer.model_wire import ScoreRequest
from rtrank.streams.scorer.rerank import (
    Candidate,
    RankedItem,
    RerankConfig,
    exploration_order,
    rerank,
)
from rtrank.streams.scorer.scoring import Scorer
from rtrank.streams.scorer.trending import Trending
from rtrank.streams.settings import Settings

EXPLAIN_TOP = 3
TRENDING_REFRESH_S = 1.0


def rerank_config(settings: Settings) -> RerankConfig:
    """The re-rank rules the settings describe."""
    return RerankConfig(
        k=settings.top_k,
        lam=settings.mmr_lambda,
        max_per_category=settings.max_per_category,
        category_boosts=settings.category_boosts,
        blocked=settings.blocked_items,
        pinned=settings.pinned_items,
        repeatable_types=settings.repeat_event_types,
        fresh_age_ms=int(settings.fresh_age_s * 1000),
        fresh_boost=settings.fresh_boost,
        explore_slots=settings.explore_slots,
    )


class Ranker:
    """Re-ranking with its inputs: catalogue, popularity, rules. One caller at a time."""

    def __init__(self, settings: Settings, catalogue: Catalogue | None = None) -> None:
        self.config = rerank_config(settings)
        self.policy = EventPolicy.from_settings(settings)
        self.catalogue = catalogue if catalogue is not None else Catalogue()
        self.trending = Trending(
            settings.trending_half_life_s * 1000, max_items=settings.trending_max_items
        )
        self._trending_top: tuple[float, list[tuple[str, float]]] | None = None
        # (the catalogue's fresh list it was made from, ordered, popularity)
        self._explored: tuple[list[ItemInfo], list[ItemInfo], dict[str, float]] | None = None
        self.candidates = max(settings.rerank_candidates, settings.top_k)
        self.cold_start_max_history = settings.cold_start_max_history
        self.explain = settings.explain

    def observe(self, events: Sequence[Event]) -> None:
        """Count newly applied events in the popularity (weighted by event type)."""
        for e in events:
            self.trending.observe(e.item_id, e.ts, self.policy.weight(e.event_type))

    def rerank_lists(
        self,
        scorer: Scorer,
        requests: Sequence[ScoreRequest],
        top_n: Sequence[Sequence[tuple[str, float]]],
        seen: Sequence[Mapping[str, str]] | None = None,
    ) -> list[list[RankedItem]]:
        """Final lists from the model's top-N per request (same order as ``requests``).

        Args:
            seen: per request, item -> event type of the seen window; by default the
                request's ``exclude`` items with an unknown type.
        """
        now_ms = int(time.time() * 1000)
        fresh, popularity = self._exploration(now_ms) if self.config.explore_slots else ([], {})
        item_boosts = self.catalogue.boosted > 0
        out = []
        for n, (request, model_items) in enumerate(zip(requests, top_n, strict=True)):
            user_seen = seen[n] if seen is not None else dict.fromkeys(request.exclude, "")
            candidates = [Candidate(i, s) for i, s in model_items]
            if self.is_cold(scorer, request.history):
                candidates = cold_start_candidates(self.trending_top(), model_items)
            vectors, because = self._model_side(scorer, request.history, candidates)
            if because:
                candidates = [replace(c, because=because.get(c.item_id, ())) for c in candidates]
            out.append(
                rerank(
                    candidates,  # rerank's filters drop duplicates (keep the first)
                    self.config,
                    seen=user_seen,
                    lookup=self.catalogue.get,
                    vectors=vectors,
                    fresh=fresh,
                    popularity=popularity,
                    now_ms=now_ms,
                    item_boosts=item_boosts,
                )
            )
        return out

    def _exploration(self, now_ms: int) -> tuple[list[ItemInfo], dict[str, float]]:
        """The catalogue's fresh items in `exploration_order`, with their popularity; made
        again with the catalogue's fresh list (a change to a young item, or every
        ``fresh_cache_s``), not for every batch: over tens of thousands of fresh items
        that takes tens of milliseconds, and what it serves, a few slots for new items to
        be seen, needs no fresher popularity."""
        fresh = self.catalogue.fresh(now_ms, self.config.fresh_age_ms)
        if self._explored is None or self._explored[0] is not fresh:
            popularity = self.trending.scores(i.item_id for i in fresh)
            self._explored = (fresh, exploration_order(fresh, popularity), popularity)
        return self._explored[1], self._explored[2]

    def trending_top(self) -> list[tuple[str, float]]:
        """The most popular items for cold lists, recomputed at most every
        ``TRENDING_REFRESH_S``: ranking the whole catalogue costs milliseconds, and
        popularity with a half-life of minutes or hours barely moves within a second."""
        now = time.monotonic()
        if self._trending_top is None or now - self._trending_top[0] > TRENDING_REFRESH_S:
            self._trending_top = (now, self.trending.top(self.candidates + 4 * self.config.k))
        return self._trending_top[1]

    def rank_candidates(
        self, scorer: Scorer, history: Sequence[str], candidates: Sequence[str]
    ) -> tuple[list[RankedItem], list[dict]]:
        """A caller's candidates, ordered; and those filtered out, each with its reason.

        Known candidates are scored by the model (the whole re-rank stage applies, the
        category cap demotes instead of dropping); candidates without an embedding, and
        every candidate of a cold user, follow the cold-start rule: time-decayed
        popularity, source ``cold_start``. Nothing is dropped without a reason.
        """
        lookup = self.catalogue.get
        kept, filtered = [], []
        for item_id in dict.fromkeys(candidates):
            info = lookup(item_id)
            if item_id in self.config.blocked:
                filtered.append({"item_id": item_id, "reason": "blocked"})
            elif info is not None and not info.available:
                filtered.append({"item_id": item_id, "reason": "unavailable"})
            else:
                kept.append(item_id)
        cold = self.is_cold(scorer, history)
        known = [] if cold else [i for i in kept if i in scorer.vocab]
        unknown = [i for i in kept if i not in set(known)]
        ranked: list[RankedItem] = []
        if known:
            scores = self._scores(scorer, history, known)
            model_candidates = [Candidate(i, s) for i, s in zip(known, scores, strict=True)]
            vectors, because = self._model_side(scorer, history, model_candidates)
            if because:
                model_candidates = [
                    replace(c, because=because.get(c.item_id, ())) for c in model_candidates
                ]
            config = replace(self.config, k=len(known), explore_slots=0, pinned={})
            ranked = rerank(
                model_candidates,
                config,
                lookup=lookup,
                vectors=vectors,
                now_ms=int(time.time() * 1000),
                keep_rest=True,
            )
        cold_order = sorted(unknown, key=lambda i: -self.trending.score(i))
        ranked += [RankedItem(i, self.trending.score(i), "cold_start") for i in cold_order]
        return ranked, filtered

    def is_cold(self, scorer: Scorer, history: Sequence[str]) -> bool:
        """At most ``cold_start_max_history`` items of ``history`` are known to the model
        (counted only as far as that answers it: a warm user's first few items)."""
        known, vocab = 0, scorer.vocab
        for item_id in history:
            if item_id in vocab:
                known += 1
                if known > self.cold_start_max_history:
                    return False
        return True

    def _scores(self, scorer: Scorer, history: Sequence[str], items: list[str]) -> list[float]:
        seqs = pad_batch([scorer.vocab.rows(history)], scorer.model.config.max_len, scorer.device)
        rows = torch.tensor(scorer.vocab.rows(items), device=scorer.device)
        with torch.inference_mode():
            user = scorer.model.encode(seqs)  # (1, D)
            emb = scorer.model.item_emb.weight[rows]  # (n, D)
            return (emb @ user[0]).float().cpu().tolist()  # (n,)

    def _model_side(
        self, scorer: Scorer, history: Sequence[str], candidates: Sequence[Candidate]
    ) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]]]:
        """Embeddings of the candidates (for MMR) and, with ``explain``, their reasons."""
        need_vectors = self.config.lam < 1
        if not (need_vectors or self.explain):
            return {}, {}
        ids = [c.item_id for c in candidates if c.item_id in scorer.vocab]
        if not ids:
            return {}, {}
        with torch.inference_mode():
            weight = scorer.model.item_emb.weight
            emb = weight[torch.tensor(scorer.vocab.rows(ids), device=weight.device)]  # (n, D)
            matrix = emb.float().cpu().numpy()
            vectors = dict(zip(ids, matrix, strict=True)) if need_vectors else {}
            because: dict[str, tuple[str, ...]] = {}
            hist = list(dict.fromkeys(i for i in history if i in scorer.vocab))
            if self.explain and hist:
                h = weight[torch.tensor(scorer.vocab.rows(hist), device=weight.device)]  # (L, D)
                contrib = (emb @ h.T).float().cpu()  # (n, L)
                top = contrib.topk(min(EXPLAIN_TOP, len(hist)), dim=1).indices.tolist()
                because = {i: tuple(hist[j] for j in row) for i, row in zip(ids, top, strict=True)}
        return vectors, because


def cold_start_candidates(
    trending: Sequence[tuple[str, float]], model_items: Sequence[tuple[str, float]]
) -> list[Candidate]:
    """Trending items first, then the model's; scores by rank (their scales differ)."""
    from_trending = [i for i, _ in trending]
    ordered = list(dict.fromkeys(from_trending + [i for i, _ in model_items]))
    trending_ids = set(from_trending)
    return [
        Candidate(i, float(len(ordered) - rank), "trending" if i in trending_ids else "model")
        for rank, i in enumerate(ordered)
    ]
