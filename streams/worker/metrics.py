"""Prometheus metrics of one worker, in a registry of its own (served at ``/metrics``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
TAKEOVER_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events = Counter(
            "rtrank_events",
            "Events read, by outcome (valid, invalid, redelivered)",
            ["outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "rtrank_dead_letters", "Events sent to the DLQ, by reason", ["reason"], registry=r
        )
        self.recommendations = Counter(
            "rtrank_recommendations", "Recommendation lists emitted", registry=r
        )
        self.batch_size = Histogram(
            "rtrank_batch_events",
            "Events per micro-batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
            registry=r,
        )
        self.inference_seconds = Histogram(
            "rtrank_inference_seconds",
            "Model time per micro-batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.answer_seconds = Histogram(
            "rtrank_answer_seconds",
            "From an event's arrival at the worker to its list being sent",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "rtrank_stage_seconds",
            "Each answered event's time per stage on its way to its list "
            "(rtrank.streams.worker.stage_timing)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.events_behind = Gauge(
            "rtrank_events_behind",
            "Events on this worker's partitions not read yet, when its last batch began",
            registry=r,
        )
        self.failed_sends = Counter(
            "rtrank_failed_sends",
            "Records the producer could not deliver, by topic (the first stops the worker "
            "before their events are committed)",
            ["topic"],
            registry=r,
        )
        self.model_version = Gauge(
            "rtrank_model_version", "Version of the served model", registry=r
        )
        self.gc_frozen_objects = Gauge(
            "rtrank_gc_frozen_objects",
            "Objects alive at start-up that the cyclic garbage collector no longer scans",
            registry=r,
        )
        self.catalogue_items = Gauge(
            "rtrank_catalogue_items", "Items the served model can recommend", registry=r
        )
        self.encode_cache_lookups = Counter(
            "rtrank_encode_cache_lookups",
            "Users encoded by the model process, by outcome: hit (only new positions), "
            "miss (whole history), restart (window slid: its latest half)",
            ["outcome"],
            registry=r,
        )
        self.encode_cache_users = Gauge(
            "rtrank_encode_cache_users", "Users the encode cache holds", registry=r
        )
        self.encode_cache_bytes = Gauge(
            "rtrank_encode_cache_bytes",
            "Bytes of the encode cache's table (at most RTRANK_ENCODE_CACHE_MB)",
            registry=r,
        )
        self.model_updates = Counter(
            "rtrank_model_updates",
            "Model updates applied, by kind (snapshot, delta)",
            ["kind"],
            registry=r,
        )
        self.model_update_rejections = Counter(
            "rtrank_model_update_rejections",
            "Model updates rejected, by reason (corrupt, stale, out_of_order, incompatible, "
            "non_finite, unsigned, bad_signature, too_large)",
            ["reason"],
            registry=r,
        )
        self.online_hit = Gauge(
            "rtrank_online_hit_at_10",
            "Rolling prequential Hit@10 (last eval_window events)",
            registry=r,
        )
        self.online_ndcg = Gauge(
            "rtrank_online_ndcg_at_10",
            "Rolling prequential NDCG@10 (last eval_window events)",
            registry=r,
        )
        self.online_tested = Counter(
            "rtrank_online_tested",
            "Events tested against the user's last list (all versions)",
            registry=r,
        )
        self.online_tested_hits = Counter(
            "rtrank_online_tested_hits", "Tested events whose item was in the top 10", registry=r
        )
        self.online_tested_ndcg = Counter(
            "rtrank_online_tested_ndcg", "Sum of NDCG@10 of tested events", registry=r
        )
        self.online_evaluated = Counter(
            "rtrank_online_evaluated",
            "Events tested against the user's last list, by its version",
            ["model_version"],
            registry=r,
        )
        self.online_hits = Counter(
            "rtrank_online_hits",
            "Tested events whose item was in the top 10, by version",
            ["model_version"],
            registry=r,
        )
        self.online_ndcg_sum = Counter(
            "rtrank_online_ndcg",
            "Sum of NDCG@10 of tested events, by version",
            ["model_version"],
            registry=r,
        )
        self.experiment_lists = Counter(
            "rtrank_experiment_lists",
            "Lists emitted, by experiment variant (RTRANK_EXPERIMENT_FILE)",
            ["variant"],
            registry=r,
        )
        self.experiment_tested = Counter(
            "rtrank_experiment_tested",
            "Events tested against the user's last list, by the user's variant",
            ["variant"],
            registry=r,
        )
        self.experiment_hits = Counter(
            "rtrank_experiment_hits",
            "Tested events whose item was in the top 10, by variant",
            ["variant"],
            registry=r,
        )
        self.experiment_ndcg = Counter(
            "rtrank_experiment_ndcg",
            "Sum of NDCG@10 of tested events, by variant",
            ["variant"],
            registry=r,
        )

        self.users_expired = Counter(
            "rtrank_users_expired",
            "Users whose state was deleted after RTRANK_STATE_TTL_S without an event",
            registry=r,
        )
        self.rebalances = Counter(
            "rtrank_rebalances",
            "Partition assignments this worker received (one per rebalance of the group)",
            registry=r,
        )
        self.takeover_seconds = Histogram(
            "rtrank_takeover_seconds",
            "From the start of a rebalance (partitions revoked) to serving the new "
            "assignment: joining, opening stores, table recovery (short with standby "
            "replicas), seeking to committed offsets",
            buckets=TAKEOVER_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "rtrank_consumer_lag",
            "Events not answered yet per partition of the events topic: its end offset minus "
            "the group's committed offset (every worker reports every partition)",
            ["partition"],
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
