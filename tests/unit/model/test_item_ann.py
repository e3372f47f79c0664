"""The IVF item index: recall against the exact scan, exclusions, and following updates."""

from __future__ import annotations

import torch

from rtrank.model.index_bench import model_with_rows, recall, topic_rows, topic_users
from rtrank.model.item_ann import IvfConfig, IvfIndex, cells_for
from rtrank.model.serving import ItemIndex

ITEMS = 4_000
DIM = 32
TARGET_RECALL = 0.95  # issue 29's target for recall@10 against the exact top-10


def catalogue(items: int = ITEMS):
    rows, centres = topic_rows(items, DIM, seed=3)
    return model_with_rows(rows), topic_users(centres, 200, seed=4)


def test_recall_at_10_against_the_exact_scan_reaches_the_target():
    model, users = catalogue()
    truth = ItemIndex(model, shortlist=False).top_k(users, 10)[1]
    found = IvfIndex(model, IvfConfig(probe=8)).top_k(users, 10)[1]
    assert recall(found, truth) >= TARGET_RECALL


def test_scores_are_the_exact_scores_of_the_rows_found():
    model, users = catalogue()
    scores, rows = IvfIndex(model, IvfConfig()).top_k(users, 10)
    table = model.item_emb.weight
    expected = torch.einsum("bkd,bd->bk", table[rows], users)
    torch.testing.assert_close(scores, expected)
    assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_the_cells_hold_each_row_in_half_the_bytes_of_float32():
    model, _ = catalogue()
    index = IvfIndex(model, IvfConfig()).index
    assert index.code_size == DIM * 2
    assert index.ntotal == ITEMS


def test_excluded_rows_and_padding_are_never_returned():
    model, users = catalogue()
    index = IvfIndex(model, IvfConfig())
    best = index.top_k(users, 10)[1]
    exclude = [r[:7] + [0] for r in best.tolist()]
    rows = index.top_k(users, 10, exclude)[1]
    for kept, banned in zip(rows.tolist(), exclude, strict=True):
        assert not set(kept) & set(banned)
        assert len(kept) == 10


def test_a_moved_row_is_found_where_it_moved_and_not_where_it_was():
    model, users = catalogue()
    index = IvfIndex(model, IvfConfig())
    user = users[:1]
    old_best = index.top_k(user, 1)[1][0, 0].item()
    table = model.item_emb.weight
    table[old_best] = -table[old_best]  # now the worst row for this user
    table[5] = user[0] * 10  # now by far the best
    index.follow(model, torch.tensor([old_best, 5]))
    scores, rows = index.top_k(user, 10)
    assert rows[0, 0].item() == 5
    assert old_best not in rows[0].tolist()
    torch.testing.assert_close(scores[0, 0], table[5] @ user[0])


def test_new_items_are_searchable_after_growth():
    model, users = catalogue()
    index = IvfIndex(model, IvfConfig())
    grown = torch.cat([model.item_emb.weight, users[:2] * 10])
    model.item_emb = torch.nn.Embedding.from_pretrained(grown, freeze=True, padding_idx=0)
    index.follow(model, torch.empty(0, dtype=torch.int64))
    rows = index.top_k(users[:2], 1)[1]
    assert rows[:, 0].tolist() == [ITEMS + 1, ITEMS + 2]


def test_a_new_model_is_compared_row_by_row():
    model, users = catalogue()
    index = IvfIndex(model, IvfConfig())
    rows = model.item_emb.weight.clone()
    rows[9] = users[0] * 10
    index.follow(model_with_rows(rows), None)
    assert index.top_k(users[:1], 1)[1][0, 0].item() == 9


def grow(model, rows: torch.Tensor) -> None:
    table = torch.cat([model.item_emb.weight, rows])
    model.item_emb = torch.nn.Embedding.from_pretrained(table, freeze=True, padding_idx=0)


def test_centres_are_trained_again_in_the_background_when_the_catalogue_doubles():
    model, _ = catalogue(400)
    index = IvfIndex(model, IvfConfig())
    assert index.lists == cells_for(400, 0) == 10
    grow(model, model.item_emb.weight[1:])
    index.follow(model, torch.empty(0, dtype=torch.int64))
    index.settle()
    assert (index.trained_rows, index.index.ntotal, index.lists) == (400, 800, 10)
    grow(model, model.item_emb.weight[1:2])
    index.follow(model, torch.empty(0, dtype=torch.int64))
    index.settle()
    assert (index.trained_rows, index.index.ntotal, index.lists) == (801, 801, 20)


def test_rows_moved_while_the_centres_train_are_current_in_the_new_index():
    model, users = catalogue(400)
    index = IvfIndex(model, IvfConfig())
    grow(model, model.item_emb.weight[1:] * 1.01)
    grow(model, model.item_emb.weight[1:2])
    index.follow(model, torch.empty(0, dtype=torch.int64))  # 801 items: trains again
    model.item_emb.weight[7] = users[0] * 10
    index.follow(model, torch.tensor([7]))
    index.settle()
    assert index.trained_rows == 801
    assert index.top_k(users[:1], 1)[1][0, 0].item() == 7


def test_cells_grown_unbalanced_are_trained_again_and_a_few_moved_rows_are_not():
    model, users = catalogue()
    index = IvfIndex(model, IvfConfig())
    first = index.index
    table = model.item_emb.weight
    table[1:20] = users[0]
    index.follow(model, torch.arange(1, 20))
    index.settle()
    assert index.index is first
    table[1:2000] = users[0]  # half the catalogue in one cell
    index.follow(model, torch.arange(1, 2000))
    index.settle()
    assert index.index is not first
    assert index.index.ntotal == ITEMS


def test_rows_a_smaller_new_model_lacks_are_never_returned():
    model, users = catalogue()
    index = IvfIndex(model, IvfConfig())
    smaller = model.item_emb.weight[:1000].clone()
    index.follow(model_with_rows(smaller), None)
    rows = index.top_k(users, 10)[1]
    assert index.index.ntotal == 999
    assert int(rows.max()) < 1000
