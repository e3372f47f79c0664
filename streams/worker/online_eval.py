"""Prequential (test-then-train) evaluation in the worker.

When an event arrives, the user's last emitted list (kept in
`rtrank.streams.worker.state.UserState`) is the test: was the event's item in it, at which
rank? Hit@10 and NDCG@10 are counted in Prometheus metrics, as a rolling window over the last
``eval_window`` evaluated events and cumulatively per model version of the list that was
tested. The demo and the benchmarks read them back from ``/metrics``
(`rtrank.streams.bench.worker_metrics`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from rtrank.streams.worker.metrics import Metrics

K = 10
KEPT_VERSIONS = 50  # per-version label sets kept in the metrics (older ones are dropped)


def rank_of(items: list[str], item_id: str) -> int | None:
    """0-based rank of ``item_id`` in ``items``, None when absent."""
    try:
        return items.index(item_id)
    except ValueError:
        return None


def gains(rank: int | None, k: int = K) -> tuple[float, float]:
    """(hit, ndcg) of one event whose item had ``rank`` in the tested list."""
    if rank is None or rank >= k:
        return 0.0, 0.0
    return 1.0, 1.0 / math.log2(rank + 2)


@dataclass
class OnlineQuality:
    """Feeds the worker's online-evaluation metrics; ``observe`` once per evaluated event."""

    metrics: Metrics
    window: int = 1000
    _recent: deque = field(default_factory=deque)  # (hit, ndcg) of the last `window` events
    _hits: float = 0.0  # running sums over _recent
    _ndcg: float = 0.0
    _versions: deque = field(default_factory=deque)

    def observe(
        self, last_list: list[str], last_version: int, item_id: str, variant: str = ""
    ) -> None:
        """Test ``item_id`` against ``last_list``; ``variant``: the user's experiment
        variant, counted per variant too ("": no experiment)."""
        if not last_list:
            return  # nothing was recommended to this user yet: nothing to test
        hit, ndcg = gains(rank_of(last_list, item_id))
        self._recent.append((hit, ndcg))
        self._hits += hit
        self._ndcg += ndcg
        while len(self._recent) > self.window:
            old_hit, old_ndcg = self._recent.popleft()
            self._hits -= old_hit
            self._ndcg -= old_ndcg
        n = len(self._recent)
        self.metrics.online_hit.set(self._hits / n)
        self.metrics.online_ndcg.set(max(0.0, self._ndcg) / n)
        label = str(last_version)
        if label not in self._versions:
            self._versions.append(label)
            while len(self._versions) > KEPT_VERSIONS:
                old = self._versions.popleft()
                for counter in (
                    self.metrics.online_evaluated,
                    self.metrics.online_hits,
                    self.metrics.online_ndcg_sum,
                ):
                    counter.remove(old)
        self.metrics.online_tested.inc()
        self.metrics.online_tested_hits.inc(hit)
        self.metrics.online_tested_ndcg.inc(ndcg)
        self.metrics.online_evaluated.labels(label).inc()
        self.metrics.online_hits.labels(label).inc(hit)
        self.metrics.online_ndcg_sum.labels(label).inc(ndcg)
        if variant:
            self.metrics.experiment_tested.labels(variant).inc()
            self.metrics.experiment_hits.labels(variant).inc(hit)
            self.metrics.experiment_ndcg.labels(variant).inc(ndcg)
