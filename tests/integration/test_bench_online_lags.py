"""``rtrank bench online`` reads freshness and training offsets from real published versions."""

from __future__ import annotations

import torch
from kafka import KafkaProducer

from rtrank.model.online import Example, OnlineConfig, OnlineLearner
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.vocab import Vocabulary
from rtrank.streams.bench.online_bench import PublishedVersions
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.model_updates import to_messages
from rtrank.streams.worker.topics_and_tables import ensure_topics


def publish(
    settings: Settings, learner: OnlineLearner, version: int, lags: dict, offsets: dict
) -> None:
    learner.step([Example(("a", "b"), "c")])
    meta = {"lag_ms_hist": lags, "offsets": offsets}
    update = learner.publish(version, snapshot=False, meta=meta)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    try:
        for key, value in to_messages(update, settings.update_max_bytes):
            producer.send(settings.model_updates_topic, key=key, value=value, partition=0)
        producer.flush()
    finally:
        producer.close()


def test_the_lag_histogram_adds_each_version_once_including_later_ones(settings) -> None:
    ensure_topics(settings)
    torch.manual_seed(0)
    vocab = Vocabulary(["a", "b", "c"])
    model = SASRec(SASRecConfig(num_items=len(vocab), max_len=4, dim=8))
    learner = OnlineLearner(model, vocab, 1, OnlineConfig(negatives=2))
    versions = PublishedVersions(settings)
    try:
        publish(settings, learner, 2, {"100": 2}, {"0": 2})
        assert versions.read() == {100: 2}
        publish(settings, learner, 3, {"100": 1, "900": 4}, {"0": 2, "1": 5})
        assert versions.read() == {100: 3, 900: 4}
        assert versions.trained == {2: {0: 2}, 3: {0: 2, 1: 5}}
    finally:
        versions.close()
