"""The trainer's online learning takes its bounds from the settings."""

from __future__ import annotations

from rtrank.streams.settings import Settings
from rtrank.streams.trainer.online_trainer import online_config


def test_the_vocabulary_cap_reaches_the_online_learner() -> None:
    assert online_config(Settings(vocab_max_items=67)).max_items == 67
