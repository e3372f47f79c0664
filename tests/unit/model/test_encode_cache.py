"""EncodeCache: cached keys and values give the lists of encoding the whole window; misses,
window slides and weight changes fall back to full encodes; the byte bound holds (LRU)."""

from __future__ import annotations

import random

import pytest
import torch

from rtrank.model.encode_cache import EncodeCache, UserSequence
from rtrank.model.serving import encode_histories

MB = 1 << 20


def full(model, vocab, histories):
    return encode_histories(model, [vocab.rows(h) for h in histories])


def grow(history, events, item, history_len=10):
    """The caller's side: one event appended, the history capped as the worker caps it."""
    return (history + [item])[-history_len:], events + 1


def test_lists_with_the_cache_equal_lists_without_it_for_histories_within_the_window(
    tiny_model, tiny_vocab
):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)  # max_len 10
    cache = EncodeCache(64 * MB)
    rng = random.Random(1)
    state = {u: ([], 0) for u in ("a", "b", "c", "d")}
    for _ in range(9):
        for user in rng.sample(sorted(state), 3):  # some users have no event in a call
            for _ in range(rng.choice([1, 1, 2])):  # and some several
                if len(state[user][0]) < 10:  # within the window
                    state[user] = grow(*state[user], f"item-{rng.randrange(30)}")
        users = [UserSequence(u, 0, n, h) for u, (h, n) in state.items() if h]
        cached = cache.encode(model, vocab, users)
        plain = full(model, vocab, [u.history for u in users])
        torch.testing.assert_close(cached, plain, rtol=1e-4, atol=1e-5)
        assert model.top_k(cached, 5)[1].tolist() == model.top_k(plain, 5)[1].tolist()
    assert cache.counts.hits > 10 and cache.counts.restarts == 0


def test_a_user_not_in_the_cache_is_encoded_whole(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)
    cache = EncodeCache(64 * MB)
    history = ["item-1", "item-2", "item-3"]
    vec = cache.encode(model, vocab, [UserSequence("u", 0, 3, history)])
    torch.testing.assert_close(vec, full(model, vocab, [history]))
    assert (cache.counts.misses, cache.counts.hits) == (1, 0) and "u" in cache


def test_a_history_that_does_not_extend_the_cached_one_is_encoded_whole(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)
    cache = EncodeCache(64 * MB)
    cache.encode(model, vocab, [UserSequence("u", 0, 2, ["item-1", "item-2"])])
    other = ["item-5", "item-6", "item-7"]  # three events, but not after item-1, item-2
    vec = cache.encode(model, vocab, [UserSequence("u", 0, 3, other)])
    torch.testing.assert_close(vec, full(model, vocab, [other]))
    assert (cache.counts.misses, cache.counts.hits) == (2, 0)


def test_when_the_window_slides_the_latest_half_window_is_encoded_afresh(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)  # max_len 10
    cache = EncodeCache(64 * MB)
    history, events = [f"item-{i}" for i in range(10)], 10
    cache.encode(model, vocab, [UserSequence("u", 0, events, history)])
    history, events = grow(history, events, "item-20")  # 11 items: the oldest dropped
    vec = cache.encode(model, vocab, [UserSequence("u", 0, events, history)])
    assert cache.counts.restarts == 1
    torch.testing.assert_close(vec, full(model, vocab, [history[-5:]]))
    for item in ("item-21", "item-22"):  # then events append to the restarted window again
        history, events = grow(history, events, item)
        vec = cache.encode(model, vocab, [UserSequence("u", 0, events, history)])
        torch.testing.assert_close(vec, full(model, vocab, [history[-(5 + events - 11) :]]))
    assert (cache.counts.hits, cache.counts.restarts) == (2, 1)


def test_after_clear_every_user_is_encoded_whole_with_the_new_weights(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)
    cache = EncodeCache(64 * MB)
    history = ["item-1", "item-2"]
    cache.encode(model, vocab, [UserSequence("u", 0, 2, history)])
    with torch.no_grad():
        for p in model.blocks.parameters():
            p.add_(0.1)
    cache.clear()
    history, events = grow(history, 2, "item-3")
    vec = cache.encode(model, vocab, [UserSequence("u", 0, events, history)])
    torch.testing.assert_close(vec, full(model, vocab, [history]))
    assert (cache.counts.misses, cache.counts.hits) == (2, 0)


def test_the_cache_keeps_within_its_bytes_dropping_the_least_recently_used(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)
    user_bytes = (10 * model.kv_width + 16) * 4 + 10 * 8  # max_len positions, their items, a vector
    cache = EncodeCache(2 * user_bytes + user_bytes // 2)  # room for two users
    cache.encode(model, vocab, [UserSequence(u, 0, 1, ["item-1"]) for u in ("a", "b")])
    cache.encode(model, vocab, [UserSequence("a", 0, 1, ["item-1"])])  # a: the most recent
    cache.encode(model, vocab, [UserSequence("c", 0, 1, ["item-2"])])
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    assert cache.bytes <= cache.max_bytes and cache.counts.evictions == 1


def test_a_cache_of_zero_bytes_keeps_no_user(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)
    cache = EncodeCache(0)
    vec = cache.encode(model, vocab, [UserSequence("u", 0, 1, ["item-1"])])
    torch.testing.assert_close(vec, full(model, vocab, [["item-1"]]))
    assert len(cache) == 0 and cache.bytes == 0


def test_forgetting_a_group_drops_its_users_only(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)
    cache = EncodeCache(64 * MB)
    users = [UserSequence(u, g, 1, ["item-1"]) for u, g in (("a", 0), ("b", 1), ("c", 2))]
    cache.encode(model, vocab, users)
    assert cache.forget_groups({0, 2}) == 2
    assert ("a" in cache, "b" in cache, "c" in cache) == (False, True, False)
    vec = cache.encode(model, vocab, [UserSequence("b", 1, 2, ["item-1", "item-2"])])
    torch.testing.assert_close(vec, full(model, vocab, [["item-1", "item-2"]]))
    assert cache.counts.hits == 1


def test_a_negative_bound_is_refused():
    with pytest.raises(ValueError, match="bytes"):
        EncodeCache(-1)


def test_a_user_asked_twice_in_one_call_gets_the_same_vector_twice(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)
    cache = EncodeCache(64 * MB)
    twice = [UserSequence("u", 0, 2, ["item-1", "item-2"])] * 2
    vecs = cache.encode(model, vocab, twice)
    torch.testing.assert_close(vecs[0], vecs[1])
    assert len(cache) == 1


def test_slots_freed_by_forgotten_users_serve_new_users_exactly(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)
    user_bytes = (10 * model.kv_width + 16) * 4 + 10 * 8
    cache = EncodeCache(2 * user_bytes)
    long = [f"item-{i}" for i in range(9)]
    cache.encode(model, vocab, [UserSequence(u, 0, 9, long) for u in ("a", "b")])
    cache.forget_groups({0})
    short = ["item-3"]
    cache.encode(model, vocab, [UserSequence("c", 1, 1, short)])  # a slot with a's leftovers
    vec = cache.encode(model, vocab, [UserSequence("c", 1, 2, short + ["item-4"])])
    torch.testing.assert_close(vec, full(model, vocab, [short + ["item-4"]]))
    assert (cache.counts.hits, cache.bytes <= cache.max_bytes) == (1, True)


def test_forgetting_users_drops_them_only(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)
    cache = EncodeCache(64 * MB)
    cache.encode(model, vocab, [UserSequence(u, 0, 1, ["item-1"]) for u in ("a", "b")])
    assert cache.forget_users(["a", "stranger"]) == 1
    assert ("a" in cache, "b" in cache) == (False, True)


def test_an_item_row_update_drops_only_the_users_whose_window_holds_a_changed_row(
    tiny_model, tiny_vocab
):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)
    cache = EncodeCache(64 * MB)
    histories = {"a": ["item-1", "item-2"], "b": ["item-3", "item-4"]}
    cache.encode(model, vocab, [UserSequence(u, 0, 2, h) for u, h in histories.items()])
    changed = torch.tensor(vocab.rows(["item-4", "item-9"]))
    with torch.no_grad():
        model.item_emb.weight[changed] += 0.5
    assert cache.forget_items(changed) == 1
    assert ("a" in cache, "b" in cache) == (True, False)
    grown = {u: h + ["item-5"] for u, h in histories.items()}
    vecs = cache.encode(model, vocab, [UserSequence(u, 0, 3, h) for u, h in grown.items()])
    torch.testing.assert_close(vecs, full(model, vocab, list(grown.values())))
    assert (cache.counts.hits, cache.counts.misses) == (1, 3)


def test_an_item_update_drops_the_users_whose_window_skipped_ids_unknown_then(
    tiny_model, tiny_vocab
):
    model, vocab = tiny_model(num_items=30), tiny_vocab(29)  # item-29 unknown: its row unused
    cache = EncodeCache(64 * MB)
    users = [UserSequence("a", 0, 2, ["item-29", "item-1"]), UserSequence("b", 0, 1, ["item-2"])]
    cache.encode(model, vocab, users)
    vocab.add("item-29")
    assert cache.forget_items(torch.tensor([vocab.row("item-29")])) == 1
    assert ("a" in cache, "b" in cache) == (False, True)
