"""`rtrank bench scale` without a broker: its plan, its arithmetic and its output."""

from __future__ import annotations

from collections import namedtuple

from click.testing import CliRunner

from rtrank.streams.bench.scale_bench import all_correct, int_list, scale_command, table
from rtrank.streams.bench.scale_runs import plan
from rtrank.streams.bench.scale_sizes import (
    latest_record_bytes,
    partition_sizes,
    retention,
    sizes,
)
from rtrank.streams.settings import Settings

Record = namedtuple("Record", "partition offset key value")
ZERO = {"unanswered": 0, "uncovered": 0, "seen_item_lists": 0, "misapplied": 0, "drifted": 0}


def run(**changes: object) -> dict:
    base = {
        "workers": 2,
        "standby": 1,
        "trainer": False,
        "events": 1500,
        "answered_eps": 950.0,
        "latency_ms": {"p50": 40.0, "p99": 12000.0, "lists": 900},
        "takeover_pause_s": [11.5],
        "checks": dict(ZERO),
    }
    return {**base, **changes}


def test_the_default_plan_runs_each_standby_count_below_each_worker_count() -> None:
    assert plan([1, 2, 3], [0, 1]) == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1)]


def test_partition_sizes_sum_every_broker_log_dir_and_partition_of_the_named_topics() -> None:
    def log_dir(topics: dict[str, list[int]]) -> dict:
        return {
            "log_dir": "/data",
            "topics": [
                {"name": t, "partitions": [{"partition_index": n, "partition_size": b}
                                           for n, b in enumerate(sizes)]}
                for t, sizes in topics.items()
            ],
        }  # fmt: skip

    answer = [
        {"broker": 1, "log_dirs": [log_dir({"events": [100, 20], "other": [999]})]},
        {"broker": 2, "log_dirs": [log_dir({"events": [5]}), log_dir({"lists": [7]})]},
    ]
    assert partition_sizes(answer, ["events", "lists", "empty"]) == {
        "events": 125,
        "lists": 7,
        "empty": 0,
    }


def test_latest_record_bytes_keeps_the_last_record_per_key_and_drops_deleted_keys() -> None:
    records = [
        Record(0, 1, b"u1", b"x" * 10),
        Record(0, 0, b"u1", b"x" * 3),
        Record(1, 0, b"u22", b"y" * 5),
        Record(1, 1, b"u22", None),
        Record(1, 2, b"u3", b"z" * 4),
    ]
    assert sorted(latest_record_bytes(records)) == [2 + 4, 2 + 10]


def test_retention_names_compaction_days_and_no_time_limit() -> None:
    assert retention({"cleanup.policy": "compact"}) == "compacted"
    assert retention({"cleanup.policy": "delete", "retention.ms": str(7 * 86_400_000)}) == (
        "7 days"
    )
    assert retention({"cleanup.policy": "delete", "retention.ms": "-1"}) == "no time limit"


def test_sizes_turn_readings_into_per_user_and_per_million_event_figures() -> None:
    s = sizes(
        events=200_000,
        users=1_000,
        cpu_s=80.0,
        rss_start=1_000 * 2**20,
        rss=1_500 * 2**20,
        disk_growth=400_000,
        state_bytes=[1_000, 1_400],
        topic_volume={"events": 20 * 2**20, "recommendations": 50 * 2**20},
        topic_records={"events": 200_000, "recommendations": 80_000},
    )
    assert s["events_per_core_s"] == 2_500
    assert s["events_per_list"] == 2.5
    assert (s["worker_rss_start_mb"], s["worker_rss_mb"]) == (1_000, 1_500)
    assert s["rocksdb_bytes_per_user"] == 400
    assert s["changelog_bytes_per_user_state"] == 1_200
    assert s["topic_mb_per_million_events"] == {"events": 100.0, "recommendations": 250.0}
    assert s["topic_bytes_per_record"] == {"events": 105, "recommendations": 655}


def test_a_run_with_one_broken_guarantee_is_not_correct() -> None:
    assert all_correct({"runs": [run(), run()]})
    assert not all_correct({"runs": [run(), run(checks={**ZERO, "uncovered": 1})]})


def test_a_sizes_part_with_a_broken_guarantee_is_not_correct() -> None:
    assert not all_correct({"runs": [run()], "sizes": {"checks": {**ZERO, "drifted": 2}}})


def test_the_table_has_a_row_per_run_with_its_pauses_and_checks_and_the_machine() -> None:
    machine = {"cpu": "Some CPU", "cores": 2, "torch": "2.x", "gpu": None}
    runs = [run(), run(workers=1, standby=0, takeover_pause_s=[20.0, 21.25])]
    lines = table({"runs": runs, "machine": machine}).splitlines()
    assert lines[1].split() == ["2", "1", "950", "40.0", "12000.0", "11.5"] + ["0"] * 5
    assert lines[2].split()[:7] == ["1", "0", "950", "40.0", "12000.0", "20.0,", "21.2"]
    assert lines[-1] == "machine: Some CPU, 2 cores, torch 2.x"


def test_a_burst_as_large_as_the_run_is_refused_before_anything_starts() -> None:
    result = CliRunner().invoke(
        scale_command, ["--events", "1000", "--burst", "1000"], obj=Settings()
    )
    assert result.exit_code == 2
    assert "--burst" in result.output


def test_worker_counts_must_be_a_comma_separated_list() -> None:
    result = CliRunner().invoke(scale_command, ["--workers", "1,two"], obj=Settings())
    assert result.exit_code == 2
    assert "comma-separated" in result.output


def test_an_empty_worker_list_plans_no_run_so_only_the_sizes_part_runs() -> None:
    assert int_list(None, None, "1, 2,3") == [1, 2, 3]
    assert plan(int_list(None, None, ""), [0, 1]) == []
