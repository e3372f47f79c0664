"""What the encode cache (`rtrank.model.encode_cache`) saves and what its window restarts
cost in quality; `rtrank bench encode` prints both (no Kafka: this runs wherever torch does).

- `encode_costs`: the model's encode cost per event for users whose next event appends one
  item: with a warm cache (one position per block), beside the whole window encoded as
  without the cache (cold), and a cache miss (the whole window, its keys and values kept);
  all three timed on the same histories in the same run.
- `replay_costs`: the same warm and cold costs per event over a real replay's mix of history
  lengths (each sampled user's events in order, as a stream brings them), where most events
  follow a short history.
- `replay_slides`: Hit@10 over the whole catalogue of the next item, on a real replay of
  the users whose histories pass the window, served through the cache (which restarts the
  window from its latest half) beside full re-encoding of the latest ``max_len`` items.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from rtrank.model.encode_cache import EncodeCache, UserSequence
from rtrank.model.sasrec import SASRec
from rtrank.model.serving import ItemIndex, encode_histories
from rtrank.model.vocab import Vocabulary

UNBOUNDED = 1 << 40  # bytes: a cache that never evicts, for measuring


def encode_costs(
    model: SASRec,
    vocab: Vocabulary,
    length: int,
    users: int = 256,
    appends: int = 4,
    seed: int = 0,
) -> dict[str, float]:
    """Microseconds (CPU time on a CPU model: `_timed`) per event of encoding ``users``
    histories of ``length`` + 1 .. ``length`` + ``appends`` random items, one item
    appended per event: ``warm``
    (through a cache holding the history before the event), ``cold`` (`encode_histories`
    of the whole history, as served without the cache) and ``miss`` (the cache encoding
    the whole history of ``length`` items and keeping its keys and values); and the
    largest difference between a warm and a cold user vector; ``top_k_us``: finding each
    list's 10 items in the whole catalogue afterwards (`ItemIndex`, float32), the same
    with or without the cache, so that a list costs ``warm_us`` or ``cold_us`` plus it.

    Raises:
        ValueError: ``length + appends`` is past the model's window (the cache would
            restart, which is not what this measures).
    """
    if length + appends > model.config.max_len:
        raise ValueError(f"{length} + {appends} items pass the window of {model.config.max_len}")
    rng = np.random.default_rng(seed)
    ids = vocab.items()
    histories = [
        [ids[i] for i in rng.integers(0, len(ids), size=length + appends)] for _ in range(users)
    ]

    def at(n: int, who: str = "u") -> list[UserSequence]:
        return [UserSequence(f"{who}{u}", 0, n, h[:n]) for u, h in enumerate(histories)]

    def rows(n: int) -> list[list[int]]:
        return [vocab.rows(h[:n]) for h in histories]

    with torch.inference_mode():
        encode_histories(model, rows(length))  # first calls pay one-time costs
        EncodeCache(UNBOUNDED).encode(model, vocab, at(length))
        cache = EncodeCache(UNBOUNDED)
        miss = _timed(lambda: cache.encode(model, vocab, at(length)), model)[0]
        # other users' first warm call makes the cache's gather buffer (once per process)
        cache.encode(model, vocab, at(length, "other"))
        cache.encode(model, vocab, at(length + 1, "other"))
        items = ItemIndex(model, shortlist=False)
        warm = cold = top_k = 0.0
        diff = 0.0
        for n in range(length + 1, length + appends + 1):
            t_warm, vecs = _timed(lambda n=n: cache.encode(model, vocab, at(n)), model)
            t_cold, plain = _timed(lambda n=n: encode_histories(model, rows(n)), model)
            warm, cold = warm + t_warm, cold + t_cold
            top_k += _timed(lambda vecs=vecs: items.top_k(vecs, 10), model)[0]
            diff = max(diff, float((vecs - plain).abs().max()))
    per_event = 1e6 / (users * appends)
    return {
        "length": length,
        "users": users,
        "warm_us": warm * per_event,
        "cold_us": cold * per_event,
        "miss_us": miss * 1e6 / users,
        "top_k_us": top_k * per_event,
        "max_abs_diff": diff,
    }


def replay_costs(
    model: SASRec,
    vocab: Vocabulary,
    sequences: Mapping[str, Sequence[str]],
    users: int = 2048,
    per_call: int = 256,
    history_len: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Microseconds per event of encoding every event of ``users`` users drawn (``seed``)
    from ``sequences``, with the cache (each user's first event a miss, the others warm
    or a window restart) and without it (`encode_histories` of the whole history), on the
    same calls: in rounds, the n-th event of every user who has one, up to ``per_call``
    users a call. Histories are capped at ``history_len`` (default ``max_len``) as a
    worker caps them. Events are weighted as the replay holds them: a user with more
    events counts more, and most events follow a short history (``mean_history``).
    """
    cap = history_len or model.config.max_len
    rng = np.random.default_rng(seed)
    names = [u for u, s in sequences.items() if len(s) > 1]
    chosen = rng.choice(len(names), size=min(users, len(names)), replace=False)
    replayed = {names[n]: [i for i in sequences[names[n]] if i in vocab] for n in chosen}
    cache = EncodeCache(UNBOUNDED)
    warm = cold = 0.0
    events = positions = 0
    with torch.inference_mode():
        encode_histories(model, [vocab.rows(list(s[:1])) for s in replayed.values()])  # warm-up
        for t in range(1, max(map(len, replayed.values()), default=1) + 1):
            live = [(u, s[:t][-cap:]) for u, s in replayed.items() if len(s) >= t]
            for i in range(0, len(live), per_call):
                part = live[i : i + per_call]
                requests = [UserSequence(u, 0, t, h) for u, h in part]
                rows = [vocab.rows(h) for _, h in part]
                warm += _timed(lambda r=requests: cache.encode(model, vocab, r), model)[0]
                cold += _timed(lambda r=rows: encode_histories(model, r), model)[0]
                events += len(part)
                positions += sum(len(h) for _, h in part)
    return {
        "users": len(replayed),
        "events": events,
        "mean_window": positions / max(1, events),
        "warm_us": warm * 1e6 / max(1, events),
        "cold_us": cold * 1e6 / max(1, events),
        "cache_hits": cache.counts.hits,
        "cache_misses": cache.counts.misses,
        "cache_restarts": cache.counts.restarts,
    }


def replay_slides(
    model: SASRec,
    vocab: Vocabulary,
    sequences: Mapping[str, Sequence[str]],
    history_len: int | None = None,
    k: int = 10,
) -> dict[str, float]:
    """Replays every event of the users whose sequences pass the window, the history
    capped at ``history_len`` (default ``max_len``, the worker's default) as a worker caps
    it, and scores each next item against the whole catalogue from the vector served
    through the cache and from the whole (latest ``max_len``) window. Hit@k of both over
    the events after the window first slid, and over the events before it (where both
    must agree), with the cache's hit, miss and restart counts.
    """
    max_len = model.config.max_len
    cap = history_len or max_len
    users = {u: list(s) for u, s in sequences.items() if len(s) > max_len + 1}
    cache = EncodeCache(UNBOUNDED)
    matrix = model.item_matrix()  # (D, V)
    hits = {"slid_cached": 0, "slid_full": 0, "within_cached": 0, "within_full": 0}
    counts = {"slid": 0, "within": 0}
    with torch.inference_mode():
        for t in range(1, max(map(len, users.values()), default=1)):
            live = [(u, s) for u, s in users.items() if len(s) > t]
            targets = vocab.rows([s[t] for _, s in live])
            if len(targets) != len(live):
                live = [(u, s) for u, s in live if s[t] in vocab]
                targets = vocab.rows([s[t] for _, s in live])
            if not live:
                continue
            histories = [s[:t][-cap:] for _, s in live]
            requests = [UserSequence(u, 0, t, h) for (u, _), h in zip(live, histories, strict=True)]
            cached = cache.encode(model, vocab, requests)
            full = encode_histories(model, [vocab.rows(h) for h in histories])
            target = torch.tensor(targets, device=model.device)
            part = "slid" if t > max_len else "within"
            counts[part] += len(live)
            for name, vecs in (("cached", cached), ("full", full)):
                hits[f"{part}_{name}"] += _hits(vecs, matrix, target, k)
    out = {f"{part}_events": n for part, n in counts.items()}
    out.update(
        {name: h / max(1, counts[name.split("_")[0]]) for name, h in hits.items()},
        users=len(users),
        cache_hits=cache.counts.hits,
        cache_misses=cache.counts.misses,
        cache_restarts=cache.counts.restarts,
    )
    return out


def _hits(vecs: torch.Tensor, matrix: torch.Tensor, target: torch.Tensor, k: int) -> int:
    """How many users rank their target among their top ``k`` of the catalogue."""
    scores = vecs @ matrix  # (B, V)
    scores[:, 0] = float("-inf")
    mine = scores.gather(1, target[:, None])  # (B, 1)
    return int(((scores > mine).sum(1) < k).sum())


def _timed(fn, model: SASRec) -> tuple[float, torch.Tensor]:
    """(seconds, result) of ``fn()``: CPU seconds of this process on a CPU model (what the
    call costs the model process's core, whatever else the machine runs meanwhile),
    wall-clock seconds with CUDA work synchronised on a GPU."""
    cuda = model.device.type == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    started = clock()
    out = fn()
    if cuda:
        torch.cuda.synchronize()
    return clock() - started, out
