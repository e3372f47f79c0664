"""A paced replay holds its rate, sleeping once per tick rather than once per event."""

from __future__ import annotations

import time

import pytest

from rtrank.streams.cli.produce import Pacer


def pace(pacer: Pacer, events: int) -> float:
    for n in range(events):
        pacer.wait_for(n)
    return time.monotonic() - pacer.started


def test_a_paced_replay_takes_at_least_its_events_over_its_rate() -> None:
    elapsed = pace(Pacer(rate=1000.0, tick_s=0.02), 300)
    assert elapsed >= 299 / 1000 - 0.02


def test_a_paced_replay_sleeps_once_per_tick_not_once_per_event(monkeypatch) -> None:
    sleeps = []
    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda s: (sleeps.append(s), real_sleep(s)))
    pace(Pacer(rate=1000.0, tick_s=0.02), 300)
    assert 0 < len(sleeps) <= 300 / 20 + 1


def test_an_unpaced_replay_never_sleeps(monkeypatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail("slept"))
    pace(Pacer(rate=0.0), 1000)
