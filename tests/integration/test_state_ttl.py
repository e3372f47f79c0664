"""Idle users leave the user table by the broker's clock (real broker, real worker, RocksDB)."""

from __future__ import annotations

import json
import time

from rtrank.streams.bench.worker_metrics import metric_value
from rtrank.streams.cli.produce import send_events
from tests.integration.conftest import read_topic, wait_for

CLAIMED_TS = 1_600_000_000_000  # 2020: what the producers claim; the broker's clock decides
WAVE = 40


def wave(name: str) -> list[dict]:
    """One event each of ``WAVE`` users never seen before."""
    return [
        {"user_id": f"{name}-{i}", "item_id": str(i % 50 + 1), "event_type": "view",
         "ts": CLAIMED_TS}
        for i in range(WAVE)
    ]  # fmt: skip


def table_by_changelog(settings) -> tuple[set[str], set[str]]:
    """(users whose last changelog record is a state, users whose last one is a tombstone)."""
    changelog = f"{settings.app_id}-user_to_history-changelog"
    last: dict[str, bytes | None] = {}
    for record in sorted(read_topic(settings.bootstrap_servers, changelog),
                         key=lambda r: (r.partition, r.offset)):  # fmt: skip
        last[json.loads(record.key)] = record.value
    live = {user for user, value in last.items() if value is not None}
    return live, set(last) - live


def test_a_stream_of_ever_new_users_keeps_only_those_active_within_the_ttl(
    settings, worker, synthetic_checkpoint
) -> None:
    ttl_s = 1.0
    settings = settings.replace(checkpoint=str(synthetic_checkpoint), state_ttl_s=ttl_s)
    worker.settings = settings
    worker.start()
    early = [e for n in ("w0", "w1", "w2") for e in wave(n)]
    for n in ("w0", "w1", "w2"):
        send_events(settings, wave(n), progress=False)
        time.sleep(ttl_s / 2)
    time.sleep(ttl_s * 1.5)  # the early users are idle past the TTL once the next event lands
    last = wave("w3")
    send_events(settings, last, progress=False)

    early_users = {e["user_id"] for e in early}
    last_users = {e["user_id"] for e in last}

    def early_ones_expired() -> bool:
        live, tombstoned = table_by_changelog(settings)
        return early_users <= tombstoned and last_users <= live

    wait_for(early_ones_expired, timeout_s=60, interval_s=1.0,
             message="the idle users were not all tombstoned")  # fmt: skip
    live, tombstoned = table_by_changelog(settings)
    assert live == last_users  # the table holds one wave, not four
    assert metric_value(worker.metrics(), "rtrank_users_expired_total") == len(early_users)
