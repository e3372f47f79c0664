"""`rtrank bench scale` end to end on the test broker: a small run of real workers (one
SIGKILLed and restarted) beside a trainer, and the sizes part; what its --json promises."""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner

from rtrank.streams.bench.pipeline_bench import bench
from rtrank.streams.settings import Settings
from tests.integration.conftest import SYNTHETIC_ITEMS, wait_for
from tests.integration.test_bench_pipeline import topics

CHECKS = ["unanswered", "uncovered", "seen_item_lists", "misapplied", "drifted"]


def test_bench_scale_json_has_each_runs_figures_its_takeover_pause_and_zero_check_counts(
    kafka_broker, synthetic_checkpoint: Path, monkeypatch
) -> None:
    """Exit code 0 also means every correctness count was 0 (the bench exits 1 otherwise);
    a run that succeeded leaves none of its topics on the broker."""
    before = topics(kafka_broker.bootstrap)
    monkeypatch.setenv("RTRANK_BROKER", f"kafka://{kafka_broker.bootstrap}")
    args = ["scale", "--workers", "2", "--standby", "1", "--kills", "1", "--events", "1500"]
    args += ["--burst", "500", "--rate", "100", "--users", "150", "--sizes-users", "40"]
    args += ["--items", str(SYNTHETIC_ITEMS), "--checkpoint", str(synthetic_checkpoint)]
    args += ["--trainer", "--json"]
    result = CliRunner().invoke(bench, args, obj=Settings.from_env())
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout.strip().splitlines()[-1])

    [run] = r["runs"]
    assert (run["workers"], run["standby"], run["trainer"], run["events"]) == (2, 1, True, 1500)
    assert run["answered_eps"] > 0
    assert 0 < run["latency_ms"]["p50"] <= run["latency_ms"]["p99"]
    [pause] = run["takeover_pause_s"]
    assert 0 < pause < math.inf
    assert run["checks"] == dict.fromkeys(CHECKS, 0)

    sizes = r["sizes"]
    assert (sizes["users"], sizes["events"]) == (40, 40 * sizes["events_per_user"])
    assert sizes["checks"] == dict.fromkeys(CHECKS, 0)
    assert sizes["events_per_core_s"] > 0
    assert 0 < sizes["worker_rss_start_mb"] and 0 < sizes["worker_rss_mb"]
    assert sizes["rocksdb_bytes_per_user"] > 0 and sizes["changelog_bytes_per_user_state"] > 0
    volume = sizes["topic_mb_per_million_events"]
    assert set(volume) == {"events", "recommendations", "training", "user_to_history_changelog"}
    assert all(mb > 0 for mb in volume.values())
    assert set(sizes["topic_bytes_per_record"]) == set(volume)
    assert all(size > 0 for size in sizes["topic_bytes_per_record"].values())
    assert sizes["retention"]["user_to_history_changelog"] == "compacted"
    assert sizes["retention"]["events"] == "7 days"
    assert r["machine"]["cores"] >= 1
    wait_for(
        lambda: topics(kafka_broker.bootstrap) <= before,
        timeout_s=30,
        message="the bench left topics on the broker",
    )
