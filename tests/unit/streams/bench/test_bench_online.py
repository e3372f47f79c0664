"""The pieces of ``rtrank bench online`` that decide what is measured."""

from __future__ import annotations

from rtrank.streams.bench import online_bench as bench_online
from rtrank.streams.bench.online_bench import (
    Stream,
    halves,
    measured_from,
    percentile,
    trainer_settings,
)
from rtrank.streams.settings import Settings


def test_halves_split_each_user_at_half_its_events_keeping_stream_order():
    events = [{"user_id": u, "item_id": i} for u, i in [("a", 1), ("b", 1), ("a", 2), ("a", 3)]]
    events.append({"user_id": "a", "item_id": 4})
    first, second = halves(events)
    assert [(e["user_id"], e["item_id"]) for e in first] == [("a", 1), ("a", 2)]
    assert [(e["user_id"], e["item_id"]) for e in second] == [("b", 1), ("a", 3), ("a", 4)]


def test_percentile_of_a_lag_histogram_is_the_top_of_its_bucket_in_seconds():
    hist = {0: 50, 100: 40, 900: 10}  # 100 ms buckets
    assert percentile(hist, 50) == 0.1
    assert percentile(hist, 90) == 0.2
    assert percentile(hist, 99) == 1.0


def test_frozen_runs_trainer_publishes_where_the_worker_does_not_read():
    worker = Settings().isolated("run")
    frozen, online = trainer_settings(worker, False), trainer_settings(worker, True)
    assert frozen.model_updates_topic != worker.model_updates_topic
    assert frozen.training_topic == worker.training_topic
    assert online == worker


def test_freshness_is_read_only_once_every_example_of_the_run_was_trained_on(
    monkeypatch,
) -> None:
    class Published:
        histograms = iter([{100: 3}, {100: 3, 900: 1}, {100: 3, 900: 1, 4000: 1}])

        def read(self) -> dict[int, int]:
            return next(self.histograms)

    monkeypatch.setattr(bench_online.time, "sleep", lambda seconds: None)
    assert bench_online.wait_for_examples(Published(), expected=5, timeout_s=60) == {
        100: 3,
        900: 1,
        4000: 1,
    }


def test_each_replayed_user_is_measured_from_the_first_event_of_its_second_half():
    events = [{"user_id": u, "item_id": "i"} for u in ["a", "b", "a", "a", "c"]]
    first, second = halves(events)
    assert measured_from(Stream("s", {}, first, second)) == {"a": 1, "b": 0, "c": 0}


QUALITY = {
    "hit@10": 0.05,
    "hit@10_se": 0.001,
    "ndcg@10": 0.03,
    "tested": 3000,
    "skipped_trained": 0,
    "at_arrival": {"hit@10": 0.04, "ndcg@10": 0.02, "tested": 3000},
}


def one_stream_report(online: dict) -> dict:
    """A report of one stream of 3,000 second-half events offered in 3 s, whose frozen
    run was answered in 3.2 s and whose online run is ``online``."""
    return {
        "streams": [
            {
                "name": "games",
                "frozen": {**QUALITY, "final_version": 1, "seconds": 3.2},
                "online": {**QUALITY, "final_version": 4, **online},
                "online_minus_frozen": {"hit@10": 0.0, "se": 0.0014},
                "events": {"first": 3000, "second": 3000},
            }
        ],
        "freshness_s": {"p50": 1.0, "p99": 2.0, "examples": 3000, "untrained": 0},
        "rate": 1000.0,
        "users": 0,
        "machine": {"cpu": "cpu", "cores": 2, "torch": "2"},
    }


def test_the_table_shows_how_long_the_worker_took_to_answer_what_the_replay_offered():
    rows = bench_online.table(one_stream_report({"seconds": 7.9})).splitlines()
    assert rows[1].startswith("games") and rows[1].split()[-2] == "3/3"
    assert rows[2].split()[-2] == "8/3" and "answered" in rows[0]


def test_the_table_shows_the_workers_own_figure_beside_the_stream_order_one():
    rows = bench_online.table(one_stream_report({"seconds": 7.9})).splitlines()
    assert rows[0].split()[-1] == "arrival"
    assert rows[1].split()[2] == "0.0500" and rows[1].split()[-1] == "0.0400"


def test_the_table_shows_the_cpu_each_process_used_against_what_the_machine_had():
    report = one_stream_report({"seconds": 7.9, "cpu_s": {"worker": 6.2, "trainer": 3.0}})
    [line] = [row for row in bench_online.table(report).splitlines() if "CPU s " in row]
    assert line.split()[:2] == ["games", "online"]
    assert line.endswith("worker 6.2  trainer 3.0  = 9 of 2 cores x 8 s")
