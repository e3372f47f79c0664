"""Prometheus metrics of the online trainer, in a registry of its own, served over HTTP on
``RTRANK_TRAINER_METRICS_PORT`` (``/metrics``; 0: not served).

    rtrank_trainer_steps_total               gradient steps taken
    rtrank_trainer_examples_total            fresh examples trained on (rate(): examples/s)
    rtrank_trainer_malformed_examples_total  examples skipped as malformed
    rtrank_trainer_users_forgotten_total     forgotten users whose examples left the buffer
    rtrank_trainer_skipped_steps_total       steps skipped: NaN or infinite loss or gradient
    rtrank_trainer_rollbacks_total{outcome}  rollback requests answered (done, refused)
    rtrank_trainer_other_arm_examples_total  examples of an experiment variant that does not
                                             learn online, skipped
    rtrank_trainer_published_version         the last version published
    rtrank_trainer_published_total{kind}     versions published (snapshot, delta)
    rtrank_trainer_lag{partition}            training examples not read yet
    rtrank_trainer_trimmed_records_total     model-updates records deleted before the
                                             previous snapshot (the topic's bound)
    rtrank_trainer_updates_first_offset      the first offset model-updates still holds
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

log = logging.getLogger(__name__)


@dataclass
class TrainerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.steps = Counter("rtrank_trainer_steps", "Gradient steps taken", registry=r)
        self.examples = Counter(
            "rtrank_trainer_examples", "Fresh training examples trained on", registry=r
        )
        self.malformed = Counter(
            "rtrank_trainer_malformed_examples",
            "Training examples skipped as malformed",
            registry=r,
        )
        self.other_arm = Counter(
            "rtrank_trainer_other_arm_examples",
            "Training examples of an experiment variant that does not learn online, skipped",
            registry=r,
        )
        self.skipped_steps = Counter(
            "rtrank_trainer_skipped_steps",
            "Gradient steps skipped: their loss or gradient was NaN or infinite",
            registry=r,
        )
        self.rollbacks = Counter(
            "rtrank_trainer_rollbacks",
            "Rollback requests answered, by outcome (done, refused)",
            ["outcome"],
            registry=r,
        )
        self.forgotten = Counter(
            "rtrank_trainer_users_forgotten",
            "Forgotten users (tombstones on the training topic) whose examples were removed "
            "from the replay buffer",
            registry=r,
        )
        self.published_version = Gauge(
            "rtrank_trainer_published_version", "The last model version published", registry=r
        )
        self.published = Counter(
            "rtrank_trainer_published",
            "Model versions published, by kind (snapshot, delta)",
            ["kind"],
            registry=r,
        )
        self.lag = Gauge(
            "rtrank_trainer_lag",
            "Training examples not read yet, per partition of the training-examples topic",
            ["partition"],
            registry=r,
        )

        self.trimmed = Counter(
            "rtrank_trainer_trimmed_records",
            "model-updates records deleted: those before the previous snapshot",
            registry=r,
        )
        self.updates_first_offset = Gauge(
            "rtrank_trainer_updates_first_offset",
            "The first offset the model-updates topic still holds",
            registry=r,
        )

    def trained(self, steps: int, examples: int) -> None:
        """One round of the loop: ``steps`` gradient steps over ``examples`` fresh ones."""
        self.steps.inc(steps)
        self.examples.inc(examples)

    def publishing(self, version: int, snapshot: bool) -> None:
        self.published_version.set(version)
        self.published.labels(kind="snapshot" if snapshot else "delta").inc()

    def trimming(self, first_before: int, first_after: int) -> None:
        """The topic's first offset moved from ``first_before`` to ``first_after``."""
        self.trimmed.inc(max(0, first_after - first_before))
        self.updates_first_offset.set(first_after)

    def behind(self, highwaters: Mapping[int, int | None], positions: Mapping[int, int]) -> None:
        """Lag per partition: the offset the next example will get (``highwaters``, None while
        unknown) minus the next offset to read (``positions``)."""
        for partition, highwater in highwaters.items():
            if highwater is not None and partition in positions:
                lag = max(0, highwater - positions[partition])
                self.lag.labels(partition=str(partition)).set(lag)


def serve_metrics(metrics: TrainerMetrics, port: int, addr: str) -> WSGIServer | None:
    """Serve ``metrics`` at ``http://addr:port/metrics`` (``RTRANK_WEB_BIND``) from a daemon
    thread; None when ``port`` is 0 or taken (a warning says so: training goes on without
    the endpoint)."""
    if port == 0:
        return None
    try:
        server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
    except OSError as e:
        log.warning("trainer metrics not served on port %d: %s", port, e)
        return None
    log.info("trainer metrics on %s:%d/metrics", addr, port)
    return server
