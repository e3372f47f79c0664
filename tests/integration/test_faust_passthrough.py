"""The bench's Faust pass-through: a real Faust agent forwards every event untouched."""

from __future__ import annotations

from collections import Counter

from rtrank.streams.bench.pipeline_bench import (
    FLOOR_WARM_UP,
    faust_passthrough_latency,
    faust_passthrough_rate,
)
from rtrank.streams.bench.replay import synthetic_replay
from tests.integration.conftest import read_topic


def test_the_faust_passthrough_forwards_every_event_once_and_reports_its_rate(
    settings, tmp_path
) -> None:
    events = synthetic_replay(50, 40, 600, seed=3).events
    rate = faust_passthrough_rate(settings, events, tmp_path / "faust-passthrough.log")
    source = settings.isolated("faust-pass")
    sent = read_topic(settings.bootstrap_servers, source.events_topic, expected=len(events))
    forwarded = read_topic(
        settings.bootstrap_servers, source.recommendations_topic, expected=len(events)
    )
    assert rate > 0
    assert Counter((r.key, r.value) for r in forwarded) == Counter((r.key, r.value) for r in sent)


def test_the_latency_passthrough_times_every_event_it_forwards_at_each_rate(
    settings, tmp_path
) -> None:
    runs = faust_passthrough_latency(settings, 50, 40, [100, 200], 1.0, tmp_path / "floor.log")
    assert [(r["offered_eps"], r["received"]) for r in runs] == [(100, 100), (200, 200)]
    assert all(0 < r["p50"] <= r["p99"] for r in runs)
    forwarded = read_topic(
        settings.bootstrap_servers,
        settings.isolated("faust-floor").recommendations_topic,
        expected=FLOOR_WARM_UP + 300,
    )
    assert len(forwarded) == FLOOR_WARM_UP + 300


def test_the_latency_passthrough_leaves_out_what_it_forwards_in_each_rates_warm_up(
    settings, tmp_path
) -> None:
    runs = faust_passthrough_latency(
        settings, 50, 40, [100], 1.0, tmp_path / "floor.log", warm_up_s=0.5
    )
    assert [(r["offered_eps"], r["received"]) for r in runs] == [(100, 100)]  # 50 warm up
    forwarded = read_topic(
        settings.bootstrap_servers,
        settings.isolated("faust-floor").recommendations_topic,
        expected=FLOOR_WARM_UP + 150,
    )
    assert len(forwarded) == FLOOR_WARM_UP + 150
