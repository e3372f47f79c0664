"""The encode benchmark's measures, on a tiny model (figures are never asserted)."""

from __future__ import annotations

import random

import pytest

from rtrank.model.encode_bench import encode_costs, replay_costs, replay_slides


def test_encode_costs_times_warm_cold_and_miss_on_the_same_histories(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)  # max_len 10
    costs = encode_costs(model, vocab, length=4, users=8, appends=3)
    assert (costs["length"], costs["users"]) == (4, 8)
    assert all(costs[k] > 0 for k in ("warm_us", "cold_us", "miss_us", "top_k_us"))
    assert costs["max_abs_diff"] < 1e-4  # warm and cold vectors agree


def test_encode_costs_refuse_histories_that_would_pass_the_window(tiny_model, tiny_vocab):
    with pytest.raises(ValueError, match="window"):
        encode_costs(tiny_model(num_items=30), tiny_vocab(30), length=8, appends=3)


def test_a_replay_agrees_within_the_window_and_counts_the_restarts_past_it(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)  # max_len 10
    rng = random.Random(0)
    sequences = {
        "long": [f"item-{rng.randrange(30)}" for _ in range(25)],
        "also-long": [f"item-{rng.randrange(30)}" for _ in range(14)],
        "short": ["item-1", "item-2", "item-3"],  # never passes the window: not replayed
    }
    r = replay_slides(model, vocab, sequences)
    assert r["users"] == 2
    assert r["within_events"] == 2 * 10 and r["slid_events"] == (24 - 10) + (13 - 10)
    assert r["within_cached"] == r["within_full"]
    assert r["cache_restarts"] >= 2 and r["cache_misses"] == 2


def test_a_replay_mix_encodes_every_event_of_the_drawn_users_warm_and_cold(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)  # max_len 10
    rng = random.Random(0)
    sequences = {f"u{n}": [f"item-{rng.randrange(30)}" for _ in range(n + 2)] for n in range(12)}
    r = replay_costs(model, vocab, sequences, users=5, per_call=2)
    drawn = r["users"]
    assert drawn == 5
    assert r["cache_misses"] == drawn  # each drawn user's first event
    assert r["events"] == r["cache_hits"] + r["cache_misses"] + r["cache_restarts"]
    assert r["warm_us"] > 0 and r["cold_us"] > 0
    assert 1 <= r["mean_window"] <= 10


def test_a_replay_mix_draws_the_same_users_for_the_same_seed(tiny_model, tiny_vocab):
    model, vocab = tiny_model(num_items=30), tiny_vocab(30)
    sequences = {f"u{n}": [f"item-{k % 30}" for k in range(n + 2)] for n in range(20)}
    first = replay_costs(model, vocab, sequences, users=4, seed=3)
    again = replay_costs(model, vocab, sequences, users=4, seed=3)
    assert (first["events"], first["mean_window"]) == (again["events"], again["mean_window"])
