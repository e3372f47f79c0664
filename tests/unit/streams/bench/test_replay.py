"""Replays interleave users while keeping each user's order; bad lines are reported, not sent."""

from __future__ import annotations

from pathlib import Path

from rtrank.streams.bench.replay import from_file, interleave, synthetic_replay


def per_user(events: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(e["user_id"], []).append(e["item_id"])
    return out


def test_interleaving_keeps_each_users_order() -> None:
    lists = {u: [{"user_id": u, "item_id": f"{u}{n}"} for n in range(20)] for u in "abc"}
    mixed = list(interleave(lists, seed=1))
    assert per_user(mixed) == {u: [e["item_id"] for e in lists[u]] for u in "abc"}
    assert [e["user_id"] for e in mixed[:20]] != ["a"] * 20


def test_pairs_file_replays_all_users_and_skips_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("1 10\n1 11\n2 20\nnot a pair line\n2 21\n")
    replay = from_file(str(path), "pairs")
    assert per_user(replay.events) == {"1": ["10", "11"], "2": ["20", "21"]}
    assert [bad.line_no for bad in replay.bad_lines] == [4]
    assert all(e["ts"] is None for e in replay.events)


def test_timestamped_file_replays_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,ts\na,x,1700000000300\nb,y,1700000000100\na,z,1700000000200\n")
    replay = from_file(str(path))
    assert [e["ts"] for e in replay.events] == [1700000000100, 1700000000200, 1700000000300]


def test_synthetic_replay_has_the_asked_size() -> None:
    replay = synthetic_replay(users=50, items=30, events=400, seed=3)
    assert len(replay.events) == 400
    assert len(per_user(replay.events)) == 50
