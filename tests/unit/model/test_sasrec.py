"""SASRec: shapes, losses, padding independence, growth."""

from __future__ import annotations

from copy import deepcopy

import pytest
import torch

from rtrank.model.checkpoint import load_checkpoint, save_checkpoint
from rtrank.model.sasrec import (
    Dropout,
    SASRec,
    SASRecConfig,
    exclude_rows,
    listed_rows,
    table_rows,
)
from rtrank.model.vocab import Vocabulary


def test_forward_without_targets_gives_latest_position_logits_with_padding_at_minus_inf(tiny_model):
    model = tiny_model(num_items=30)
    logits, loss = model(torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]]))
    assert logits.shape == (2, 31)
    assert loss is None
    assert torch.isinf(logits[:, 0]).all()


@pytest.mark.parametrize("loss", ["ce", "sampled"])
def test_forward_with_targets_scores_only_non_pad_positions(tiny_model, loss):
    model = tiny_model(num_items=30, loss=loss, num_negatives=8)
    seqs = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]])
    targets = torch.tensor([[0, 0, 4, 5], [2, 3, 4, 5]])
    logits, value = model(seqs, targets)
    assert logits.shape[0] == 6  # 2 + 4 target positions
    assert logits.shape[1] == (31 if loss == "ce" else 9)
    assert value.ndim == 0 and torch.isfinite(value)


def test_loss_backpropagates_to_item_embeddings(tiny_model):
    model = tiny_model(num_items=30).train()
    _, loss = model(torch.tensor([[1, 2, 3]]), torch.tensor([[2, 3, 4]]))
    loss.backward()
    assert model.item_emb.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("positions", ["from_start", "from_end"])
def test_left_padding_width_does_not_change_the_user_vector(tiny_model, positions):
    model = tiny_model(num_items=30, positions=positions)
    narrow = model.encode(torch.tensor([[5, 6, 7]]))
    wide = model.encode(torch.tensor([[0, 0, 0, 0, 0, 5, 6, 7]]))
    torch.testing.assert_close(narrow, wide, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("positions", ["from_start", "from_end"])
def test_history_longer_than_max_len_reads_only_the_latest_items(tiny_model, positions):
    model = tiny_model(num_items=30, positions=positions)  # max_len 10
    latest = list(range(11, 21))
    torch.testing.assert_close(
        model.encode(torch.tensor([[1, 2, 3] + latest])), model.encode(torch.tensor([latest]))
    )


def test_all_padding_row_gives_finite_output(tiny_model):
    model = tiny_model(num_items=30)
    assert torch.isfinite(model.encode(torch.tensor([[0, 0, 0], [0, 1, 2]]))).all()


def test_encode_restores_training_mode(tiny_model):
    model = tiny_model().train()
    model.encode(torch.tensor([[1, 2]]))
    assert model.training


def test_encode_leaves_a_served_model_in_eval_mode_and_gives_the_training_models_vector(
    tiny_model,
):
    model = tiny_model().train()
    seqs = torch.tensor([[1, 2, 3]])
    from_training = model.encode(seqs)
    model.eval()
    assert torch.equal(model.encode(seqs), from_training)
    assert not model.training


def test_grow_keeps_existing_rows_and_adds_finite_new_ones(tiny_model):
    model = tiny_model(num_items=30)
    before = model.item_emb.weight.detach().clone()
    model.grow(41)
    after = model.item_emb.weight.detach()
    assert after.shape == (41, before.shape[1])
    assert model.config.num_items == 41
    torch.testing.assert_close(after[:31], before)
    assert torch.isfinite(after[31:]).all() and after[31:].abs().sum() > 0


def test_grown_rows_have_the_per_dimension_mean_and_spread_of_the_existing_items(tiny_model):
    model = tiny_model(num_items=5000)  # more rows than the statistics are sampled from
    with torch.no_grad():
        model.item_emb.weight[1:] = 3.0 + 0.5 * torch.randn(5000, model.config.dim)
    model.grow(10001)
    fresh = model.item_emb.weight.detach()[5001:]
    torch.testing.assert_close(
        fresh.mean(0), torch.full((model.config.dim,), 3.0), atol=0.05, rtol=0
    )
    torch.testing.assert_close(
        fresh.std(0), torch.full((model.config.dim,), 0.5), atol=0.05, rtol=0
    )


def test_growing_again_keeps_rows_written_since_the_last_growth(tiny_model):
    model = tiny_model(num_items=30)
    model.grow(40)
    with torch.no_grad():
        model.item_emb.weight[35] = 7.0
    before = model.item_emb.weight.detach().clone()
    model.grow(41)
    torch.testing.assert_close(model.item_emb.weight.detach()[:40], before)


def test_growing_a_cast_model_keeps_its_rows_and_type(tiny_model):
    model = tiny_model(num_items=30)
    model.grow(40)
    model.double()
    before = model.item_emb.weight.detach().clone()
    model.grow(45)
    assert model.item_emb.weight.dtype == torch.float64
    torch.testing.assert_close(model.item_emb.weight.detach()[:40], before)


def test_growing_a_copy_leaves_the_original_alone(tiny_model):
    model = tiny_model(num_items=30)
    model.grow(40)
    original = model.item_emb.weight.detach().clone()
    copy = deepcopy(model)
    with torch.no_grad():
        copy.item_emb.weight[5] = 7.0
    copy.grow(41)
    assert (copy.item_emb.weight.detach()[5] == 7.0).all()
    torch.testing.assert_close(model.item_emb.weight.detach(), original)


def test_a_grown_model_round_trips_through_a_checkpoint(tiny_model, tmp_path):
    model = tiny_model(num_items=30)
    model.grow(40)
    vocab = Vocabulary([f"i{n}" for n in range(1, 40)])
    save_checkpoint(tmp_path / "m.safetensors", model, vocab, version=1, data_fingerprint="t")
    loaded = load_checkpoint(tmp_path / "m.safetensors").model
    assert torch.equal(loaded.item_emb.weight.detach(), model.item_emb.weight.detach())


def test_grown_rows_are_trained_like_the_others(tiny_model):
    model = tiny_model(num_items=30)
    model.grow(40)
    assert model.item_emb.weight.requires_grad
    assert model.item_emb.padding_idx == 0


def test_grow_keeps_old_user_scores(tiny_model):
    model = tiny_model(num_items=30)
    seqs = torch.tensor([[1, 2, 3]])
    before = model.scores(model.encode(seqs))
    model.grow(40)
    torch.testing.assert_close(model.scores(model.encode(seqs))[:, :31], before)


def test_grow_refuses_to_shrink(tiny_model):
    with pytest.raises(ValueError):
        tiny_model(num_items=30).grow(10)


def test_config_rejects_unknown_loss():
    with pytest.raises(ValueError, match="loss"):
        SASRecConfig(num_items=10, loss="bpr")


def test_new_model_keeps_padding_row_zero():
    model = SASRec(SASRecConfig(num_items=10))
    assert model.item_emb.weight[0].abs().sum() == 0


def test_serving_the_last_position_only_gives_the_full_trunks_last_output(tiny_model):
    model = tiny_model(num_items=30).eval()
    seqs = torch.tensor([[0, 0, 3, 4, 9], [1, 2, 3, 4, 5], [0, 0, 0, 0, 7]])
    with torch.no_grad():
        full = model.hidden(seqs)[:, -1, :]
        last = model.hidden(seqs, last_only=True)
    assert last.shape == (3, 1, full.shape[1])
    torch.testing.assert_close(last[:, 0, :], full, rtol=1e-5, atol=1e-6)


def test_a_row_subset_table_gives_the_same_output_as_the_whole_table(tiny_model):
    model = tiny_model(num_items=30).eval()
    used = torch.tensor([0, 3, 4, 9])  # sorted, padding first
    seqs = torch.tensor([[0, 3, 4, 9], [0, 0, 9, 3]])
    with torch.no_grad():
        whole = model.hidden(seqs)
        subset = model.hidden(torch.searchsorted(used, seqs), model.item_emb.weight[used])
    torch.testing.assert_close(subset, whole)


def test_dropout_zeroes_about_its_share_and_keeps_the_mean_in_training_only():
    torch.manual_seed(0)
    drop = Dropout(0.3)
    x = torch.ones(200, 500)
    out = drop(x)
    assert abs((out == 0).float().mean().item() - 0.3) < 0.01
    assert abs(out.mean().item() - 1.0) < 0.02
    assert torch.equal(drop.eval()(x), x)


def test_dropout_draws_a_different_mask_at_each_call():
    torch.manual_seed(0)
    drop = Dropout(0.3)
    x = torch.ones(40, 50, 64)
    assert not torch.equal(drop(x) == 0, drop(x) == 0)


def test_dropout_of_an_input_larger_than_its_pool_still_drops_its_share():
    torch.manual_seed(0)
    drop = Dropout(0.3)
    out = drop(torch.ones(Dropout.POOL + 1))
    assert abs((out == 0).float().mean().item() - 0.3) < 0.01


def test_dropout_passes_the_gradient_through_its_mask():
    torch.manual_seed(0)
    drop = Dropout(0.5)
    x = torch.ones(30, 20, requires_grad=True)
    out = drop(x)
    out.sum().backward()
    assert torch.equal(x.grad, out.detach())  # ones in, so the output is the scaled mask


def test_dropout_pool_stays_out_of_the_checkpoint(tiny_model):
    model = tiny_model(num_items=30)
    model.train()
    model(torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]]))
    assert not any("pool" in name for name in model.state_dict())


def test_dropout_of_one_is_rejected():
    with pytest.raises(ValueError, match="dropout"):
        SASRecConfig(num_items=5, dropout=1.0)


def test_positions_from_the_start_leave_earlier_outputs_unchanged_by_an_appended_item(tiny_model):
    model = tiny_model(num_items=30)
    short = model.hidden(torch.tensor([[0, 4, 5, 6]]))
    longer = model.hidden(torch.tensor([[4, 5, 6, 7]]))
    torch.testing.assert_close(short[:, 1:], longer[:, :3], rtol=1e-5, atol=1e-5)


def test_positions_from_the_end_move_every_earlier_output_when_an_item_is_appended(tiny_model):
    model = tiny_model(num_items=30, positions="from_end")
    short = model.hidden(torch.tensor([[0, 4, 5, 6]]))
    longer = model.hidden(torch.tensor([[4, 5, 6, 7]]))
    assert not torch.allclose(short[:, 1:], longer[:, :3], atol=1e-3)


def test_extend_gives_the_vector_and_cached_positions_of_encoding_the_whole_window(tiny_model):
    model = tiny_model(num_items=30)
    first = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]])  # histories of 2 and 4 items
    _, kv = model.encode_kv(first)
    past = torch.zeros(2, 5, model.kv_width)  # room for 4 cached positions and the new one
    past[0, :2], past[1, :4] = kv[0, 2:], kv[1]
    vecs = model.extend(torch.tensor([9, 8]), past, torch.tensor([2, 4]))
    whole_vecs, whole_kv = model.encode_kv(torch.tensor([[0, 0, 3, 4, 9], [1, 2, 3, 4, 8]]))
    torch.testing.assert_close(vecs, whole_vecs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(past[:, -1], whole_kv[:, -1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(vecs[:1], model.encode(torch.tensor([[3, 4, 9]])))


def test_encode_kv_gives_encodes_vectors_and_a_key_and_value_per_block_and_position(tiny_model):
    model = tiny_model(num_items=30, num_blocks=3)
    seqs = torch.tensor([[0, 1, 2], [4, 5, 6]])
    vecs, kv = model.encode_kv(seqs)
    torch.testing.assert_close(vecs, model.encode(seqs))
    assert kv.shape == (2, 3, model.kv_width) and model.kv_width == 2 * 3 * 16


def test_incremental_encoding_is_refused_to_positions_counted_from_the_end(tiny_model):
    model = tiny_model(num_items=30, positions="from_end")
    with pytest.raises(ValueError, match="from the end"):
        model.encode_kv(torch.tensor([[1, 2]]))


def test_a_config_stored_before_positions_existed_counts_them_from_the_end():
    stored = SASRecConfig(num_items=5).to_dict()
    del stored["positions"]
    assert SASRecConfig.from_dict(stored).positions == "from_end"
    assert SASRecConfig.from_dict({**stored, "positions": "from_start"}).positions == "from_start"
    assert SASRecConfig(num_items=5).positions == "from_start"


def test_config_rejects_unknown_positions():
    with pytest.raises(ValueError, match="positions"):
        SASRecConfig(num_items=5, positions="rotary")


def test_table_rows_are_the_rows_indexing_gives_in_the_shape_of_the_index():
    table = torch.randn(20, 4)
    rows = torch.tensor([[3, 0, 19], [3, 7, 7]])
    assert torch.equal(table_rows(table, rows), table[rows])


def test_listed_rows_pair_each_row_with_the_index_of_its_list_in_order() -> None:
    users, rows = listed_rows([[7, 8], [], [9, 7]])
    assert users.tolist() == [0, 0, 2, 2]
    assert rows.tolist() == [7, 8, 9, 7]
    assert users.dtype == rows.dtype == torch.int64


def test_excluding_rows_sets_exactly_each_users_listed_rows_to_minus_infinity() -> None:
    scores = torch.zeros(3, 6)
    exclude_rows(scores, [[1, 4], [], [5, 5, 0]])
    expected = torch.zeros(3, 6)
    expected[0, [1, 4]] = float("-inf")
    expected[2, [0, 5]] = float("-inf")
    assert torch.equal(scores, expected)


def test_excluding_rows_in_a_slice_of_wider_scores_leaves_the_columns_outside_it_alone() -> None:
    wide = torch.zeros(4, 8, dtype=torch.bfloat16)  # as the shortlist's padded scores
    exclude_rows(wide[:2, :5], [[4], [0, 2]])
    assert torch.isinf(wide).nonzero().tolist() == [[0, 4], [1, 0], [1, 2]]
