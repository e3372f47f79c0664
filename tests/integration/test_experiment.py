"""Experiments against the real broker: a worker serving an A/B experiment labels every
list with its user's variant and counts them per variant; one serving an interleaving
credits every item to the ranker that placed it; `rtrank experiment report` reads either
run back from the topics."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.worker_metrics import samples
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.cli.experiment import report_command
from rtrank.streams.cli.produce import send_events
from rtrank.streams.experiments.definition import load_experiment
from rtrank.streams.settings import Settings
from tests.integration.conftest import SYNTHETIC_ITEMS, latest_by_key, read_topic, wait_delivered

USERS, EVENTS = 60, 400


@pytest.fixture
def settings(settings: Settings, synthetic_checkpoint: Path, tmp_path: Path) -> Settings:
    path = tmp_path / "experiment.json"
    path.write_text(
        json.dumps(
            {
                "name": "mmr",
                "salt": "integration",
                "mode": "ab",
                "variants": [
                    {"name": "control", "share": 0.5},
                    {"name": "diverse", "share": 0.5, "overrides": {"mmr_lambda": 0.5}},
                ],
            }
        )
    )
    return settings.replace(checkpoint=str(synthetic_checkpoint), experiment_file=str(path))


def replayed_lists(settings: Settings, worker: WorkerProcess, seed: int) -> list[dict]:
    """Start ``worker``, replay a synthetic stream to it (lists between events) and return
    every list it wrote; at least one."""
    worker.start()
    replay = synthetic_replay(users=USERS, items=SYNTHETIC_ITEMS, events=EVENTS, seed=seed)
    send_events(settings, replay.events, rate=400, progress=False)
    worker.drain(EVENTS)
    wait_delivered(settings, worker)
    records = read_topic(settings.bootstrap_servers, settings.recommendations_topic)
    lists = [json.loads(r.value) for r in records]
    assert lists
    return lists


def test_lists_carry_their_users_variant_and_the_report_reads_them_from_the_topics(
    settings, worker
) -> None:
    experiment = load_experiment(settings.experiment_file)
    lists = replayed_lists(settings, worker, seed=3)
    for rec in lists:
        expected = experiment.variant_of(rec["user_id"]).name
        assert rec["experiment"] == {"name": "mmr", "variant": expected}
    per_variant = Counter(rec["experiment"]["variant"] for rec in lists)
    assert set(per_variant) == {"control", "diverse"}
    counted = {
        s.labels["variant"]: s.value
        for s in samples(worker.metrics())
        if s.name == "rtrank_experiment_lists_total"
    }
    assert counted == per_variant

    result = CliRunner().invoke(report_command, ["--json"], obj=settings)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    users = latest_by_key(read_topic(settings.bootstrap_servers, settings.events_topic))
    assigned = Counter(experiment.variant_of(u).name for u in users)
    assert {v["name"]: v["users"] for v in report["variants"]} == dict(assigned)
    assert report["judged"] + report["untested"] == EVENTS  # a user's first: no list before
    assert all(v["events"] > 0 for v in report["variants"])
    assert sum(v["events"] for v in report["variants"]) == report["judged"]
    assert report["sample_ratio"]["df"] == 1


def test_interleaved_lists_credit_each_item_to_its_ranker_and_the_report_counts_wins(
    settings, worker, tmp_path
) -> None:
    path = tmp_path / "interleave.json"
    path.write_text(
        json.dumps(
            {
                "name": "mmr-interleaved",
                "salt": "integration",
                "mode": "interleave",
                "variants": [
                    {"name": "control", "share": 0.5},
                    {"name": "diverse", "share": 0.5, "overrides": {"mmr_lambda": 0.5}},
                ],
            }
        )
    )
    worker.settings = settings = settings.replace(experiment_file=str(path))
    lists = replayed_lists(settings, worker, seed=5)
    assert {rec["experiment"]["variant"] for rec in lists} == {"interleaved"}
    teams = Counter(item.get("team") for rec in lists for item in rec["items"])
    assert set(teams) == {"control", "diverse"}  # every item credited to one ranker

    result = CliRunner().invoke(report_command, ["--json"], obj=settings)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert 0 < report["interleaved"]["events"] == report["judged"]
    # decided: events whose next item one ranker placed; how many depends on the lists a
    # run's batching made (a CI run once had none), the unit tests pin the counting
    assert sum(v["wins"] for v in report["variants"]) == report["interleaved"]["decided"]
    assert report["interleaved"]["decided"] <= report["judged"]
