"""The online trainer: training examples in, model versions out.

    rtrank trainer [--checkpoint games.safetensors]

At start it reads the ``model-updates`` topic from the latest snapshot on
(`rtrank.streams.trainer.model_updates.read_updates`): when versions exist, it resumes from the last
complete one (weights, vocabulary, and the training-examples offsets that version had
consumed, all carried by the updates) and numbers its next version after the highest
number on the topic, so no number is ever reused, even one a killed trainer left half
published. With nothing published yet, it starts from ``--checkpoint`` (or from an empty
model) and publishes that as a snapshot first, so late workers and later restarts have a
base.

Then, in a loop: poll at most two batches of examples (no consumer group: positions travel
in the versions), take gradient steps (`rtrank.model.online.OnlineLearner`: each fresh example
once, mixed with replayed ones), and publish a version at most every ``trainer_publish_s``
seconds (checked after every round of at most two steps): a delta, or a
full snapshot every ``snapshot_every`` versions. After a restart the replay buffer is
refilled from the examples just before the resumed position. Adam's moments are not
published: a restarted trainer begins them afresh.

A version counts as published once the broker acknowledged every one of its messages (the
producer retries for up to ``producer_delivery_timeout_s``). One that still fails stops the
trainer (`rtrank.streams.trainer.model_updates.PublishError`, exit 1): restarted, it
resumes from the last version fully on the topic and numbers its next one past whatever
the failed one left there. Once a snapshot is acknowledged, the trainer deletes the records
before the previous snapshot, which bounds the topic
(`rtrank.streams.trainer.model_updates.delete_before`; at start it turns off any
retention by age the topic was created with); a deletion that fails is only logged: the
next snapshot's deletes the same records and more.

With ``RTRANK_UPDATE_SIGNING_KEY_FILE`` every version is signed
(`rtrank.streams.trainer.update_signing`) and what the trainer resumes from is verified
with the key's public half. A step's gradient is clipped to ``trainer_clip_grad_norm``; a
step whose loss or gradient is not finite is skipped and counted, and a version holding a
NaN or infinity is never sent (the trainer stops instead). Rollback requests on
model-updates are answered between rounds (`rtrank.streams.trainer.rollback`); each
snapshot is also kept on disk when ``trainer_archive_dir`` is set.

Steps stay at ``trainer_batch_size`` (256) examples: larger ones made each example cheaper
but cost Games quality. A trainer that keeps up steps on whatever one poll returned:
holding steps back for full batches cost most of the drift recovery, because how many
steps the trainer takes is what lets it follow drift (`rtrank bench online`;
docs/decisions.md, "Small steps").
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from rtrank.model.checkpoint import load_checkpoint
from rtrank.model.online import Example, OnlineConfig, OnlineLearner
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.update_error import UpdateError
from rtrank.model.updates import Snapshot, apply_update, check_finite
from rtrank.model.vocab import Vocabulary
from rtrank.streams import safe_json
from rtrank.streams.experiments.definition import load_experiment
from rtrank.streams.kafka_security import client_config
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.metrics import TrainerMetrics, serve_metrics
from rtrank.streams.trainer.model_updates import (
    RECONNECT_BACKOFF_MAX_MS,
    PublishError,
    delete_before,
    keep_until_deleted,
    read_updates,
    send_update,
    to_messages,
    updates_consumer,
)
from rtrank.streams.trainer.rollback import (
    RollbackError,
    control_record,
    find_version,
    parse_control,
    rolled_back,
    verify_request,
)
from rtrank.streams.trainer.snapshot_archive import SnapshotArchive
from rtrank.streams.trainer.update_signing import UpdateKeys
from rtrank.streams.worker.topics_and_tables import ensure_topics, topic_spec

log = logging.getLogger(__name__)

LAG_BUCKET_MS = 100  # resolution of the freshness histogram carried by each version


class OtherArm:
    """An example of an experiment variant other than the learning arm: not trained on."""


OTHER_ARM = OtherArm()


def parse_example(value: bytes | None, arm: str | None = None) -> Example | OtherArm | None:
    """A `rtrank.streams.records.TrainingExample` JSON record, or None when it is malformed.

    ``arm``: with an experiment running, the variant that learns online ("" when none
    does); an example whose ``variant`` is another is `OTHER_ARM`, so one arm's traffic
    never trains the model another arm serves.
    """
    try:
        obj = safe_json.loads(value)  # JsonError is a ValueError
        prefix, item, ts = obj["prefix"], obj["item_id"], obj.get("ts", 0)
        weight = obj.get("weight", 1.0)
        user = obj.get("user_id", "")
        if arm is not None and obj.get("variant") != arm:
            return OTHER_ARM
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    if not (isinstance(prefix, list) and all(isinstance(i, str) and i for i in prefix)):
        return None
    if not (isinstance(item, str) and item and isinstance(ts, int)):
        return None
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        return None
    if not 0 < weight < math.inf:
        return None
    if not isinstance(user, str):
        return None
    return Example(tuple(prefix), item, ts, float(weight), user)


def forgotten_user(record: Any) -> str | None:
    """The user a tombstone on the training topic forgets (its key; no value), else None.

    The worker writes it when it forgets a user (`rtrank.streams.worker.dataflow`), keyed
    like the user's examples: on their partition, after every example of theirs before the
    request and before every one after it.
    """
    if record.value is not None or record.key is None:
        return None
    return record.key.decode("utf-8", "replace")


def online_config(settings: Settings) -> OnlineConfig:
    return OnlineConfig(
        lr=settings.trainer_lr,
        dense_lr=settings.trainer_dense_lr,
        replay_ratio=settings.trainer_replay_ratio,
        recent_size=settings.trainer_recent_size,
        reservoir_size=settings.trainer_reservoir_size,
        rows_per_step=settings.trainer_rows_per_step,
        negatives=settings.trainer_negatives,
        surprise_floor=settings.trainer_surprise_floor,
        clip_grad_norm=settings.trainer_clip_grad_norm,
        max_items=settings.vocab_max_items,
        seed=settings.seed,
    )


def lower_priority(niceness: int) -> None:
    """Add ``niceness`` to this process's nice value, so that on a machine it shares, the
    worker (whose lists users wait for) gets the CPU first and training takes the rest.

    Linux's autogroups share the CPU fairly between sessions whatever their processes'
    nice values, so a trainer that leads its own session (as rtrank's launcher starts it)
    also lowers its autogroup's priority; one started inside a shared session does not,
    which would slow its neighbours too.
    """
    if niceness <= 0:
        return
    os.nice(niceness)
    if os.getsid(0) != os.getpid():
        return
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(niceness))
    except OSError:  # no autogroups (another OS, or a kernel without them)
        pass


@dataclass
class Resumed:
    learner: OnlineLearner
    next_version: int
    offsets: dict[int, int] = field(default_factory=dict)  # training partition -> next offset
    fresh_start: bool = True  # nothing was on the topic: publish a base snapshot first
    snapshot_offset: int | None = None  # first chunk of the newest snapshot on the topic
    first_offset: int = 0  # the first offset model-updates holds
    end_offset: int = 0  # where reading model-updates stopped (rollback requests from here)


def resume(settings: Settings, checkpoint: str, keys: UpdateKeys) -> Resumed:
    """The learner as the topic (or, with an empty topic, the checkpoint) leaves it; with a
    verifying key, only signed updates count."""
    replayed = read_updates(
        settings, keys, lambda reason, detail: log.warning("skipped: %s", detail)
    )
    model, vocab, version, offsets, reference = None, None, -1, {}, None
    for update in replayed.updates:
        try:
            model, vocab, version = apply_update(model, vocab, version, update)
        except UpdateError as e:
            log.warning("skipped update while resuming: %s", e)
            continue
        offsets = {int(p): int(o) for p, o in update.meta.get("offsets", {}).items()}
        reference = update.meta.get("held_out_outranked")
    config = online_config(settings)
    if model is not None:
        log.info("resuming from published version %d (%d items)", version, len(vocab) - 1)
        learner = OnlineLearner(model, vocab, version, config, reference)
        return Resumed(
            learner,
            max(replayed.max_version, version) + 1,
            offsets,
            fresh_start=False,
            snapshot_offset=replayed.snapshot_offset,
            first_offset=replayed.begin_offset,
            end_offset=replayed.end_offset,
        )
    if checkpoint:
        ckpt = load_checkpoint(checkpoint)
        model, vocab, version = ckpt.model, ckpt.vocab, ckpt.version
        reference = ckpt.meta["extra"].get("held_out_outranked")
        log.info("starting from %s version %d (%d items)", checkpoint, version, len(vocab) - 1)
    else:
        torch.manual_seed(settings.seed)
        model, vocab, version = SASRec(SASRecConfig(num_items=2)), Vocabulary(), 0
        log.info("starting from an empty model")
    if reference is None:
        log.info("no held-out reference: every step takes the full learning rate")
    learner = OnlineLearner(model, vocab, version, config, reference)
    next_version = max(replayed.max_version, version) + 1
    return Resumed(
        learner, next_version, first_offset=replayed.begin_offset, end_offset=replayed.end_offset
    )


class Trainer:
    """One trainer process's loop; `run` until ``stop`` is set."""

    def __init__(self, settings: Settings, checkpoint: str = "") -> None:
        self.settings = settings
        self.checkpoint = checkpoint
        self.metrics = TrainerMetrics()
        experiment = load_experiment(settings.experiment_file)
        self.arm = experiment.learning_arm if experiment else None  # see `parse_example`

    def run(self, stop: threading.Event, on_ready: Callable[[int], None] | None = None) -> None:
        """Resume (or start), then learn and publish until ``stop`` is set; ``on_ready`` is
        called with the current version once the trainer is consuming examples."""
        s = self.settings
        torch.set_num_threads(max(1, s.trainer_threads))
        lower_priority(s.trainer_nice)
        server = serve_metrics(self.metrics, s.trainer_metrics_port, s.web_bind)
        try:
            self._run(stop, on_ready)
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()

    def _run(self, stop: threading.Event, on_ready: Callable[[int], None] | None) -> None:
        s = self.settings
        ensure_topics(s)
        self.keys = UpdateKeys.from_settings(s)
        self.archive = (
            SnapshotArchive(Path(s.trainer_archive_dir), s.trainer_archive_keep)
            if s.trainer_archive_dir
            else None
        )
        state = resume(s, self.checkpoint, self.keys)
        self.learner, self.next_version = state.learner, state.next_version
        self.versions_since_snapshot = 0
        self.snapshot_offset, self.first_offset = state.snapshot_offset, state.first_offset
        self.metrics.updates_first_offset.set(self.first_offset)
        consumer, tps = self._examples_consumer(state.offsets)
        delivery_ms = max(1, int(s.producer_delivery_timeout_s * 1000))
        producer = KafkaProducer(
            bootstrap_servers=s.bootstrap_servers,
            acks="all",
            linger_ms=0,
            max_request_size=s.update_max_bytes + 65536,
            delivery_timeout_ms=delivery_ms,
            request_timeout_ms=min(30_000, delivery_ms),  # kafka-python: at most delivery
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            **client_config(s),
        )
        self.admin = KafkaAdminClient(
            bootstrap_servers=s.bootstrap_servers,
            client_id=f"{s.app_id}-trainer-admin",
            **client_config(s),
        )
        spec = topic_spec(s, "model_updates")
        keep_until_deleted(self.admin, spec.name, spec.configs)
        self.offsets = {tp.partition: consumer.position(tp) for tp in tps}
        self.requests, requests_tp = updates_consumer(s)
        self.requests.seek(requests_tp, state.end_offset)
        try:
            if state.fresh_start:
                self._publish(producer, snapshot=True, lags=[])
            else:
                self._warm_buffer(consumer, tps)
            if on_ready is not None:
                on_ready(self.learner.version)
            self._loop(stop, consumer, producer)
        finally:
            consumer.close()
            self.requests.close()
            producer.close()
            self.admin.close()

    def _examples_consumer(self, offsets: dict[int, int]) -> tuple[KafkaConsumer, list]:
        s = self.settings
        consumer = KafkaConsumer(
            bootstrap_servers=s.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset=s.trainer_examples_from,
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            **client_config(s),
        )
        parts = consumer.partitions_for_topic(s.training_topic) or {0}
        tps = [TopicPartition(s.training_topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        for tp in tps:
            if tp.partition in offsets:
                consumer.seek(tp, offsets[tp.partition])
            elif s.trainer_examples_from == "latest":
                consumer.seek_to_end(tp)
            else:
                consumer.seek_to_beginning(tp)
        return consumer, tps

    def _warm_buffer(self, consumer: KafkaConsumer, tps: list) -> None:
        """Refill the replay buffer with the examples just before the resumed positions."""
        per_partition = math.ceil(self.settings.trainer_recent_size / max(1, len(tps)))
        starts = consumer.beginning_offsets(tps)
        warmed = 0
        for tp in tps:
            stop_at = self.offsets[tp.partition]
            consumer.seek(tp, max(starts[tp], stop_at - per_partition))
        pending = {tp for tp in tps if consumer.position(tp) < self.offsets[tp.partition]}
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500, max_records=5000).items():
                examples = [
                    e
                    for r in records
                    if r.offset < self.offsets[tp.partition]
                    for e in [parse_example(r.value, self.arm)]
                    if isinstance(e, Example)
                ]
                self.learner.observe(examples)
                for e in examples:
                    self.learner.buffer.add(e)
                warmed += len(examples)
                end = self.offsets[tp.partition]
                forgotten = [forgotten_user(r) for r in records if r.offset < end]
                for user in filter(None, forgotten):
                    self._forget(user)  # with the poll's later examples of theirs: rare, safe
            pending = {tp for tp in pending if consumer.position(tp) < self.offsets[tp.partition]}
        for tp in tps:
            consumer.seek(tp, self.offsets[tp.partition])
        log.info("replay buffer refilled with %d earlier examples", warmed)

    def _loop(
        self, stop: threading.Event, consumer: KafkaConsumer, producer: KafkaProducer
    ) -> None:
        s = self.settings
        lags: list[int] = []  # ms from event to publish, per example trained since last version
        trained_ts: list[int] = []
        last_publish = time.monotonic()
        bad = 0
        while not stop.is_set():
            fresh: list[Example] = []
            for tp, records in consumer.poll(
                timeout_ms=100, max_records=2 * s.trainer_batch_size
            ).items():
                for r in records:
                    user = forgotten_user(r)
                    if user is not None:
                        fresh = [e for e in fresh if e.user_id != user]
                        self._forget(user)
                        self.offsets[tp.partition] = r.offset + 1
                        continue
                    example = parse_example(r.value, self.arm)
                    if example is OTHER_ARM:
                        self.metrics.other_arm.inc()
                    elif example is None:
                        bad += 1
                        self.metrics.malformed.inc()
                        log.warning(
                            "skipped a malformed training example at %s/%d/%d (%d so far)",
                            tp.topic,
                            tp.partition,
                            r.offset,
                            bad,
                        )
                    else:
                        fresh.append(example)
                    self.offsets[tp.partition] = r.offset + 1
            steps_before, skipped_before = self.learner.steps, self.learner.skipped
            for start in range(0, len(fresh), s.trainer_batch_size):
                self.learner.step(fresh[start : start + s.trainer_batch_size])
            self.metrics.trained(self.learner.steps - steps_before, len(fresh))
            if self.learner.skipped > skipped_before:
                self.metrics.skipped_steps.inc(self.learner.skipped - skipped_before)
                log.warning(
                    "skipped %d step(s): NaN or infinite loss or gradient",
                    self.learner.skipped - skipped_before,
                )
            self._answer_rollbacks(producer)
            highwaters = {tp.partition: consumer.highwater(tp) for tp in consumer.assignment()}
            self.metrics.behind(highwaters, self.offsets)
            trained_ts.extend(e.ts for e in fresh)
            if time.monotonic() - last_publish >= s.trainer_publish_s and self.learner.has_changes:
                snapshot = self.versions_since_snapshot + 1 >= s.snapshot_every
                now = int(time.time() * 1000)
                lags = [now - ts for ts in trained_ts if ts > 0]
                self._publish(producer, snapshot, lags)
                trained_ts = []
                last_publish = time.monotonic()

    def _forget(self, user: str) -> None:
        """Drop a forgotten user's examples from the replay buffer (not logged by id: the
        log would keep what the request removes)."""
        removed = self.learner.buffer.forget(user)
        self.metrics.forgotten.inc()
        log.info("a user was forgotten: %d example(s) left the replay buffer", removed)

    def _publish(
        self,
        producer: KafkaProducer,
        snapshot: bool,
        lags: list[int],
        extra: dict | None = None,
    ) -> None:
        """Publish the next version (``extra`` joins its meta).

        Raises:
            PublishError: not every message was acknowledged, or the version holds a NaN
                or an infinity (never sent).
        """
        s = self.settings
        hist = Counter(max(0, lag) // LAG_BUCKET_MS * LAG_BUCKET_MS for lag in lags)
        meta = {
            "offsets": {str(p): o for p, o in self.offsets.items()},
            "examples": len(lags),
            "lag_ms_hist": {str(k): v for k, v in sorted(hist.items())},
            "steps": self.learner.steps,
            "held_out_outranked": self.learner.held_out_outranked,
            "outranked": self.learner.outranked,
            "lr_scale": round(self.learner.lr_scale, 4),
            **(extra or {}),
        }
        update = self.learner.publish(self.next_version, snapshot, meta)
        try:
            check_finite(update)
        except UpdateError as e:
            raise PublishError(f"version {update.version} not published: {e}") from None
        messages = to_messages(update, s.update_max_bytes, self.keys)
        offsets = send_update(producer, s.model_updates_topic, messages, update.version)
        self.metrics.publishing(update.version, isinstance(update, Snapshot))
        self.versions_since_snapshot = (
            0 if isinstance(update, Snapshot) else (self.versions_since_snapshot + 1)
        )
        log.info(
            "published version %d (%s, %d message(s), %d examples, lr x%.2f)",
            update.version,
            "snapshot" if isinstance(update, Snapshot) else "delta",
            len(messages),
            len(lags),
            self.learner.lr_scale,
        )
        self.next_version += 1
        if isinstance(update, Snapshot):
            self._snapshot_published(offsets[0])
            self._archive(update)

    def _archive(self, snapshot: Snapshot) -> None:
        if self.archive is None:
            return
        try:
            self.archive.save(snapshot)
        except OSError as e:
            log.warning(
                "snapshot %d not archived in %s: %s", snapshot.version, self.archive.directory, e
            )

    def _answer_rollbacks(self, producer: KafkaProducer) -> None:
        """Act on the rollback requests written to model-updates since the last round."""
        for records in self.requests.poll(timeout_ms=0).values():
            for record in records:
                request = parse_control(record.value)
                if request is not None and request.get("type") == "rollback":
                    self._roll_back(producer, request)

    def _roll_back(self, producer: KafkaProducer, request: dict) -> None:
        """Continue from version ``request["to"]``: publish its weights as the next
        version's snapshot, then answer the request (done, or refused and why)."""
        s, to = self.settings, request["to"]
        answer = {"type": "rollback_refused", "id": request["id"], "to": to}
        try:
            verify_request(request, self.keys)
            if not 0 <= to <= self.learner.version:
                raise RollbackError(
                    f"version {to} is not published (the latest is {self.learner.version})"
                )
            snapshot = find_version(s, self.keys, self.archive, to)
        except (UpdateError, RollbackError) as e:
            self.metrics.rollbacks.labels("refused").inc()
            log.warning("rollback to version %d refused: %s", to, e)
            answer["error"] = str(e)
        else:
            self.learner = rolled_back(self.learner, snapshot, online_config(s))
            self._publish(producer, snapshot=True, lags=[], extra={"rollback_to": to})
            self.metrics.rollbacks.labels("done").inc()
            log.warning(
                "rolled back: version %d carries version %d's weights", self.learner.version, to
            )
            answer = {**answer, "type": "rollback_done", "version": self.learner.version}
        send_update(
            producer,
            s.model_updates_topic,
            [(b"rollback", control_record(answer))],
            self.learner.version,
        )

    def _snapshot_published(self, offset: int) -> None:
        """Bound the topic: delete every record before the previous snapshot."""
        previous, self.snapshot_offset = self.snapshot_offset, offset
        if previous is None or previous <= self.first_offset:
            return
        try:
            first = delete_before(self.admin, self.settings, previous)
        except KafkaError as e:
            log.warning(
                "%s not trimmed before offset %d (%r); the next snapshot trims it",
                self.settings.model_updates_topic,
                previous,
                e,
            )
            return
        log.info(
            "trimmed %s: %d record(s) before the previous snapshot (offset %d) deleted",
            self.settings.model_updates_topic,
            first - self.first_offset,
            previous,
        )
        self.metrics.trimming(self.first_offset, first)
        self.first_offset = first
