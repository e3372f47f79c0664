"""Metric functions against hand-computed values (ranks are 0-based)."""

from __future__ import annotations

import math

import pytest
import torch

from rtrank.model.evaluate import hit_at_k, mrr, ndcg_at_k, ranks_full, ranks_sampled


def test_hit_at_k_counts_ranks_below_k():
    assert hit_at_k(torch.tensor([0, 9, 10, 50]), 10) == 0.5


def test_ndcg_at_k_by_hand():
    # rank 0 -> 1, rank 1 -> 1/log2(3), rank 10 -> 0 (outside the top 10)
    expected = (1 + 1 / math.log2(3) + 0) / 3
    assert ndcg_at_k(torch.tensor([0, 1, 10]), 10) == pytest.approx(expected)


def test_mrr_by_hand():
    assert mrr(torch.tensor([0, 1, 3])) == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)


def test_sampled_rank_counts_candidates_scoring_higher():
    scores = torch.tensor([[0.0, 0.9, 0.1, 0.5, 0.7]])
    candidates = torch.tensor([[3, 1, 2, 4]])  # target row 3 (0.5) vs 0.9, 0.1, 0.7
    assert ranks_sampled(scores, candidates).tolist() == [2]


def test_sampled_rank_counts_ties_against_the_target():
    scores = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    assert ranks_sampled(scores, torch.tensor([[1, 2, 3]])).tolist() == [2]


def test_sampled_rank_ignores_missing_candidates():
    scores = torch.tensor([[0.0, 0.1, 0.9]])
    assert ranks_sampled(scores, torch.tensor([[1, 2, -1, -1]])).tolist() == [1]


def test_full_rank_leaves_out_padding_and_excluded_rows():
    scores = torch.tensor([[9.0, 0.8, 0.9, 0.5, 0.7]])
    # target row 3 (0.5): rows 1 (0.8) and 4 (0.7) beat it; row 2 (0.9) is excluded
    assert ranks_full(scores, torch.tensor([3]), [[2]]).tolist() == [2]


def test_full_rank_keeps_the_target_even_if_seen_before():
    scores = torch.tensor([[0.0, 0.1, 0.9]])
    assert ranks_full(scores, torch.tensor([2]), [[2]]).tolist() == [0]
