"""Reading a worker's ``/metrics`` back, for the demo, the benchmarks and the tests.

    metric_value(worker.metrics(), "rtrank_events_total")   # summed over its label sets
    metric_values(worker.metrics(), "rtrank_batch_events_count", "rtrank_batch_events_sum")
    online_quality(worker.metrics())   # {"hit@10": ..., "ndcg@10": ..., "by_version": ...}
    tested, hits, ndcg_sum = cumulative(worker.metrics())

The text is parsed by ``prometheus_client.parser``; sample names are as exposed (a counter's
``_total``, a histogram's ``_count`` / ``_sum``). What the figures mean is written where the
worker counts them (`rtrank.streams.worker.online_eval`, `rtrank.streams.worker.metrics`).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

EVALUATED = "rtrank_online_evaluated_total"  # per model_version, cumulative
HITS = "rtrank_online_hits_total"
NDCG_SUM = "rtrank_online_ndcg_total"


def samples(exposition: str) -> Iterator[Sample]:
    """Every sample of a Prometheus text exposition."""
    for family in text_string_to_metric_families(exposition):
        yield from family.samples


def metric_value(exposition: str, name: str) -> float:
    """Sum of every sample of ``name`` (all label sets); 0 when there is none."""
    return metric_values(exposition, name)[0]


def metric_values(exposition: str, *names: str) -> tuple[float, ...]:
    """`metric_value` of each of ``names``, in that order, from one parse of the text."""
    totals = dict.fromkeys(names, 0.0)
    for sample in samples(exposition):
        if sample.name in totals:
            totals[sample.name] += sample.value
    return tuple(totals[name] for name in names)


def online_quality(exposition: str) -> dict:
    """The online evaluation in a worker's ``/metrics`` text.

    Returns ``{"hit@10", "ndcg@10"}`` (rolling window), ``"evaluated"`` (events, all
    versions) and ``"by_version"``: ``{version: {"evaluated", "hit@10", "ndcg@10"}}``
    (cumulative, for the versions still kept).
    """
    out: dict = {"hit@10": 0.0, "ndcg@10": 0.0, "evaluated": 0, "by_version": {}}
    sums: dict[int, dict[str, float]] = {}
    for sample in samples(exposition):
        if sample.name == "rtrank_online_hit_at_10":
            out["hit@10"] = sample.value
        elif sample.name == "rtrank_online_ndcg_at_10":
            out["ndcg@10"] = sample.value
        elif sample.name in (EVALUATED, HITS, NDCG_SUM) and "model_version" in sample.labels:
            version = int(sample.labels["model_version"])
            sums.setdefault(version, {})[sample.name] = sample.value
    for version, s in sorted(sums.items()):
        n = s.get(EVALUATED, 0.0)
        out["evaluated"] += int(n)
        out["by_version"][version] = {
            "evaluated": int(n),
            "hit@10": s.get(HITS, 0.0) / n if n else 0.0,
            "ndcg@10": s.get(NDCG_SUM, 0.0) / n if n else 0.0,
        }
    return out


def cumulative(exposition: str) -> tuple[float, float, float]:
    """(tested events, hits, NDCG@10 sum) since the worker started, all versions: the
    difference of two readings is the quality of the events in between."""
    return metric_values(
        exposition,
        "rtrank_online_tested_total",
        "rtrank_online_tested_hits_total",
        "rtrank_online_tested_ndcg_total",
    )
