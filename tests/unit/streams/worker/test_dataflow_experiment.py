"""With an experiment, the dataflow asks for each user's variant, every list carries the
experiment and variant, every training example its variant, and /metrics counts lists and
prequential quality per variant (doubles in ``conftest.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rtrank.streams.experiments.definition import load_experiment
from rtrank.streams.settings import Settings
from rtrank.streams.worker.dataflow import Dataflow
from rtrank.streams.worker.metrics import Metrics
from tests.unit.streams.worker.conftest import run

TS = 1_700_000_000_000
USERS = [f"u{n}" for n in range(40)]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "exp.json"
    path.write_text(
        json.dumps(
            {
                "name": "mmr",
                "salt": "s",
                "variants": [
                    {"name": "control", "online_learning": True},
                    {"name": "diverse", "overrides": {"mmr_lambda": 0.7}},
                ],
            }
        )
    )
    return Settings(batch_max_ms=0, batch_catch_up_ms=0, experiment_file=str(path))


@pytest.fixture
def flow(settings, scorer, sink, states, source) -> Dataflow:  # noqa: ANN001 - doubles
    return Dataflow(settings, scorer, sink, states, Metrics(), source)


def event(user: str, item: str) -> dict:
    return {"user_id": user, "item_id": item, "event_type": "view", "ts": TS}


def variant_of(settings: Settings, user: str) -> str:
    return load_experiment(settings.experiment_file).variant_of(user).name


def test_each_user_is_scored_by_their_variant(flow, settings, scorer, make_record) -> None:
    run(flow, *[make_record(n, event(u, "i1")) for n, u in enumerate(USERS)])
    [(requests, _)] = scorer.calls
    assert [r.variant for r in requests] == [variant_of(settings, u) for u in USERS]


def test_every_list_carries_the_experiment_and_the_users_variant(
    flow, settings, sink, make_record
) -> None:
    run(flow, *[make_record(n, event(u, "i1")) for n, u in enumerate(USERS)])
    lists = [s.json() for s in sink.on(settings.recommendations_topic)]
    assert {rec["user_id"]: rec["experiment"] for rec in lists} == {
        u: {"name": "mmr", "variant": variant_of(settings, u)} for u in USERS
    }
    assert {rec["experiment"]["variant"] for rec in lists} == {"control", "diverse"}


def test_every_training_example_carries_the_users_variant(
    flow, settings, sink, make_record
) -> None:
    run(flow, *[make_record(n, event(u, "i1")) for n, u in enumerate(USERS)])
    examples = [s.json() for s in sink.on(settings.training_topic)]
    assert {e["user_id"]: e["variant"] for e in examples} == {
        u: variant_of(settings, u) for u in USERS
    }


def test_lists_and_prequential_quality_are_counted_per_variant(flow, settings, make_record) -> None:
    """The fake scorer lists "after-i1" after i1: each user's second event is a hit."""
    run(flow, *[make_record(n, event(u, "i1")) for n, u in enumerate(USERS)])
    run(flow, *[make_record(40 + n, event(u, "after-i1")) for n, u in enumerate(USERS)])
    sample = flow.metrics.registry.get_sample_value
    for variant in ("control", "diverse"):
        users = sum(variant_of(settings, u) == variant for u in USERS)
        labels = {"variant": variant}
        assert sample("rtrank_experiment_lists_total", labels) == 2 * users
        assert sample("rtrank_experiment_tested_total", labels) == users
        assert sample("rtrank_experiment_hits_total", labels) == users


def test_without_an_experiment_lists_and_examples_carry_none(
    scorer, sink, states, source, make_record
) -> None:
    flow = Dataflow(Settings(batch_max_ms=0), scorer, sink, states, Metrics(), source)
    run(flow, make_record(0, event("u1", "i1")))
    [rec] = [s.json() for s in sink.on(flow.settings.recommendations_topic)]
    [example] = [s.json() for s in sink.on(flow.settings.training_topic)]
    assert "experiment" not in rec and "variant" not in example
