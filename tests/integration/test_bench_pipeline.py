"""`rtrank bench pipeline` end to end on the test broker: what its --json promises."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from rtrank.streams.bench.pipeline_bench import bench
from rtrank.streams.settings import Settings


@pytest.fixture
def torch_threads_kept():
    """The bench sets torch's threads for its model-only figure; later tests keep theirs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_bench_pipeline_json_has_both_rates_their_ratios_and_the_latency_at_the_offered_rate(
    kafka_broker, monkeypatch, torch_threads_kept
) -> None:
    monkeypatch.setenv("RTRANK_BROKER", f"kafka://{kafka_broker.bootstrap}")
    args = ["pipeline", "--events", "8000", "--users", "800", "--items", "300"]
    args += ["--rate", "100", "--latency-seconds", "3", "--json"]
    result = CliRunner().invoke(bench, args, obj=Settings.from_env())
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout.strip().splitlines()[-1])
    assert r["passthrough_eps"] > 0 and r["pipeline_eps"] > 0 and r["faust_passthrough_eps"] > 0
    assert r["ratio"] == pytest.approx(r["pipeline_eps"] / r["passthrough_eps"], abs=1e-3)
    assert r["faust_ratio"] == pytest.approx(
        r["faust_passthrough_eps"] / r["passthrough_eps"], abs=1e-3
    )
    assert r["latency_ms"]["answered"] > 0
    assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p99"]
    assert (r["offered_eps"], r["device"], r["items"]) == (100, "cpu", 300)
    assert r["model_only_users_per_s"] > 0
    assert r["machine"]["cores"] >= 1
