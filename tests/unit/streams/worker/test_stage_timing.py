"""An event's stage durations from its stamps and its batch's (a fake clock: exact
readings)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from rtrank.streams.worker.stage_timing import (
    STAGES,
    BatchStamps,
    StageHistograms,
    event_stages,
    stage_ms,
)

WALL_OFFSET = 1_700_000_000.0  # the wall clock's lead over the monotonic one
BATCH = BatchStamps(started=100.030, scored=100.045, wall_offset=WALL_OFFSET, compute=0.012)


def test_each_stage_lasts_from_one_stamp_to_the_next() -> None:
    appended_ms = round((100.000 + WALL_OFFSET) * 1000)
    stages = event_stages(appended_ms, fetched=100.004, ingested=100.005, batch=BATCH)
    assert stages == pytest.approx(
        {"fetch": 0.004, "handover": 0.001, "queued": 0.025, "inference": 0.015, "compute": 0.012},
        abs=1e-6,
    )


def test_an_unknown_append_time_gives_no_fetch_stage() -> None:
    stages = event_stages(0, fetched=100.004, ingested=100.005, batch=BATCH)
    assert stages["fetch"] == 0.0
    assert stages["handover"] == pytest.approx(0.001)


def test_an_unknown_read_time_gives_no_handover_stage() -> None:
    appended_ms = round((100.000 + WALL_OFFSET) * 1000)
    stages = event_stages(appended_ms, fetched=0.0, ingested=100.005, batch=BATCH)
    assert stages["handover"] == 0.0
    assert stages["fetch"] == pytest.approx(0.005, abs=1e-6)


def test_a_broker_clock_ahead_of_the_worker_gives_a_zero_fetch_stage() -> None:
    appended_ms = round((100.050 + WALL_OFFSET) * 1000)
    stages = event_stages(appended_ms, fetched=100.004, ingested=100.005, batch=BATCH)
    assert stages["fetch"] == 0.0


def test_stages_are_carried_in_milliseconds() -> None:
    assert stage_ms({"queued": 0.0251234, "inference": 0.015}) == {
        "queued": 25.123,
        "inference": 15.0,
    }


def test_each_stage_is_observed_under_its_label() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("stage_seconds", "test", ["stage"], registry=registry)
    StageHistograms(histogram).observe({"queued": 0.02, "emit": 0.001})
    total = {s: registry.get_sample_value("stage_seconds_sum", {"stage": s}) for s in STAGES}
    assert total == dict.fromkeys(STAGES, 0.0) | {"queued": 0.02, "emit": 0.001}
