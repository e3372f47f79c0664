"""Evaluation protocols: sampled-100 candidates and full ranking."""

from __future__ import annotations

import torch

from rtrank.model.data import leave_one_out
from rtrank.model.evaluate import evaluate, make_eval_set


def _split(num_users: int = 20, num_items: int = 300):
    g = torch.Generator().manual_seed(0)
    seqs = {
        f"u{u}": torch.randperm(num_items - 1, generator=g)[:6].add(1).tolist()
        for u in range(num_users)
    }
    return leave_one_out(seqs)


def test_sampled100_draws_100_distinct_unseen_items_per_user():
    split = _split()
    es = make_eval_set(split, "test", "sampled100", num_rows=300, seed=0)
    assert es.candidates.shape == (20, 101)
    for u, row in zip(split.test, es.candidates.tolist(), strict=True):
        seen = set(split.train[u]) | {split.valid[u], split.test[u]}
        assert row[0] == split.test[u]
        assert len(set(row[1:])) == 100
        assert not set(row[1:]) & seen
        assert 0 not in row


def test_sampled100_is_fixed_by_the_seed():
    split = _split()
    a = make_eval_set(split, "test", "sampled100", 300, seed=3).candidates
    b = make_eval_set(split, "test", "sampled100", 300, seed=3).candidates
    c = make_eval_set(split, "test", "sampled100", 300, seed=4).candidates
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_small_catalogue_samples_what_exists():
    split = _split(num_users=3, num_items=40)
    es = make_eval_set(split, "valid", "sampled100", 40, seed=0)
    assert ((es.candidates[:, 1:] >= 0).sum(1) == 39 - 6).all()


def test_oracle_scorer_is_perfect_under_both_protocols():
    split = _split()
    for protocol in ("sampled100", "full"):
        es = make_eval_set(split, "test", protocol, 300)
        targets = dict(zip(map(tuple, es.histories), es.targets.tolist(), strict=True))

        def oracle(histories, targets=targets):
            s = torch.zeros(len(histories), 300)
            for i, h in enumerate(histories):
                s[i, targets[tuple(h)]] = 1.0
            return s

        m = evaluate(oracle, es)
        assert (m.hit, m.ndcg, m.mrr, m.users) == (1.0, 1.0, 1.0, 20)


def test_constant_scorer_gets_the_worst_rank_under_full():
    split = _split()
    m = evaluate(lambda h: torch.zeros(len(h), 300), make_eval_set(split, "test", "full", 300))
    assert m.hit == 0.0
