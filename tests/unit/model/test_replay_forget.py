"""A forgotten user's examples leave the replay buffer, from both of its pools."""

from __future__ import annotations

from rtrank.model.online import Example, ReplayBuffer


def example(user: str, n: int) -> Example:
    return Example((f"p{n}",), f"i{n}", n, 1.0, user)


def test_forgetting_a_user_removes_their_examples_from_both_pools() -> None:
    buffer = ReplayBuffer(recent_size=4, reservoir_size=100, seed=0)
    for n in range(20):
        buffer.add(example("u1" if n % 2 else "u2", n))
    held = sum(e.user_id == "u1" for e in [*buffer.recent, *buffer.reservoir])
    assert buffer.forget("u1") == held == 10
    assert {e.user_id for e in [*buffer.recent, *buffer.reservoir]} == {"u2"}
    assert len(buffer) == 10


def test_the_recent_pool_keeps_its_bound_after_a_user_is_forgotten() -> None:
    buffer = ReplayBuffer(recent_size=3, reservoir_size=10, seed=0)
    for n in range(3):
        buffer.add(example("u1", n))
    buffer.forget("u1")
    for n in range(5):
        buffer.add(example("u2", n))
    assert len(buffer.recent) == 3


def test_forgetting_a_user_without_examples_removes_nothing() -> None:
    buffer = ReplayBuffer(recent_size=3, reservoir_size=10, seed=0)
    buffer.add(example("u2", 0))
    assert buffer.forget("u1") == 0
    assert len(buffer) == 1


def test_a_sample_after_forgetting_never_holds_the_user() -> None:
    buffer = ReplayBuffer(recent_size=5, reservoir_size=20, seed=0)
    for n in range(30):
        buffer.add(example(f"u{n % 3}", n))
    buffer.forget("u0")
    assert "u0" not in {e.user_id for e in buffer.sample(200, recent_share=0.5)}
