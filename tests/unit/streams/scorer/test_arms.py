"""An experiment's variants in the model process (real models): each request is answered
by its variant's ranker, only the learning arm serves model updates, and an interleaved
list credits each item to the variant that placed it."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rtrank.model.item_ann import IvfIndex
from rtrank.model.updates import make_snapshot
from rtrank.streams.experiments.definition import INTERLEAVED
from rtrank.streams.scorer.model_wire import ScoreRequest
from rtrank.streams.scorer.scoring import Scorer
from rtrank.streams.scorer.served_model import ServedModel
from rtrank.streams.settings import Settings
from tests.unit.streams.scorer.test_scoring import small_checkpoint

HISTORY = ["item-1", "item-2", "item-3"]


def served(
    tmp_path: Path, mode: str = "ab", item_index: str = "exact", **frozen_overrides: object
) -> ServedModel:
    experiment = {
        "name": "e",
        "salt": "s",
        "mode": mode,
        "variants": [
            {"name": "learning", "online_learning": mode == "ab"},
            {"name": "frozen", "overrides": frozen_overrides},
        ],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    settings = Settings(
        broker="memory://",
        checkpoint=small_checkpoint(tmp_path),
        device="cpu",
        top_k=5,
        explore_slots=0,
        experiment_file=str(path),
        item_index=item_index,
    )
    return ServedModel(settings)


def request(variant: str) -> ScoreRequest:
    return ScoreRequest(HISTORY, HISTORY, variant)


def ids(items) -> list[str]:  # noqa: ANN001 - RankedItems
    return [i.item_id for i in items]


def test_each_request_is_answered_by_its_variants_ranker(tmp_path: Path) -> None:
    model = served(tmp_path, top_k=3)
    versions, lists = model.score([request("learning"), request("frozen")], [])
    assert [len(items) for items in lists] == [5, 3]
    assert versions == [3, 3]


def test_a_model_update_reaches_the_learning_arm_and_the_frozen_arm_keeps_its_checkpoint(
    tmp_path: Path,
) -> None:
    model = served(tmp_path)
    checkpoint = Scorer.setup(model.settings.checkpoint, "cpu")
    trained = Scorer.setup(model.settings.checkpoint, "cpu").model
    with torch.no_grad():
        trained.item_emb.weight.mul_(-1.0)  # a version that ranks very differently
    model.scorer.apply(make_snapshot(trained, checkpoint.vocab, 4))
    versions, (learning, frozen) = model.score([request("learning"), request("frozen")], [])
    assert versions == [4, 3]
    expected = checkpoint.recommend([request("frozen")], 5)[0]
    assert ids(frozen) == [i for i, _ in expected]
    assert ids(learning) != ids(frozen)
    frozen_weights = model.arms.arms["frozen"].scorer.model.item_emb.weight
    assert torch.equal(frozen_weights, checkpoint.model.item_emb.weight)


def test_an_interleaved_list_credits_each_item_to_the_variant_that_placed_it(
    tmp_path: Path,
) -> None:
    model = served(tmp_path, mode="interleave", mmr_lambda=0.3)
    _, [merged] = model.score([request(INTERLEAVED)], [])
    a = ids(model.arms.arms["learning"].lists([request(INTERLEAVED)])[0])
    b = ids(model.arms.arms["frozen"].lists([request(INTERLEAVED)])[0])
    assert len(merged) == 5
    assert {i.team for i in merged} <= {"learning", "frozen"}
    for team, own in (("learning", a), ("frozen", b)):
        placed = [i.item_id for i in merged if i.team == team]
        assert placed == [i for i in own if i in placed]  # in the team's own order
    assert all(i.to_json()["team"] == i.team for i in merged)


def test_without_an_experiment_every_list_has_the_served_version(tmp_path: Path) -> None:
    settings = Settings(broker="memory://", checkpoint=small_checkpoint(tmp_path), device="cpu")
    versions, lists = ServedModel(settings).score([request(""), request("")], [])
    assert versions == [3, 3] and len(lists) == 2


def test_a_frozen_variant_finds_its_items_with_the_configured_item_index(tmp_path: Path) -> None:
    model = served(tmp_path, item_index="ivf")
    assert isinstance(model.arms.arms["frozen"].scorer.items, IvfIndex)


def cached_request(
    user: str, partition: int, variant: str, history: list[str] = HISTORY
) -> ScoreRequest:
    return ScoreRequest(history, HISTORY, variant, user, partition, len(history))


def test_a_frozen_variant_encodes_its_users_next_events_from_its_own_cache(
    tmp_path: Path,
) -> None:
    model = served(tmp_path)
    frozen = model.arms.arms["frozen"].scorer
    model.score([cached_request("u1", 0, "frozen")], [])
    model.score([cached_request("u1", 0, "frozen", [*HISTORY, "item-4"])], [])
    assert "u1" in frozen.cache and "u1" not in model.scorer.cache
    assert frozen.cache.counts.hits == 1
    assert model.report().cache_lookups == {"hit": 1, "miss": 1, "restart": 0}


def test_forgetting_a_user_drops_them_from_every_variants_cache(tmp_path: Path) -> None:
    model = served(tmp_path)
    model.score([cached_request("u1", 0, "learning"), cached_request("u2", 0, "frozen")], [])
    model.score([cached_request("u1", 0, "frozen")], [])
    assert model.forget_users(["u1"]) == 2
    assert all("u1" not in s.cache for s in (model.scorer, model.arms.arms["frozen"].scorer))
    assert "u2" in model.arms.arms["frozen"].scorer.cache


def test_a_revoked_partition_leaves_no_user_in_any_variants_cache(tmp_path: Path) -> None:
    model = served(tmp_path)
    requests = [cached_request("u1", 3, "learning"), cached_request("u2", 3, "frozen")]
    model.score([*requests, cached_request("u3", 4, "frozen")], [])
    assert model.forget_partitions({3}) == 2
    assert model.report().cache_users == 1
    assert "u3" in model.arms.arms["frozen"].scorer.cache
