"""With an experiment running the trainer learns from the learning arm's examples only:
another arm's traffic never changes the model the learning arm serves (real torch)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rtrank.model.online import Example, OnlineConfig, OnlineLearner
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.vocab import Vocabulary
from rtrank.streams.records import TrainingExample
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.online_trainer import OTHER_ARM, Trainer, parse_example

ITEMS = [f"item-{n}" for n in range(30)]


def example(variant: str, n: int = 0) -> bytes:
    prefix = [ITEMS[(n + k) % 30] for k in range(3)]
    return TrainingExample("u", prefix, ITEMS[(n + 3) % 30], "view", 1, 1.0, variant).to_json()


def test_an_example_of_another_arm_is_not_trained_on() -> None:
    assert parse_example(example("frozen"), arm="learning") is OTHER_ARM


def test_an_example_of_the_learning_arm_is_trained_on() -> None:
    assert isinstance(parse_example(example("learning"), arm="learning"), Example)


def test_when_no_variant_learns_online_no_example_is_trained_on() -> None:
    assert parse_example(example("a"), arm="") is OTHER_ARM


def test_without_an_experiment_every_example_is_trained_on() -> None:
    assert isinstance(parse_example(example("a")), Example)


def test_the_trainer_takes_its_arm_from_the_experiment_file(tmp_path: Path) -> None:
    path = tmp_path / "exp.json"
    path.write_text(
        json.dumps(
            {
                "name": "e",
                "salt": "s",
                "variants": [{"name": "frozen"}, {"name": "learning", "online_learning": True}],
            }
        )
    )
    assert Trainer(Settings(experiment_file=str(path))).arm == "learning"
    assert Trainer(Settings()).arm is None


def learner() -> OnlineLearner:
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=len(ITEMS) + 1, max_len=8, dim=16, dropout=0.0))
    return OnlineLearner(model, Vocabulary(ITEMS), 3, OnlineConfig(lr=0.05))


def train_on(learn: OnlineLearner, records: list[bytes]) -> None:
    """What the trainer's loop does with a poll's records."""
    fresh = [e for r in records for e in [parse_example(r, "learning")] if isinstance(e, Example)]
    if fresh:
        learn.step(fresh)


def weights(learn: OnlineLearner) -> dict[str, torch.Tensor]:
    return {n: t.detach().clone() for n, t in learn.model.state_dict().items()}


def test_the_frozen_arms_traffic_never_changes_the_learning_arms_model() -> None:
    learn = learner()
    before = weights(learn)
    train_on(learn, [example("frozen", n) for n in range(200)])
    after = weights(learn)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert not learn.has_changes


def test_the_learning_arms_traffic_changes_its_model() -> None:
    learn = learner()
    before = weights(learn)
    train_on(learn, [example("learning", n) for n in range(200)])
    after = weights(learn)
    assert any(not torch.equal(before[n], after[n]) for n in before)
