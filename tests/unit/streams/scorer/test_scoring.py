"""The served model: one batched call gives the same lists as one call per user."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from rtrank.model.checkpoint import save_checkpoint
from rtrank.model.item_ann import IvfIndex
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.serving import SHORT_ITEMS_STEP, encode_histories
from rtrank.model.updates import Delta, make_snapshot
from rtrank.model.vocab import Vocabulary
from rtrank.streams.scorer.model_wire import ScoreRequest
from rtrank.streams.scorer.scoring import Scorer

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


def test_items_learned_past_the_shortlist_width_are_recommended() -> None:
    scorer = Scorer.setup("", "cpu", seed=1, shortlist="on")
    first = [f"old-{n}" for n in range(SHORT_ITEMS_STEP - 1)]  # and the padding row
    scorer.recommend([ScoreRequest(first, [])], k=1)
    width = scorer.items.short.shape[0]
    [items] = scorer.recommend([ScoreRequest(["new-1", "new-2"], first)], k=2)
    assert scorer.items.short.shape[0] > width
    assert {i for i, _ in items} == {"new-1", "new-2"}


def stream_of_requests(rounds: int) -> list[list[ScoreRequest]]:
    """Three users' requests after each round of events (histories within max_len 8);
    one user has no event in the second round, one has two in the third."""
    histories: dict[str, list[str]] = {"u1": [], "u2": [], "u3": []}
    calls = []
    for n in range(rounds):
        for user in histories:
            if (n, user) != (1, "u2"):
                histories[user] = histories[user] + [f"item-{(7 * n + len(user) * 3) % 40}"]
        if n == 2:
            histories["u3"] = histories["u3"] + ["never-seen-item", "item-5"]
        calls.append(
            [ScoreRequest(list(h), list(h), "", user, 0, len(h)) for user, h in histories.items()]
        )
    return calls


def test_lists_served_through_the_encode_cache_equal_lists_without_it(tmp_path: Path) -> None:
    path = small_checkpoint(tmp_path)
    cached, plain = Scorer.setup(path, "cpu", cache_mb=1), Scorer.setup(path, "cpu")
    for call in stream_of_requests(6):
        with_cache, without = cached.recommend(call, k=10), plain.recommend(call, k=10)
        assert [[i for i, _ in lst] for lst in with_cache] == [
            [i for i, _ in lst] for lst in without
        ]
        for a, b in zip(with_cache, without, strict=True):
            assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-4)
    assert cached.cache.counts.hits >= 12 and len(plain.cache) == 0


def test_an_applied_model_update_empties_the_encode_cache(tmp_path: Path) -> None:
    path = small_checkpoint(tmp_path)
    cached = Scorer.setup(path, "cpu", cache_mb=1)
    calls = stream_of_requests(3)
    cached.recommend(calls[0], k=10)
    with torch.no_grad():
        retrained = copy.deepcopy(cached.model)
        for p in retrained.blocks.parameters():
            p.add_(0.05)
    cached.apply(make_snapshot(retrained, cached.vocab, cached.version + 1))
    assert len(cached.cache) == 0
    fresh = Scorer(retrained.eval(), cached.vocab, cached.version, False)
    assert cached.recommend(calls[1], k=10) == fresh.recommend(calls[1], k=10)


def test_forgetting_a_partition_drops_its_users_from_the_encode_cache(tmp_path: Path) -> None:
    scorer = Scorer.setup(small_checkpoint(tmp_path), "cpu", cache_mb=1)
    scorer.recommend(
        [ScoreRequest(["item-1"], [], "", u, p, 1) for u, p in (("a", 0), ("b", 1), ("c", 0))],
        k=5,
    )
    assert scorer.forget_partitions({0}) == 2
    assert ("a" in scorer.cache, "b" in scorer.cache, "c" in scorer.cache) == (False, True, False)


def test_a_model_counting_positions_from_the_end_serves_without_the_encode_cache(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    config = SASRecConfig(num_items=len(ITEMS) + 1, max_len=8, dim=16, positions="from_end")
    path = tmp_path / "old.safetensors"
    save_checkpoint(path, SASRec(config), Vocabulary(ITEMS), version=1, data_fingerprint="t")
    scorer = Scorer.setup(str(path), "cpu", cache_mb=1)
    for call in stream_of_requests(2):
        scorer.recommend(call, k=5)
    assert len(scorer.cache) == 0


def test_forgetting_a_user_drops_them_from_the_encode_cache(tmp_path: Path) -> None:
    scorer = Scorer.setup(small_checkpoint(tmp_path), "cpu", cache_mb=1)
    scorer.recommend([ScoreRequest(["item-1"], [], "", u, 0, 1) for u in ("a", "b")], k=5)
    assert scorer.forget_users(["a"]) == 1
    assert ("a" in scorer.cache, "b" in scorer.cache) == (False, True)


def test_an_item_row_update_keeps_the_cached_users_whose_window_it_does_not_touch(
    tmp_path: Path,
) -> None:
    path = small_checkpoint(tmp_path)
    cached, plain = Scorer.setup(path, "cpu", cache_mb=1), Scorer.setup(path, "cpu")
    first = [ScoreRequest(["item-1", "item-2"], [], "", "a", 0, 2)]
    first.append(ScoreRequest(["item-3", "item-4"], [], "", "b", 0, 2))
    cached.recommend(first, k=5)
    row = cached.vocab.row("item-4")
    values = cached.model.item_emb.weight[[row]].detach() + 0.5
    for scorer in (cached, plain):
        scorer.apply(Delta(4, 3, len(scorer.vocab), [], {}, torch.tensor([row]), values.clone()))
    assert ("a" in cached.cache, "b" in cached.cache) == (True, False)
    after = [ScoreRequest(r.history + ["item-5"], [], "", r.user_id, 0, 3) for r in first]
    assert [[i for i, _ in lst] for lst in cached.recommend(after, k=10)] == [
        [i for i, _ in lst] for lst in plain.recommend(after, k=10)
    ]
    assert cached.cache.counts.hits == 1


def test_lists_through_the_ivf_index_follow_an_item_row_update(tmp_path: Path) -> None:
    path = small_checkpoint(tmp_path)
    indexed, exact = Scorer.setup(path, "cpu", item_index="ivf"), Scorer.setup(path, "cpu")
    assert isinstance(indexed.items, IvfIndex)
    row = indexed.vocab.row("item-30")
    new = ScoreRequest(["item-1"], ["item-1"])
    values = user_vector(indexed, new) * 10  # item-30 becomes the best row for this user
    for scorer in (indexed, exact):
        scorer.apply(Delta(4, 3, len(scorer.vocab), [], {}, torch.tensor([row]), values.clone()))
    lists = indexed.recommend(requests() + [new], k=10)
    expected = exact.recommend(requests() + [new], k=10)
    assert [[i for i, _ in items] for items in lists] == [[i for i, _ in e] for e in expected]
    for items, e in zip(lists, expected, strict=True):  # the index's sums round differently
        assert [s for _, s in items] == pytest.approx([s for _, s in e], rel=1e-5)
    assert lists[-1][0][0] == "item-30"


def test_an_unknown_item_index_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown item index 'hnsw'"):
        Scorer.setup(small_checkpoint(tmp_path), "cpu", item_index="hnsw")


def test_an_item_a_model_update_adds_is_found_through_the_ivf_index(tmp_path: Path) -> None:
    indexed = Scorer.setup(small_checkpoint(tmp_path), "cpu", item_index="ivf")
    new = ScoreRequest(["item-1"], ["item-1"])
    values = user_vector(indexed, new) * 10
    row = len(indexed.vocab)
    indexed.apply(Delta(4, 3, row, ["item-new"], {}, torch.tensor([row]), values))
    assert indexed.recommend([new], k=3)[0][0][0] == "item-new"


def user_vector(scorer: Scorer, request: ScoreRequest) -> torch.Tensor:
    return encode_histories(scorer.model, [scorer.vocab.rows(request.history)]).detach()
