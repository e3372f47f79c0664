"""A worker's /metrics read back: summed samples, the online evaluation, its cumulative counts."""

from __future__ import annotations

import pytest

from rtrank.streams.bench.worker_metrics import (
    cumulative,
    metric_value,
    metric_values,
    online_quality,
)
from rtrank.streams.worker.metrics import Metrics
from rtrank.streams.worker.online_eval import OnlineQuality


def exposition(metrics: Metrics) -> str:
    return metrics.exposition().decode()


def test_metric_value_sums_a_counter_over_its_label_sets() -> None:
    metrics = Metrics()
    metrics.dead_letters.labels("not_json").inc(2)
    metrics.dead_letters.labels("missing_field").inc(3)
    assert metric_value(exposition(metrics), "rtrank_dead_letters_total") == 5


def test_metric_value_reads_a_histograms_count_and_sum() -> None:
    metrics = Metrics()
    for size in (3, 5):
        metrics.batch_size.observe(size)
    text = exposition(metrics)
    assert metric_value(text, "rtrank_batch_events_count") == 2
    assert metric_value(text, "rtrank_batch_events_sum") == 8


def test_metric_value_of_a_name_not_exposed_is_zero() -> None:
    assert metric_value(exposition(Metrics()), "rtrank_no_such_metric_total") == 0


def test_metric_values_read_several_names_in_the_order_asked_and_zero_for_one_not_exposed() -> None:
    metrics = Metrics()
    metrics.batch_size.observe(4)
    metrics.dead_letters.labels("not_json").inc(2)
    text = exposition(metrics)
    names = ("rtrank_dead_letters_total", "rtrank_no_such_metric_total", "rtrank_batch_events_sum")
    assert metric_values(text, *names) == (2, 0, 4)


def test_online_quality_reads_rolling_and_per_version_figures_from_the_metrics() -> None:
    metrics = Metrics()
    quality = OnlineQuality(metrics, window=4)
    quality.observe(["a", "b"], 3, "a")  # hit at rank 0
    quality.observe(["a", "b"], 3, "z")  # miss
    quality.observe(["c", "d", "e"], 4, "e")  # hit at rank 2
    quality.observe([], 4, "x")  # nothing recommended yet: not evaluated
    q = online_quality(exposition(metrics))
    assert q["evaluated"] == 3
    assert q["hit@10"] == pytest.approx(2 / 3)
    assert q["ndcg@10"] == pytest.approx(1.5 / 3)
    assert q["by_version"] == {
        3: {"evaluated": 2, "hit@10": 0.5, "ndcg@10": 0.5},
        4: {"evaluated": 1, "hit@10": 1.0, "ndcg@10": 0.5},
    }


def test_cumulative_counts_every_tested_event_of_all_versions() -> None:
    metrics = Metrics()
    quality = OnlineQuality(metrics, window=1)
    quality.observe(["a", "b"], 3, "b")  # hit at rank 1
    quality.observe(["a"], 4, "z")  # miss
    tested, hits, ndcg_sum = cumulative(exposition(metrics))
    assert (tested, hits) == (2, 1)
    assert ndcg_sum == pytest.approx(1 / 1.5849625)
