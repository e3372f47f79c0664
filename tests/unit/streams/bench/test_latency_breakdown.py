"""The pipeline bench's latency breakdown: from the lists received to p50/p99 per stage, and
the table printed from a JSON result."""

from __future__ import annotations

import click
import pytest

from rtrank.streams.bench.latency_breakdown import (
    STAGES,
    Breakdown,
    breakdown_table,
    model_calls,
)
from rtrank.streams.bench.pipeline_bench import _rates

TS = 1_700_000_000_000


def a_list(ts: int, emitted_at: int, queued: float, batch_size: int = 20) -> dict:
    timings = {"produce": 2.0, "fetch": 1.0, "handover": 0.5, "queued": queued, "compute": 2.5}
    return {
        "based_on": {"ts": ts},
        "emitted_at": emitted_at,
        "timings": {**timings, "inference": 3.0, "total": 9.0},
        "batch_size": batch_size,
    }


def runs_at(*rates: int) -> list[dict]:
    """Latency runs at ``rates`` as the bench's JSON holds them, every stage at 1 / 2 ms."""
    stages = {stage: {"p50": 1.0, "p99": 2.0} for stage in STAGES}
    return [
        {
            "offered_eps": rate,
            "answered": 10,
            "p50": 30.0,
            "p99": 70.0,
            "stages": stages,
            "load_average": 1.5,
        }
        for rate in rates
    ]


def test_each_list_counts_end_to_end_from_its_event_and_delivery_from_its_emission() -> None:
    received = Breakdown()
    received.add(a_list(TS, TS + 20, queued=10.0), received_ms=TS + 25)
    r = received.summary(500)
    assert (r["offered_eps"], r["answered"], r["p50"], r["p99"]) == (500, 1, 25.0, 25.0)
    assert r["stages"]["queued"] == {"p50": 10.0, "p99": 10.0}
    assert r["stages"]["deliver"] == {"p50": 5.0, "p99": 5.0}
    assert set(r["stages"]) == set(STAGES)


def test_stage_percentiles_are_over_the_lists_received() -> None:
    received = Breakdown()
    for n in range(100):
        received.add(a_list(TS, TS + 10, queued=float(n)), received_ms=TS + 10 + n)
    r = received.summary(1000)
    assert r["stages"]["queued"] == {"p50": 49.5, "p99": 98.0}
    assert (r["p50"], r["p99"]) == (59.5, 108.0)


def test_a_run_with_no_list_back_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no list came back at 1000 events/s"):
        Breakdown().summary(1000)


def test_the_table_has_a_column_pair_per_rate_and_a_row_per_stage() -> None:
    stages = {stage: {"p50": 1.0, "p99": 2.0} for stage in STAGES}
    stages["queued"] = {"p50": 12.5, "p99": 30.0}
    runs = [
        {"offered_eps": 500, "answered": 9000, "p50": 20.0, "p99": 41.0, "stages": stages},
        {"offered_eps": 1000, "answered": 17500, "p50": 22.5, "p99": 48.0, "stages": stages},
    ]
    for run, load in zip(runs, (3.5, 4.25), strict=True):
        run["load_average"] = load
    lines = breakdown_table(runs).splitlines()
    assert lines[0].split()[4:] == ["500", "ev/s", "p50", "p99", "1000", "ev/s", "p50", "p99"]
    assert lines[1].split() == ["end", "to", "end", "20.0", "41.0", "22.5", "48.0"]
    assert [line.split()[0] for line in lines[2:9]] == list(STAGES)
    assert lines[5].split() == ["queued", "12.5", "30.0", "12.5", "30.0"]
    assert lines[9].split() == ["lists", "received", "9,000", "17,500"]
    assert lines[10].split() == ["load", "average", "(1", "min)", "3.50", "4.25"]


def test_rates_are_read_in_order() -> None:
    assert _rates("500,1000") == [500.0, 1000.0]


@pytest.mark.parametrize("value", ["", "fast", "500,0", "-1"])
def test_a_rate_that_is_no_positive_number_is_refused(value: str) -> None:
    with pytest.raises(click.BadParameter, match="events/s > 0"):
        _rates(value)


def test_the_floor_row_follows_end_to_end_with_a_column_pair_per_rate() -> None:
    runs = runs_at(500, 1000)
    floor = [
        {"offered_eps": 500, "p50": 11.0, "p99": 20.5},
        {"offered_eps": 1000, "p50": 12.0, "p99": 31.0},
    ]
    lines = breakdown_table(runs, floor).splitlines()
    assert lines[2].split() == ["Faust", "pass-through", "11.0", "20.5", "12.0", "31.0"]
    assert [line.split()[0] for line in lines[3:10]] == list(STAGES)


def test_without_a_floor_no_floor_row_is_printed() -> None:
    stages = {stage: {"p50": 1.0, "p99": 2.0} for stage in STAGES}
    run = {"offered_eps": 500, "answered": 10, "p50": 30.0, "p99": 70.0, "stages": stages}
    run["load_average"] = 1.5
    assert "pass-through" not in breakdown_table([run])


def test_the_cores_of_each_part_close_the_table_when_every_run_measured_them() -> None:
    runs = runs_at(500, 1000)
    runs[0].update(load_average=1.2, cores={"worker": 0.25, "model": 0.2, "bench": 0.1})
    runs[1].update(load_average=1.7, cores={"worker": 0.49, "model": 0.4, "bench": 0.2})
    lines = breakdown_table(runs).splitlines()
    assert lines[-3].split() == ["cores:", "worker", "0.25", "0.49"]
    assert lines[-2].split() == ["its", "model", "process", "0.20", "0.40"]
    assert lines[-1].split() == ["bench's", "clients", "0.10", "0.20"]


def test_model_calls_are_counted_per_second_with_the_events_each_took() -> None:
    calls = model_calls(before=(100.0, 2_000.0), after=(560.0, 12_120.0), seconds=10.0)
    assert calls == {"per_s": 46.0, "events_per_call": 22.0}


def test_no_model_call_in_the_interval_is_no_events_per_call() -> None:
    assert model_calls((7.0, 70.0), (7.0, 70.0), 10.0) == {"per_s": 0.0, "events_per_call": 0.0}


def test_the_model_calls_follow_the_lists_received_when_every_run_counted_them() -> None:
    runs = runs_at(500, 1000)
    assert "model calls/s" not in breakdown_table(runs)
    runs[0]["model_calls"] = {"per_s": 31.5, "events_per_call": 15.9}
    runs[1]["model_calls"] = {"per_s": 46.0, "events_per_call": 21.7}
    lines = breakdown_table(runs).splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("lists received"))
    assert lines[at + 1].split() == ["model", "calls/s", "31.5", "46.0"]
    assert lines[at + 2].split() == ["events", "per", "call", "15.9", "21.7"]


def test_the_slowest_lists_are_counted_in_windows_of_their_events_ts() -> None:
    received = Breakdown()
    for n in range(200):  # 20 windows of 100 ms, 10 lists each
        ts = TS + 10 * n
        slow = n in (42, 43, 150)  # the slowest 1.5%, in windows 4 and 15
        received.add(a_list(ts, ts + 10, queued=1.0), received_ms=ts + (90 if slow else 20))
    r = received.summary(1000)
    assert r["slowest_windows"] == {"slowest": 2, "of": 20}


def test_the_windows_of_the_slowest_lists_follow_the_lists_received() -> None:
    runs = runs_at(500, 1000)
    runs[0]["slowest_windows"] = {"slowest": 3, "of": 200}
    runs[1]["slowest_windows"] = {"slowest": 41, "of": 200}
    lines = breakdown_table(runs).splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("lists received"))
    assert " ".join(lines[at + 1].split()) == "slowest 1% in 100 ms 3 of 200 41 of 200"


def test_the_slowest_lists_are_averaged_per_stage_with_the_events_of_their_batches() -> None:
    received = Breakdown()
    for n in range(200):
        slow = n in (7, 120)  # the slowest 1%: queued behind a backlog, answered in its batch
        received.add(
            a_list(
                TS + n,
                TS + n + 10,
                queued=80.0 + n if slow else 1.0,
                batch_size=150 if slow else 20,
            ),
            received_ms=TS + n + (14 if slow else 12),
        )
    means = received.summary(1000)["slowest_means"]
    assert means["stages"]["queued"] == 143.5
    assert means["stages"]["deliver"] == 4.0
    assert means["stages"]["fetch"] == 1.0
    assert means["events_per_batch"] == 150.0


def test_what_the_slowest_lists_spent_closes_the_table_with_a_column_per_rate() -> None:
    runs = runs_at(500, 1000)
    for run, queued in zip(runs, (3.0, 120.5), strict=True):
        stages = dict.fromkeys(STAGES, 1.0) | {"queued": queued}
        run["slowest_means"] = {"stages": stages, "events_per_batch": queued + 10}
    lines = breakdown_table(runs).splitlines()
    at = lines.index("the slowest 1%, mean ms")
    assert [line.split()[0] for line in lines[at + 1 : at + 1 + len(STAGES)]] == list(STAGES)
    assert lines[at + 1 + STAGES.index("queued")].split() == ["queued", "3.0", "120.5"]
    assert " ".join(lines[-1].split()) == "events in its batch 13.0 130.5"


def test_without_the_slowest_lists_means_no_such_rows_are_printed() -> None:
    assert "the slowest 1%, mean ms" not in breakdown_table(runs_at(500, 1000))
