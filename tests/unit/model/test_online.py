"""Online learning: replay mix, exact deltas, vocabulary growth, update rules."""

from __future__ import annotations

import copy

import pytest
import torch

from rtrank.model.online import (
    Example,
    OnlineConfig,
    OnlineLearner,
    ReplayBuffer,
    outranked_share,
    surprise_scale,
)
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.updates import (
    Snapshot,
    UpdateError,
    apply_delta,
    apply_update,
    decode_update,
    encode_update,
    model_from_snapshot,
)
from rtrank.model.vocab import Vocabulary

ITEMS = [f"item-{n}" for n in range(30)]


def served() -> tuple[SASRec, Vocabulary]:
    torch.manual_seed(0)
    vocab = Vocabulary(ITEMS)
    return SASRec(SASRecConfig(num_items=len(vocab), max_len=8, dim=16, dropout=0.1)), vocab


ROWS_AND_TARGETS = OnlineConfig(rows_per_step=4)


def learner_and_base(
    config: OnlineConfig = ROWS_AND_TARGETS,
) -> tuple[OnlineLearner, SASRec, Vocabulary]:
    model, vocab = served()
    base_model, base_vocab = copy.deepcopy(model), Vocabulary(vocab.items())
    return OnlineLearner(model, vocab, 1, config), base_model, base_vocab


def same_weights(a: SASRec, b: SASRec) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


EXAMPLES = [
    Example(("item-1", "item-2"), "item-3"),
    Example(("item-3",), "item-4"),
    Example(("item-4", "item-5"), "item-6"),
]


def test_replay_sample_mixes_recent_and_older_examples() -> None:
    buffer = ReplayBuffer(recent_size=10, reservoir_size=10, seed=0)
    for n in range(100):
        buffer.add(Example((), f"i{n}", ts=n))
    sample = buffer.sample(1000, recent_share=0.5)
    recent = sum(e.ts >= 90 for e in sample)
    assert recent == 500 and len(sample) == 1000


def test_reservoir_keeps_a_sample_of_all_older_examples_not_only_the_latest() -> None:
    buffer = ReplayBuffer(recent_size=10, reservoir_size=50, seed=0)
    for n in range(10_000):
        buffer.add(Example((), f"i{n}", ts=n))
    older = sorted(e.ts for e in buffer.reservoir)
    assert len(older) == 50
    assert older[0] < 2_500 and older[-1] > 7_500  # spread over the whole history


def test_a_step_changes_only_the_rows_it_touched() -> None:
    learner, base, _ = learner_and_base()
    learner.step(EXAMPLES)
    moved = (learner.model.item_emb.weight != base.item_emb.weight).any(1)
    assert set(moved.nonzero().squeeze(1).tolist()) == learner._touched
    assert len(learner._touched) < len(ITEMS)


def dense_state(model: SASRec) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k != "item_emb.weight"}


def test_by_default_a_step_leaves_the_pretrained_transformer_bit_identical() -> None:
    learner, base, _ = learner_and_base()
    learner.step(EXAMPLES)
    after = dense_state(learner.model)
    assert all(torch.equal(after[k], v) for k, v in dense_state(base).items())
    assert learner._touched  # the item rows did learn


def test_with_a_dense_rate_a_step_trains_the_transformer_too() -> None:
    learner, base, _ = learner_and_base(OnlineConfig(dense_lr=1e-3))
    learner.step(EXAMPLES)
    after = dense_state(learner.model)
    assert any(not torch.equal(after[k], v) for k, v in dense_state(base).items())


def test_a_rows_first_step_scales_with_its_gradient_against_the_steps_typical_one() -> None:
    model, vocab = served()
    learner = OnlineLearner(model, vocab, 1, OnlineConfig(lr=1e-2))
    weight = model.item_emb.weight
    before = weight.detach().clone()
    used = torch.tensor([0, 3, 7])
    grad = torch.zeros(3, model.config.dim)
    grad[1], grad[2] = 1e-3, 1.0  # row 3 is nearly right already, row 7 far off
    learner._lazy_adam(weight, used, grad, local_targets=torch.tensor([1, 2]))
    moved = (weight.detach() - before).abs().amax(1)
    assert moved[7] == pytest.approx(1e-2 * 1.41, rel=0.05)  # 1 / sqrt(mean g^2 = 0.5)
    assert moved[3] < moved[7] / 500


def test_applying_a_delta_to_its_base_gives_the_trained_model_exactly() -> None:
    learner, base, base_vocab = learner_and_base()
    for _ in range(3):
        learner.step(EXAMPLES)
    delta = decode_update(encode_update(learner.publish(2, snapshot=False)))
    apply_delta(base, base_vocab, 1, delta)
    assert same_weights(base, learner.model)


def test_a_delta_of_an_untrained_transformer_carries_no_dense_tensors_and_applies_exactly() -> None:
    learner, base, base_vocab = learner_and_base()
    learner.step(EXAMPLES)
    delta = decode_update(encode_update(learner.publish(2, snapshot=False)))
    assert delta.dense == {}
    apply_delta(base, base_vocab, 1, delta)
    assert same_weights(base, learner.model)


def test_a_delta_with_a_trained_transformer_carries_it_and_applies_exactly() -> None:
    learner, base, base_vocab = learner_and_base(OnlineConfig(dense_lr=1e-3))
    learner.step(EXAMPLES)
    delta = decode_update(encode_update(learner.publish(2, snapshot=False)))
    assert delta.dense
    apply_delta(base, base_vocab, 1, delta)
    assert same_weights(base, learner.model)


def test_a_delta_with_only_some_dense_parameters_is_rejected_as_incompatible() -> None:
    learner, base, base_vocab = learner_and_base(OnlineConfig(dense_lr=1e-3))
    learner.step(EXAMPLES)
    delta = learner.publish(2, snapshot=False)
    delta.dense.pop(next(iter(delta.dense)))
    with pytest.raises(UpdateError) as err:
        apply_delta(base, base_vocab, 1, delta)
    assert err.value.reason == "incompatible"


def test_new_items_travel_in_the_delta_and_grow_the_served_vocabulary() -> None:
    learner, base, base_vocab = learner_and_base()
    learner.step([Example(("item-1",), "new-a"), Example(("new-a",), "new-b")])
    delta = decode_update(encode_update(learner.publish(2, snapshot=False)))
    assert delta.new_items == ["new-a", "new-b"]
    apply_delta(base, base_vocab, 1, delta)
    assert base_vocab == learner.vocab and base_vocab.row("new-b") == len(ITEMS) + 2
    assert base.config.num_items == len(base_vocab)
    assert same_weights(base, learner.model)


def test_items_met_one_step_at_a_time_are_each_stepped_and_travel_exactly() -> None:
    learner, base, base_vocab = learner_and_base(OnlineConfig())
    for n in range(12):  # more than the moments' room, so they grow more than once
        learner.step([Example(("item-1",), f"new-{n}")])
    new_rows = [learner.vocab.row(f"new-{n}") for n in range(12)]
    assert all(learner._t[row] == 1 for row in new_rows)
    apply_delta(base, base_vocab, 1, learner.publish(2, snapshot=False))
    assert same_weights(base, learner.model)


def test_consecutive_deltas_compose() -> None:
    learner, base, base_vocab = learner_and_base()
    version = 1
    for n in range(2, 5):
        learner.step(EXAMPLES + [Example(("item-1",), f"new-{n}")])
        apply_delta(base, base_vocab, version, learner.publish(n, snapshot=False))
        version = n
    assert same_weights(base, learner.model)


def test_a_snapshot_rebuilds_model_and_vocabulary() -> None:
    learner, _, _ = learner_and_base()
    learner.step(EXAMPLES + [Example(("item-1",), "new-a")])
    snap = decode_update(encode_update(learner.publish(2, snapshot=True, meta={"offsets": {}})))
    assert isinstance(snap, Snapshot) and snap.meta == {"offsets": {}}
    model, vocab = model_from_snapshot(snap)
    assert vocab == learner.vocab and same_weights(model, learner.model)


def test_a_delta_for_another_base_is_rejected_and_changes_nothing() -> None:
    learner, base, base_vocab = learner_and_base()
    learner.step(EXAMPLES + [Example(("item-1",), "new-a")])
    delta = learner.publish(2, snapshot=False)
    before = copy.deepcopy(base.state_dict())
    with pytest.raises(UpdateError) as err:
        apply_delta(base, base_vocab, 0, delta)
    assert err.value.reason == "out_of_order"
    assert "new-a" not in base_vocab
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())


def test_an_old_delta_is_rejected_as_stale() -> None:
    learner, base, base_vocab = learner_and_base()
    learner.step(EXAMPLES)
    delta = learner.publish(2, snapshot=False)
    with pytest.raises(UpdateError) as err:
        apply_update(base, base_vocab, 5, delta)
    assert err.value.reason == "stale"


def test_a_delta_with_foreign_shapes_is_rejected_as_incompatible() -> None:
    learner, _, _ = learner_and_base()
    learner.step(EXAMPLES)
    delta = learner.publish(2, snapshot=False)
    torch.manual_seed(1)
    vocab = Vocabulary(ITEMS)
    other = SASRec(SASRecConfig(num_items=len(vocab), max_len=8, dim=32))
    with pytest.raises(UpdateError) as err:
        apply_delta(other, vocab, 1, delta)
    assert err.value.reason == "incompatible"


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x10" + b"\x00" * 7 + b"{}" * 8])
def test_bytes_that_are_not_an_update_are_corrupt(data: bytes) -> None:
    with pytest.raises(UpdateError) as err:
        decode_update(data)
    assert err.value.reason == "corrupt"


def learned(after: str, comes: str) -> tuple[SASRec, Vocabulary, list[Example]]:
    """A model stepped 40 times on "after ``after`` comes ``comes``" (from ten contexts)."""
    model, vocab = served()
    learner = OnlineLearner(model, vocab, 1, OnlineConfig(lr=1e-2, rows_per_step=8))
    planted = [Example((f"item-{n}", after), comes) for n in range(10)]
    for _ in range(40):
        learner.step(planted)
    return model, vocab, planted


def test_learning_from_the_stream_makes_a_planted_transition_rank_first() -> None:
    model, vocab, _ = learned("new-a", "new-b")
    model.eval()
    rows = vocab.rows(["item-3", "new-a"])
    _, top = model.top_k(model.encode(torch.tensor([rows])), 1)
    assert vocab.item(int(top[0, 0])) == "new-b"


def test_an_example_of_weight_two_counts_as_that_example_twice() -> None:
    def learner() -> OnlineLearner:
        torch.manual_seed(0)
        vocab = Vocabulary(ITEMS)
        config = SASRecConfig(num_items=len(vocab), max_len=8, dim=16, dropout=0.0, loss="ce")
        model = SASRec(config)
        return OnlineLearner(model, vocab, 1, OnlineConfig(replay_ratio=0.0, rows_per_step=4))

    heavy, light = Example(("item-1",), "item-2", weight=2.0), Example(("item-3",), "item-4")
    weighted, repeated = learner(), learner()
    loss_weighted = weighted.step([heavy, light])
    loss_repeated = repeated.step([Example(("item-1",), "item-2")] * 2 + [light])
    assert loss_weighted == pytest.approx(loss_repeated, rel=1e-5)
    a, b = weighted.model.state_dict(), repeated.model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_step_reads_only_the_configured_number_of_negative_rows() -> None:
    model, vocab = served()  # the model's own num_negatives (4096) would read every row
    learner = OnlineLearner(model, vocab, 1, OnlineConfig(negatives=3, rows_per_step=100))
    learner.step([Example(("item-1", "item-2"), "item-3")])
    assert len(learner.delta(2).rows) <= 2 + 1 + 3  # prefix, target, negatives


def target_row_move(learner: OnlineLearner, examples: list[Example]) -> float:
    """How far one step on ``examples`` moves the first example's target row."""
    row = learner.vocab.row(examples[0].item_id)
    before = learner.model.item_emb.weight[row].clone()
    torch.manual_seed(1)
    learner.step(examples)
    return float((learner.model.item_emb.weight[row] - before).detach().norm())


CHAIN = [Example((f"item-{n}",), f"item-{n + 1}") for n in range(1, 21)]


def test_a_stream_ranked_no_worse_than_held_out_data_steps_at_the_floor_share_of_the_rate() -> None:
    config = OnlineConfig(replay_ratio=0.0, surprise_floor=0.1)
    full = OnlineLearner(*served(), 1, config)
    familiar = OnlineLearner(*served(), 1, config, held_out_outranked=0.5)
    assert target_row_move(familiar, CHAIN) == pytest.approx(
        0.1 * target_row_move(full, CHAIN), rel=1e-3
    )


def test_a_stream_no_better_than_chance_steps_at_about_the_full_rate() -> None:
    config = OnlineConfig(replay_ratio=0.0)  # the model is untrained: it ranks at chance
    full = OnlineLearner(*served(), 1, config)
    surprised = OnlineLearner(*served(), 1, config, held_out_outranked=0.0)
    assert target_row_move(surprised, CHAIN) > 0.7 * target_row_move(full, CHAIN)


def test_without_a_held_out_reference_every_step_takes_the_full_rate() -> None:
    learner = OnlineLearner(*served(), 1, OnlineConfig(replay_ratio=0.0))
    learner.step(EXAMPLES)
    assert learner.outranked is not None and learner.lr_scale == 1.0


@pytest.mark.parametrize(
    ("outranked", "share"), [(0.1, 0.05), (0.05, 0.05), (0.3, 0.5), (0.5, 1.0), (0.7, 1.0)]
)
def test_the_rate_share_grows_linearly_from_the_held_out_level_to_chance(
    outranked: float, share: float
) -> None:
    assert surprise_scale(outranked, 0.1, floor=0.05) == pytest.approx(share)


def test_outranked_share_is_near_zero_once_a_transition_is_learned() -> None:
    model, vocab, planted = learned("item-20", "item-21")
    prefixes = [vocab.rows(e.prefix) for e in planted]
    targets = [vocab.row(e.item_id) for e in planted]
    assert outranked_share(model, prefixes, targets) < 0.05


def test_outranked_share_of_an_untrained_model_is_about_half() -> None:
    model, vocab = served()
    prefixes = [vocab.rows([f"item-{n}"]) for n in range(29)]
    targets = [vocab.row(f"item-{(n * 7 + 3) % 29 + 1}") for n in range(29)]
    assert 0.3 < outranked_share(model, prefixes * 20, targets * 20) < 0.7
