"""Baselines score like their definitions say."""

from __future__ import annotations

from rtrank.model.baselines import Popular, Transitions


def test_popular_scores_training_counts_and_never_padding():
    scores = Popular([[1, 2, 2], [2, 3]], num_rows=5)([[1]])
    assert scores[0].tolist() == [0.0, 1.0, 3.0, 1.0, 0.0]


def test_transitions_rank_observed_successors_first():
    model = Transitions([[1, 2], [1, 2], [1, 3], [4, 4, 4]], num_rows=5)
    scores = model([[9, 1]])[0]
    assert scores.argsort(descending=True)[:2].tolist() == [2, 3]


def test_transitions_fall_back_to_popularity_for_an_unseen_last_item():
    model = Transitions([[1, 2], [3, 2], [4, 2]], num_rows=6)
    scores = model([[5]])[0]
    assert scores.argmax().item() == 2  # most popular
