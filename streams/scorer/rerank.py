"""The re-rank stage: pure functions from the model's top-N to the list a user is shown.

No Kafka, Faust or torch here: `rtrank.streams.scorer.ranker` builds the inputs in the model
process and calls `rerank`. The order of the stage, and why:

1. filters (`keep`): seen items (unless their event type allows repeats), unavailable
   items and blocked items never reach the list — hard rules first;
2. relevance (`relevance`): the model's scores min-max normalised over the candidates
   (so boosts have one scale whatever the model's), plus the item's own ``boost``, its
   category's boost and the freshness boost;
3. selection (`mmr`): maximal marginal relevance with ``lam`` under the per-category cap;
   ``lam = 1`` with no boosts reproduces the model's plain top-K;
4. exploration (`explore`): the last ``explore_slots`` positions go to fresh, available
   items (trending among new items first), which may have no embedding yet;
5. pinned items go to their positions last, so no other rule moves them.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rtrank.streams.catalogue import ItemInfo

Vector = Sequence[float]


@dataclass
class Candidate:
    """One item considered for a list; ``score`` is on the source's own scale.

    A value (changed by `dataclasses.replace`, never in place) but not a frozen dataclass:
    the model process builds 50 of these per list, and a plain dataclass is several times
    cheaper to build (and, for the `RankedItem`s a rank request returns, to unpickle) than
    a frozen one.
    """

    item_id: str
    score: float
    source: str = "model"  # model | trending | explore | pinned | cold_start
    because: tuple[str, ...] = ()  # history items that contributed most (explanations)


@dataclass
class RankedItem:
    """One item of an emitted list; ``score`` is its relevance after boosts (a value, like
    `Candidate`, and a plain dataclass for the same reasons)."""

    item_id: str
    score: float
    source: str = "model"
    because: tuple[str, ...] = ()
    team: str = ""  # the variant that placed it in an interleaved list

    def to_json(self) -> dict:
        """``source`` only when not the model; ``because`` only when explanations are on;
        ``team`` only in an interleaved list."""
        out: dict = {"item_id": self.item_id, "score": round(self.score, 6)}
        if self.source != "model":
            out["source"] = self.source
        if self.because:
            out["because"] = list(self.because)
        if self.team:
            out["team"] = self.team
        return out


@dataclass(frozen=True)
class RerankConfig:
    """The business side of ranking; built from `rtrank.streams.settings.Settings`."""

    k: int = 10
    lam: float = 1.0  # MMR trade-off: 1 = relevance only, 0 = diversity only
    max_per_category: int = 0  # 0 = no cap
    category_boosts: Mapping[str, float] = field(default_factory=dict)
    blocked: frozenset[str] = frozenset()
    pinned: Mapping[str, int] = field(default_factory=dict)  # item -> 0-based position
    repeatable_types: frozenset[str] = frozenset()  # seen via these types: may be shown again
    fresh_age_ms: int = 7 * 24 * 3600 * 1000
    fresh_boost: float = 0.0
    explore_slots: int = 0


Lookup = Callable[[str], ItemInfo | None]


def keep(
    candidates: Sequence[Candidate],
    seen: Mapping[str, str],
    lookup: Lookup,
    config: RerankConfig,
    limit: int | None = None,
) -> list[tuple[Candidate, ItemInfo | None]]:
    """Candidates that pass every filter, in their order, each with its catalogue entry
    (looked up once per list); duplicates keep their first. The filters: not blocked, not
    seen unless through a repeatable event type, and available (or not in the catalogue).

    Args:
        seen: item -> event type of the user's last interaction with it (the seen window).
        lookup: catalogue entry of an item; None (not in the catalogue) counts as available.
        limit: stop at this many kept (None: go through every candidate).
    """
    out: list[tuple[Candidate, ItemInfo | None]] = []
    taken: set[str] = set()
    blocked, repeatable = config.blocked, config.repeatable_types
    for c in candidates:
        if len(out) == limit:
            break
        item_id = c.item_id
        if item_id in taken or item_id in blocked:
            continue
        if item_id in seen and seen[item_id] not in repeatable:
            continue
        info = lookup(item_id)
        if info is not None and not info.available:
            continue
        taken.add(item_id)
        out.append((c, info))
    return out


def allowed(item_id: str, seen: Mapping[str, str], lookup: Lookup, config: RerankConfig) -> bool:
    """True when no filter removes ``item_id`` (the filters of `keep`)."""
    return bool(keep([Candidate(item_id, 0.0)], seen, lookup, config))


def normalise(scores: Sequence[float]) -> list[float]:
    """Min-max to [0, 1]; equal scores all become 1 (none is preferred)."""
    finite = [s for s in scores if math.isfinite(s)]
    if not finite:
        return [0.0] * len(scores)
    lo, hi = min(finite), max(finite)
    if hi == lo:
        return [1.0 if math.isfinite(s) else 0.0 for s in scores]
    if len(finite) == len(scores):
        return [(s - lo) / (hi - lo) for s in scores]
    return [(s - lo) / (hi - lo) if math.isfinite(s) else 0.0 for s in scores]


def is_fresh(info: ItemInfo | None, now_ms: int, config: RerankConfig) -> bool:
    return (
        info is not None
        and info.created_at is not None
        and (now_ms - info.created_at <= config.fresh_age_ms)
    )


def relevance(
    candidates: Sequence[Candidate],
    infos: Sequence[ItemInfo | None],
    config: RerankConfig,
    now_ms: int,
) -> list[float]:
    """Normalised score plus item boost, category boost and freshness boost.

    ``infos[i]`` is the catalogue entry of ``candidates[i]`` (None: not in the catalogue).
    """
    out = normalise([c.score for c in candidates])
    category_boosts, fresh_boost = config.category_boosts, config.fresh_boost
    for n, info in enumerate(infos):
        if info is not None:
            bonus = info.boost + category_boosts.get(info.category, 0.0)
            if fresh_boost and is_fresh(info, now_ms, config):
                bonus += fresh_boost
            out[n] += bonus
    return out


def similarity_matrix(candidates: Sequence[Candidate], vectors: Mapping[str, Vector]) -> np.ndarray:
    """(n, n) cosine similarities; rows of items without an embedding are all 0."""
    present = [vectors.get(c.item_id) for c in candidates]
    dim = next((len(v) for v in present if v is not None), 0)
    if dim == 0:
        return np.zeros((len(candidates), len(candidates)))
    m = np.array([v if v is not None else np.zeros(dim) for v in present], dtype=np.float64)
    norms = np.linalg.norm(m, axis=1, keepdims=True)  # (n, 1)
    m = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)
    return m @ m.T  # (n, n)


def mmr(
    rel: Sequence[float],
    sim: np.ndarray | None,
    k: int,
    lam: float,
    categories: Sequence[str | None] = (),
    max_per_category: int = 0,
) -> list[int]:
    """Indices of up to ``k`` candidates chosen greedily by maximal marginal relevance.

    Each step takes argmax ``lam * rel[i] - (1 - lam) * max_sim(i, chosen)``; ties go to the
    earlier candidate, so ``lam = 1`` returns the candidates sorted by ``rel`` (stable) and
    never needs ``sim``. A candidate whose category (``categories[i]``, None = none)
    already has ``max_per_category`` items is skipped.
    """
    n = len(rel)
    if lam >= 1 and not max_per_category:  # plain top-k by relevance (stable): the common case
        return sorted(range(n), key=lambda i: -rel[i])[:k]
    rel_a = np.asarray(rel, dtype=np.float64)
    max_sim = np.zeros(n)
    open_ = np.ones(n, dtype=bool)  # neither chosen nor in a full category
    cats = np.array([c if c is not None else "" for c in categories] or [""] * n, dtype=object)
    per_category: dict[str, int] = {}
    chosen: list[int] = []
    while len(chosen) < k and open_.any():
        value = rel_a if lam >= 1 else lam * rel_a - (1.0 - lam) * max_sim
        best = int(np.argmax(np.where(open_, value, -np.inf)))  # first maximum: earlier wins
        chosen.append(best)
        open_[best] = False
        cat = cats[best]
        if max_per_category and cat != "":
            per_category[cat] = per_category.get(cat, 0) + 1
            if per_category[cat] >= max_per_category:
                open_ &= cats != cat
        if lam < 1 and sim is not None:
            np.maximum(max_sim, sim[best], out=max_sim)
    return chosen


def exploration_order(fresh: Sequence[ItemInfo], popularity: Mapping[str, float]) -> list[ItemInfo]:
    """Fresh items in the order exploration offers them: most popular first, then newest,
    then by id. ``fresh`` comes newest first, then by id (`Catalogue.fresh`), and
    ``popularity`` holds the items counted so far: most fresh items have none, and keep
    their place. Made once for many lists (`rtrank.streams.scorer.ranker.Ranker`): sorting
    tens of thousands of fresh items for each list took most of a batch's time."""
    popular, rest = [], []
    for info in fresh:
        (popular if popularity.get(info.item_id, 0.0) > 0.0 else rest).append(info)
    popular.sort(key=lambda i: -popularity[i.item_id])  # stable: newest first among equals
    return popular + rest


def explore(
    fresh: Sequence[ItemInfo],
    popularity: Mapping[str, float],
    exclude: set[str],
    seen: Mapping[str, str],
    config: RerankConfig,
    n: int,
) -> list[Candidate]:
    """The first ``n`` of ``fresh`` (in `exploration_order`) that are available and allowed:
    not in ``exclude``, not blocked, not seen unless through a repeatable event type."""
    out: list[Candidate] = []
    blocked, repeatable = config.blocked, config.repeatable_types
    for info in fresh:
        if len(out) >= n:
            break
        item_id = info.item_id
        if not info.available or item_id in exclude or item_id in blocked:
            continue
        if item_id in seen and seen[item_id] not in repeatable:
            continue
        out.append(Candidate(item_id, popularity.get(item_id, 0.0), source="explore"))
    return out


def place_pinned(
    items: list[RankedItem],
    pinned: Mapping[str, int],
    seen: Mapping[str, str],
    lookup: Lookup,
    config: RerankConfig,
    k: int,
) -> list[RankedItem]:
    """Put each allowed pinned item at its position (clamped to the list); keep length <= k."""
    rest = [i for i in items if i.item_id not in pinned]
    for item_id, position in sorted(pinned.items(), key=lambda p: p[1]):
        if allowed(item_id, seen, lookup, config):
            score = rest[0].score if rest else 0.0
            rest.insert(min(position, len(rest)), RankedItem(item_id, score, "pinned"))
    return rest[:k]


def rerank(
    candidates: Sequence[Candidate],
    config: RerankConfig,
    *,
    seen: Mapping[str, str] | None = None,
    lookup: Lookup = lambda _: None,
    vectors: Mapping[str, Vector] | None = None,
    fresh: Sequence[ItemInfo] = (),
    popularity: Mapping[str, float] | None = None,
    now_ms: int = 0,
    keep_rest: bool = False,
    item_boosts: bool = True,
) -> list[RankedItem]:
    """The list shown to a user, from candidates in the model's order (best first).

    Args:
        candidates: the model's top-N (N >= k) or a caller's candidates.
        seen: item -> event type, the user's seen window; filtered unless repeatable.
        lookup: catalogue entry per item (None = unknown to the catalogue: available).
        vectors: item embeddings for diversity; items without one count as dissimilar.
        fresh: catalogue items younger than ``config.fresh_age_ms``, in
            `exploration_order` (for exploration).
        popularity: the fresh items' time-decayed popularity (exploration items' scores).
        keep_rest: append the candidates the category cap left out, after the selection,
            instead of dropping them (re-rank requests: nothing is dropped silently).
        item_boosts: whether ``lookup`` may return an entry with a ``boost``; False (and
            `keeps_model_order`) lets the list be made from the candidates it shows
            (`plain_list`).

    Returns:
        At most ``config.k`` items (``keep_rest``: every allowed candidate), best first.
    """
    seen = seen or {}
    vectors = vectors or {}
    popularity = popularity or {}
    slots = min(config.explore_slots, config.k)
    pinned = {i: p for i, p in config.pinned.items() if p < config.k}
    # Every candidate is left out, not only the kept ones: the others fail the filters
    # that exploration applies too, so it offers the same items without keep's lookups.
    exploration = (
        explore(
            fresh, popularity, {c.item_id for c in candidates} | set(pinned), seen, config, slots
        )
        if slots and fresh
        else []
    )
    explored = [RankedItem(c.item_id, 0.0, c.source) for c in exploration]
    if not keep_rest and not item_boosts and keeps_model_order(config, candidates):
        return plain_list(candidates, config, seen, lookup, explored)
    kept = keep(candidates, seen, lookup, config)
    unpinned = [(c, info) for c, info in kept if c.item_id not in pinned]
    pool = [c for c, _ in unpinned]
    infos = [info for _, info in unpinned]
    rel = relevance(pool, infos, config, now_ms)
    take = len(pool) if keep_rest else config.k - len(exploration)
    categories = [info.category if info is not None else None for info in infos]
    sim = similarity_matrix(pool, vectors) if config.lam < 1 else None
    order = mmr(rel, sim, take, config.lam, categories, config.max_per_category)
    chosen = [RankedItem(pool[i].item_id, rel[i], pool[i].source, pool[i].because) for i in order]
    if keep_rest:
        picked = set(order)
        rest = sorted((i for i in range(len(pool)) if i not in picked), key=lambda i: -rel[i])
        chosen += [
            RankedItem(pool[i].item_id, rel[i], pool[i].source, pool[i].because) for i in rest
        ]
        return chosen
    shown = chosen + explored
    if pinned:
        shown = place_pinned(shown, pinned, seen, lookup, config, config.k)
    return shown[: config.k]


def keeps_model_order(config: RerankConfig, candidates: Sequence[Candidate]) -> bool:
    """Whether the kept candidates are shown in their own order, best first, whatever the
    catalogue says of them (boosts aside: `rerank`'s ``item_boosts``): relevance only
    (``lam`` 1), no category cap, no pins, no category or freshness boosts, and
    ``candidates`` finite and best first, as the model's top-N are."""
    if config.lam < 1 or config.max_per_category or config.category_boosts:
        return False
    if config.fresh_boost or any(p < config.k for p in config.pinned.values()):
        return False
    scores = [c.score for c in candidates]
    return all(map(math.isfinite, scores)) and all(map(operator.ge, scores, scores[1:]))


def plain_list(
    candidates: Sequence[Candidate],
    config: RerankConfig,
    seen: Mapping[str, str],
    lookup: Lookup,
    explored: list[RankedItem],
) -> list[RankedItem]:
    """`rerank`'s list where it `keeps_model_order` and no item has a boost: the same list,
    made from the candidates shown and the last one kept (the low end of the scores'
    normalisation), not from all of them, then ``explored`` (`rerank`'s exploration). A
    list is made for every event, each from 50 candidates of which it shows 10, and their
    catalogue lookups were most of the re-rank stage's time in the model process
    (docs/decisions.md, "Plain lists look up only the items they show").
    """
    shown = [c for c, _ in keep(candidates, seen, lookup, config, limit=config.k - len(explored))]
    if not shown:
        return explored
    # the kept candidates' scores run from the first shown down to the last kept
    lowest = last_kept_score(candidates, seen, lookup, config)
    rel = normalise([c.score for c in shown] + [lowest])[:-1]
    return [
        RankedItem(c.item_id, r, c.source, c.because) for c, r in zip(shown, rel, strict=True)
    ] + explored


def last_kept_score(
    candidates: Sequence[Candidate], seen: Mapping[str, str], lookup: Lookup, config: RerankConfig
) -> float:
    """The score of the last candidate `keep` keeps, found from the end: with candidates
    best first, the lowest score kept.

    Raises:
        ValueError: `keep` keeps none of them.
    """
    ids = [c.item_id for c in candidates]
    for n in range(len(candidates) - 1, -1, -1):
        item_id = ids[n]
        if ids.index(item_id) == n and allowed(item_id, seen, lookup, config):
            return candidates[n].score
    raise ValueError("no candidate is kept")
