"""The served model: one batched call gives the same lists as one call per user."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rtrank.model.checkpoint import save_checkpoint
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.vocab import Vocabulary
from rtrank.streams.scorer.scoring import Scorer, ScoreRequest

ITEMS = [f"item-{n}" for n in range(40)]


def small_checkpoint(tmp_path: Path) -> str:
    torch.manual_seed(0)
    vocab = Vocabulary(ITEMS)
    model = SASRec(SASRecConfig(num_items=len(vocab), max_len=8, dim=16, dropout=0.0))
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model, vocab, version=3, data_fingerprint="test")
    return str(path)


@pytest.fixture
def scorer(tmp_path: Path) -> Scorer:
    return Scorer.setup(small_checkpoint(tmp_path), "cpu")


def requests() -> list[ScoreRequest]:
    return [
        ScoreRequest(["item-1", "item-2", "item-3"], ["item-1", "item-2", "item-3"]),
        ScoreRequest(["item-9"], ["item-9"]),
        ScoreRequest([f"item-{n}" for n in range(12)], [f"item-{n}" for n in range(12)]),
        ScoreRequest(["never-seen-item"], []),
    ]


def test_batched_and_one_by_one_inference_give_the_same_lists(scorer: Scorer) -> None:
    batched = scorer.recommend(requests(), k=10)
    single = [scorer.recommend([r], k=10)[0] for r in requests()]
    assert [[i for i, _ in lst] for lst in batched] == [[i for i, _ in lst] for lst in single]
    for a, b in zip(batched, single, strict=True):
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-4)


def test_batches_of_more_users_than_one_model_call_takes_give_the_same_lists(
    tmp_path: Path,
) -> None:
    path = small_checkpoint(tmp_path)
    whole = Scorer.setup(path, "cpu", max_users=len(requests()))
    in_calls_of_one = Scorer.setup(path, "cpu", max_users=1)
    chunked = in_calls_of_one.recommend(requests(), k=10)
    at_once = whole.recommend(requests(), k=10)
    assert [[i for i, _ in lst] for lst in chunked] == [[i for i, _ in lst] for lst in at_once]


def test_a_model_call_needs_room_for_one_user() -> None:
    with pytest.raises(ValueError, match="at least one user"):
        Scorer.setup("", "cpu", max_users=0)


def test_lists_have_k_distinct_items_none_excluded(scorer: Scorer) -> None:
    for request, items in zip(requests(), scorer.recommend(requests(), k=10), strict=True):
        ids = [i for i, _ in items]
        assert len(ids) == 10 == len(set(ids))
        assert not set(ids) & set(request.exclude)


def test_scores_are_sorted_best_first(scorer: Scorer) -> None:
    for items in scorer.recommend(requests(), k=10):
        scores = [s for _, s in items]
        assert scores == sorted(scores, reverse=True)


def test_list_is_shorter_only_when_exclusions_leave_fewer_than_k(scorer: Scorer) -> None:
    [items] = scorer.recommend([ScoreRequest(ITEMS[:5], ITEMS[:35])], k=10)
    assert sorted(i for i, _ in items) == sorted(ITEMS[35:])


def test_checkpoint_version_is_the_served_version(scorer: Scorer) -> None:
    assert scorer.version == 3


def test_untrained_model_learns_the_catalogue_from_the_stream() -> None:
    scorer = Scorer.setup("", "cpu", seed=1)
    [items] = scorer.recommend([ScoreRequest(["a", "b", "c", "d"], ["a"])], k=2)
    assert len(items) == 2
    assert {i for i, _ in items} <= {"b", "c", "d"}
    assert len(scorer.vocab) == 5
