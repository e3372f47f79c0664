"""`rtrank bench pipeline` end to end on the test broker: what its --json promises."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from kafka import KafkaAdminClient

from rtrank.streams.bench.latency_breakdown import STAGES
from rtrank.streams.bench.pipeline_bench import bench
from rtrank.streams.settings import Settings
from tests.integration.conftest import wait_for


@pytest.fixture
def torch_threads_kept():
    """The bench sets torch's threads for its model-only figure; later tests keep theirs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def topics(bootstrap: str) -> set[str]:
    """The broker's topics, Kafka's internal ones (``__…``) left out."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {name for name in admin.list_topics() if not name.startswith("__")}
    finally:
        admin.close()


def test_bench_pipeline_json_has_both_rates_their_ratios_and_the_latency_at_each_offered_rate(
    kafka_broker, monkeypatch, torch_threads_kept
) -> None:
    """Exit code 0 also means the worker answered all 8,000 events (the bench fails when
    it does not), and a run that succeeded leaves none of its topics on the broker."""
    before = topics(kafka_broker.bootstrap)
    monkeypatch.setenv("RTRANK_BROKER", f"kafka://{kafka_broker.bootstrap}")
    args = ["pipeline", "--events", "8000", "--users", "800", "--items", "300"]
    args += ["--rates", "100,150", "--latency-seconds", "2", "--warm-up-seconds", "1", "--json"]
    result = CliRunner().invoke(bench, args, obj=Settings.from_env())
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout.strip().splitlines()[-1])
    assert r["passthrough_eps"] > 0 and r["pipeline_eps"] > 0 and r["faust_passthrough_eps"] > 0
    assert r["ratio"] == pytest.approx(r["pipeline_eps"] / r["passthrough_eps"], abs=1e-3)
    assert r["faust_ratio"] == pytest.approx(
        r["faust_passthrough_eps"] / r["passthrough_eps"], abs=1e-3
    )
    assert r["ratio_to_faust"] == pytest.approx(
        r["pipeline_eps"] / r["faust_passthrough_eps"], abs=1e-3
    )
    assert [run["offered_eps"] for run in r["latency"]] == [100, 150]
    assert r["warm_up_s"] == 1.0
    for run in r["latency"]:
        # One list per user per batch: at least one list, never more lists than events offered.
        assert 0 < run["answered"] <= run["offered_eps"] * 2
        assert 0 < run["p50"] <= run["p99"]
        assert set(run["stages"]) == set(STAGES)
        assert all(0 <= s["p50"] <= s["p99"] for s in run["stages"].values())
        # The worker's stages up to the model's answer come within the event's whole way.
        up_to_model = ("fetch", "handover", "queued", "inference")
        assert sum(run["stages"][stage]["p50"] for stage in up_to_model) > 0
        assert run["stages"]["inference"]["p50"] <= run["p99"]
        # The test broker is not one the bench started: only the processes it knows of.
        assert set(run["cores"]) >= {"worker", "model", "bench"}
        assert run["cores"]["worker"] > 0 and run["cores"]["model"] > 0
        slowest = run["slowest_windows"]
        assert 1 <= slowest["slowest"] <= slowest["of"]
        # The slowest lists were each answered by a batch of one event or more.
        means = run["slowest_means"]
        assert set(means["stages"]) == set(STAGES)
        assert means["events_per_batch"] >= 1
        # The timed events were answered in model calls of one event or more each.
        calls = run["model_calls"]
        assert calls["per_s"] > 0 and calls["events_per_call"] >= 1
    floor = r["passthrough_latency"]
    # 1 s of warm-up, then 2 s timed, at each rate: the warm-up's events are not counted.
    assert [(run["offered_eps"], run["received"]) for run in floor] == [(100, 200), (150, 300)]
    assert all(0 < run["p50"] <= run["p99"] for run in floor)
    assert (r["device"], r["items"], r["catalogue"]) == ("cpu", 300, True)
    assert r["model_only_users_per_s"] > 0
    assert r["machine"]["cores"] >= 1
    wait_for(
        lambda: topics(kafka_broker.bootstrap) <= before,
        timeout_s=30,
        message="the bench left topics on the broker",
    )
