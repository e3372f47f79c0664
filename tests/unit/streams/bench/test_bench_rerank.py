"""The re-rank benchmark's measures, on a tiny model (figures are never asserted)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtrank.model import synthetic
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.train import make_dataset
from rtrank.streams.bench.rerank_bench import evaluate_lambdas, intra_list_similarity


def test_identical_items_have_intra_list_similarity_one() -> None:
    assert intra_list_similarity(np.ones((3, 4))) == pytest.approx(1.0)


def test_orthogonal_items_have_intra_list_similarity_zero() -> None:
    assert intra_list_similarity(np.eye(3)) == pytest.approx(0.0)


def test_one_row_per_lambda_and_lambda_one_is_the_least_diverse() -> None:
    data = synthetic.generate(num_users=60, num_items=80, min_len=5, max_len=8, seed=1)
    dataset = make_dataset({u: [i for i, _ in evs] for u, evs in data.items()})
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=len(dataset.vocab), max_len=10, dim=16)).eval()
    rows, users = evaluate_lambdas(model, dataset, [1.0, 0.3], users=40, candidates=30)
    assert [r.lam for r in rows] == [1.0, 0.3] and users == 40
    assert rows[1].intra_list_similarity <= rows[0].intra_list_similarity
    assert all(0 <= r.ndcg <= 1 and 0 < r.coverage <= 1 for r in rows)
