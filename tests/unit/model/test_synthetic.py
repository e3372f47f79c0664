"""Synthetic data generator: seeded, chronological, follows the planted transitions."""

from __future__ import annotations

from rtrank.model.synthetic import events, generate, successors


def test_same_seed_same_data_other_seed_other_data():
    assert generate(num_users=20, seed=1) == generate(num_users=20, seed=1)
    assert generate(num_users=20, seed=1) != generate(num_users=20, seed=2)


def test_each_user_has_increasing_timestamps_and_the_asked_length():
    data = generate(num_users=50, min_len=3, max_len=7)
    for evs in data.values():
        assert 3 <= len(evs) <= 7
        assert [ts for _, ts in evs] == sorted(ts for _, ts in evs)


def test_without_noise_every_step_follows_the_planted_successor():
    succ = successors(30, seed=4)
    for evs in generate(num_users=20, num_items=30, noise=0.0, seed=4).values():
        assert all(succ[a] == b for (a, _), (b, _) in zip(evs, evs[1:], strict=False))


def test_successors_form_one_cycle_without_self_loops():
    succ = successors(10)
    assert sorted(succ.values()) == sorted(succ) and all(a != b for a, b in succ.items())


def test_events_are_in_time_order_and_keep_each_users_order():
    data = generate(num_users=30)
    evs = list(events(data))
    assert [e["ts"] for e in evs] == sorted(e["ts"] for e in evs)
    for u, seq in data.items():
        assert [e["item_id"] for e in evs if e["user_id"] == u] == [i for i, _ in seq]


def test_drift_changes_the_planted_transitions_after_the_given_share_of_each_user() -> None:
    data = generate(num_users=50, num_items=40, min_len=20, max_len=20, noise=0.0, drift_at=0.5)
    before, after = successors(40, 0), successors(40, 1)
    for sequence in data.values():
        items = [i for i, _ in sequence]
        assert all(after[a] == b for a, b in zip(items[10:], items[11:], strict=False))
        assert all(before[a] == b for a, b in zip(items[:10], items[1:10], strict=False))
