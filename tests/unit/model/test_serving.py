"""Serving API: pad_batch, encode_histories, length_groups, encode, top_k, resolve_device."""

from __future__ import annotations

import pytest
import torch

from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.serving import (
    SHORT_ITEMS_STEP,
    TOP_K_GROUPS_OF,
    ItemIndex,
    encode_histories,
    grouped_top_k,
    length_groups,
    pad_batch,
    resolve_device,
    resolve_shortlist,
)


def test_pad_batch_left_pads_to_the_longest_history():
    assert pad_batch([[1, 2, 3], [4]], max_len=10).tolist() == [[1, 2, 3], [0, 0, 4]]


def test_pad_batch_keeps_the_latest_max_len_rows():
    assert pad_batch([[1, 2, 3, 4, 5]], max_len=3).tolist() == [[3, 4, 5]]


def test_pad_batch_of_empty_histories_is_one_padding_column():
    assert pad_batch([[], []], max_len=5).tolist() == [[0], [0]]


def test_batched_inference_equals_one_by_one(tiny_model):
    model = tiny_model(num_items=30)
    histories = [[1, 2, 3, 4, 5, 6], [7], [8, 9], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]]
    exclude = [h[-2:] for h in histories]
    scores, rows = model.top_k(model.encode(pad_batch(histories, 10)), 5, exclude)
    for i, h in enumerate(histories):
        s1, r1 = model.top_k(model.encode(pad_batch([h], 10)), 5, [exclude[i]])
        assert r1[0].tolist() == rows[i].tolist()
        torch.testing.assert_close(s1[0], scores[i], rtol=1e-5, atol=1e-5)


def test_encode_histories_gives_each_user_the_vector_of_encoding_it_alone(tiny_model):
    model = tiny_model(num_items=30)
    histories = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [7], [], [8, 9], [10, 11, 12, 13, 14]]
    vecs = encode_histories(model, histories, max_group=2)
    for i, h in enumerate(histories):
        torch.testing.assert_close(vecs[i], model.encode(pad_batch([h], 10))[0])


def test_length_groups_pad_each_group_to_at_most_the_next_power_of_two():
    lengths = [9, 1, 3, 16, 2, 5, 4, 17]
    groups = length_groups(lengths, max_group=100)
    assert [[lengths[n] for n in g] for g in groups] == [[1], [2], [3, 4], [5], [9, 16], [17]]


def test_length_groups_never_exceed_max_group_and_keep_every_index():
    lengths = [2] * 7 + [0, 0]
    groups = length_groups(lengths, max_group=3)
    assert [len(g) for g in groups] == [2, 3, 3, 1]
    assert sorted(n for g in groups for n in g) == list(range(9))


def test_length_groups_reject_a_group_size_below_one():
    with pytest.raises(ValueError, match="at least one"):
        length_groups([1], max_group=0)


def test_top_k_from_a_kept_item_matrix_equals_top_k_from_the_table(tiny_model):
    model = tiny_model(num_items=30)
    vecs = model.encode(pad_batch([[1, 2, 3], [4]], 10))
    scores, rows = model.top_k(vecs, 5, [[1], [4]])
    kept_scores, kept_rows = model.top_k(vecs, 5, [[1], [4]], model.item_matrix())
    assert kept_rows.tolist() == rows.tolist()
    torch.testing.assert_close(kept_scores, scores)


def test_a_shortlisted_top_k_equals_the_exact_one():
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=2001, dim=32, max_len=10)).eval()
    histories = [[int(i) for i in torch.randint(1, 2001, (n,))] for n in range(1, 41)]
    vecs = encode_histories(model, histories)
    scores, rows = model.top_k(vecs, 20, histories)
    short_scores, short_rows = ItemIndex(model, shortlist=True).top_k(vecs, 20, histories)
    assert short_rows.tolist() == rows.tolist()
    torch.testing.assert_close(short_scores, scores, rtol=1e-5, atol=1e-5)


def test_a_shortlisted_top_k_of_a_batch_equals_one_user_at_a_time():
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=5000, dim=32, max_len=10)).eval()
    index = ItemIndex(model, shortlist=True)
    vecs = encode_histories(model, [[n, n + 1] for n in range(1, 18)])  # 17: not a step
    scores, rows = index.top_k(vecs, 10)
    for user in range(17):
        one_scores, one_rows = index.top_k(vecs[user : user + 1], 10)
        assert one_rows.tolist() == rows[user : user + 1].tolist()
        torch.testing.assert_close(one_scores, scores[user : user + 1])


def test_the_bfloat16_pass_covers_the_whole_catalogue_in_whole_steps():
    model = SASRec(SASRecConfig(num_items=SHORT_ITEMS_STEP + 1, dim=16, max_len=10)).eval()
    short = ItemIndex(model, shortlist=True).short.to_dense()
    assert short.shape[0] == 2 * SHORT_ITEMS_STEP  # the catalogue and its padding row
    assert short[SHORT_ITEMS_STEP + 1 :].count_nonzero() == 0
    assert ItemIndex(model, shortlist=False).short is None


def test_on_a_cpu_the_bfloat16_table_is_held_in_onednn_layout_with_the_tables_rows():
    model = SASRec(SASRecConfig(num_items=300, dim=16, max_len=10)).eval()
    short = ItemIndex(model, shortlist=True).short
    assert short.is_mkldnn
    rows = model.item_emb.weight.detach().to(torch.bfloat16)
    assert torch.equal(short.to_dense()[: rows.shape[0]], rows)


def test_a_shortlisted_top_k_never_returns_padding_or_excluded_rows(tiny_model):
    model = tiny_model(num_items=30)
    vecs = model.encode(pad_batch([[1, 2], [3]], 10))
    excluded = [list(range(1, 25)), [5]]
    scores, rows = ItemIndex(model, shortlist=True).top_k(vecs, 10, excluded)
    valid = [
        [r for r, s in zip(rr, ss, strict=True) if s != float("-inf")]
        for rr, ss in zip(rows.tolist(), scores.tolist(), strict=True)
    ]
    assert sorted(valid[0]) == list(range(25, 31))
    assert 0 not in valid[1] and 5 not in valid[1] and len(valid[1]) == 10


@pytest.mark.parametrize("name", ["on", "off"])
def test_resolve_shortlist_obeys_on_and_off(name):
    assert resolve_shortlist(name, torch.device("cpu")) is (name == "on")


def test_resolve_shortlist_auto_follows_native_bfloat16_on_the_cpu():
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_shortlist("auto", torch.device("cpu")) == native


def test_resolve_shortlist_rejects_unknown_settings():
    with pytest.raises(ValueError, match="auto"):
        resolve_shortlist("bf16", torch.device("cpu"))


def test_top_k_never_returns_padding_or_excluded_rows(tiny_model):
    model = tiny_model(num_items=30)
    vecs = model.encode(pad_batch([[1, 2], [3]], 10))
    excluded = [list(range(1, 20)), [5]]
    _, rows = model.top_k(vecs, 10, excluded)
    assert 0 not in rows.tolist()[0] + rows.tolist()[1]
    assert not set(rows[0].tolist()) & set(excluded[0])
    assert 5 not in rows[1].tolist()


def test_top_k_is_sorted_best_first_and_capped_at_the_catalogue(tiny_model):
    model = tiny_model(num_items=5)
    scores, rows = model.top_k(model.encode(pad_batch([[1]], 10)), 50, [[]])
    assert rows.shape == (1, 5)
    assert scores[0].tolist() == sorted(scores[0].tolist(), reverse=True)


def test_resolve_device_auto_prefers_cuda_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "gpu0", "cuda:99"])
def test_resolve_device_rejects_unknown_or_absent_devices(name):
    with pytest.raises(ValueError):
        resolve_device(name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_and_cpu_give_the_same_top_k(tiny_model):
    model = tiny_model(num_items=30)
    seqs = pad_batch([[1, 2, 3], [4, 5]], 10)
    _, cpu_rows = model.top_k(model.encode(seqs), 5, [[], []])
    model.to("cuda")
    _, gpu_rows = model.top_k(model.encode(seqs), 5, [[], []])
    assert gpu_rows.cpu().tolist() == cpu_rows.tolist()


def bfloat16_scores(users: int, columns: int) -> torch.Tensor:
    """Scores with many equal values, as a bfloat16 product's are."""
    torch.manual_seed(0)
    return torch.randn(users, columns).to(torch.bfloat16)


def test_a_grouped_top_k_has_the_scores_of_torch_topk_at_columns_holding_them():
    scores = bfloat16_scores(5, 4096)
    values, columns = grouped_top_k(scores, 66)
    assert torch.equal(values, scores.topk(66, dim=1).values)
    assert torch.equal(scores.gather(1, columns), values)
    assert all(len(set(row)) == 66 for row in columns.tolist())


def test_a_grouped_top_k_ends_in_the_same_minus_infinity_tail_when_few_scores_are_left():
    scores = bfloat16_scores(2, 1024)
    scores[0, 10:] = float("-inf")
    values, columns = grouped_top_k(scores, 20)
    assert torch.equal(values, scores.topk(20, dim=1).values)
    assert sorted(columns[0, :10].tolist()) == list(range(10))


@pytest.mark.parametrize(("columns", "k"), [(TOP_K_GROUPS_OF * 8 + 1, 4), (TOP_K_GROUPS_OF * 8, 9)])
def test_a_grouped_top_k_is_torch_topk_where_the_columns_do_not_split_into_enough_groups(
    columns, k
):
    scores = bfloat16_scores(3, columns)
    values, found = grouped_top_k(scores, k)
    expected = scores.topk(k, dim=1)
    assert torch.equal(values, expected.values) and torch.equal(found, expected.indices)
