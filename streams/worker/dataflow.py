"""The worker's dataflow as plain code: ingest (validate, apply to state) and answer (batch,
score, emit, write state, ack), over five small interfaces.

- a `Scorer`: a batch's scoring requests and fresh events -> (model version, one list each);
- a `Sink` for records: send one (topic, key, value, headers), and send what is buffered now;
- a `StateTable` of user states: get, and put in the partition of the event it answers;
- a `Source` of events: a partition's committed offset, where each partition is fetched
  next, and reading a partition again from an offset;
- and acks: each `EventRecord` carries how to acknowledge it.

The Faust agents (`rtrank.streams.worker.agents`) are adapters over the producer, the table
and the stream, and a loop; unit tests drive `Dataflow` with fakes and assert what comes out.

Per event, in partition order, ingest either dead-letters the raw record or applies it to
the user's state (not twice: a redelivery is recognised by its offset,
`rtrank.streams.worker.state.is_applied`), sends its training example at once, and queues it.
Answer takes a micro-batch from the queue, scores it in one call, emits one list per user
(for that user's latest event: its state holds the earlier ones), writes each answered
user's state with that list once, sends the batch's records now, and only then acks the
batch's events: an event whose list or state was not delivered is redelivered after a crash.

A record marked as a forget request (`rtrank.streams.forgetting`) starts the user afresh
at ingest (`Dataflow._ingest_forget`): their later events build a new state; answer then
deletes the stored state and writes tombstones for the user's lists and examples
(`Dataflow._forget`) before any later list of theirs, has the scorer drop what it keeps
for them, and acks the request.

Everything one worker keeps between events (the queue, ``read_up_to``, ``unwritten``) is
an attribute of one `Dataflow`, and belongs to a partition: `Dataflow.revoke` drops it when
the partition is revoked, and fences off the partition's events still in flight; so does
`Dataflow.lapse`, for every partition, when the group's lease on this worker lapsed (it may
have been expelled while it stood still, and learns that only later). Ingest
reads each partition without gaps (`Dataflow._skip_past_gap`): an event is never acked,
and so committed, before every earlier event of its partition was read; a partition
skipping to a gap is sought back to it again until the gap's event arrives
(`Dataflow.reseek_stalled`), so a lost seek cannot stall it; and a partition whose
fetched events stop reaching ingest is read again from its next event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from rtrank.streams.event_policy import EventPolicy
from rtrank.streams.experiments.definition import Experiment, load_experiment
from rtrank.streams.forgetting import Forget, is_forget, parse_forget
from rtrank.streams.records import Event, Recommendation, SourceRef, TrainingExample
from rtrank.streams.scorer.model_wire import ScoreRequest
from rtrank.streams.scorer.rerank import RankedItem
from rtrank.streams.settings import Settings
from rtrank.streams.validation import Limits, Rejection, parse_event
from rtrank.streams.worker.batching import next_batch
from rtrank.streams.worker.dead_letters import dead_letter
from rtrank.streams.worker.metrics import Metrics
from rtrank.streams.worker.online_eval import OnlineQuality
from rtrank.streams.worker.stage_timing import (
    BatchStamps,
    StageHistograms,
    event_stages,
    stage_ms,
)
from rtrank.streams.worker.state import UserState, apply_event, is_applied

log = logging.getLogger(__name__)

# How long a partition skipping to a gap waits for the gap's event before it is sought back
# to it again: a seek is cheap, and events read twice are applied once (by offset).
RESEEK_AFTER_S = 2.0
# How long a partition fetched past its next event may go without an event reaching ingest
# before it is read again from that event: its events were fetched and lost (a rebalance).
STALLED_AFTER_S = 5.0


class Scorer(Protocol):
    async def score(
        self, requests: list[ScoreRequest], fresh: list[Event]
    ) -> tuple[list[int], list[list[RankedItem]], float]:
        """One list per request and the model version that scored it (an experiment's
        variants may serve different models), and the seconds the model itself took (0
        when unknown); ``fresh``: events newly applied since the previous call (for
        trending)."""

    async def forget_users(self, users: list[str]) -> None:
        """Drop whatever the scorer keeps for ``users``, who were forgotten."""


class Sink(Protocol):
    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: dict[str, bytes] | None = None,
    ) -> None:
        """Hand one record to the producer (buffered; delivered in order per partition)."""

    def send_buffered_now(self) -> None:
        """Send what is buffered now instead of when the producer's linger expires."""


class Source(Protocol):
    async def seek(self, tp: tuple[str, int], offset: int) -> None:
        """Read partition ``tp`` again from ``offset``: its next event is that one."""

    def committed(self, tp: tuple[str, int]) -> int | None:
        """The offset partition ``tp`` is committed at (its next event to read), None
        when unknown."""

    async def next_on_broker(self, tp: tuple[str, int]) -> int | None:
        """The offset the group reads partition ``tp`` from next, asked of the broker now:
        its committed offset, or, never committed, the partition's first offset; None when
        the broker cannot be asked."""

    def fetch_positions(self) -> dict[Any, int]:
        """The offset the consumer fetches next of each events partition assigned (every
        event before it was fetched) whose fetched events all left the consumer for ingest:
        a partition whose events wait behind a backlog is left out."""

    def member(self) -> bool:
        """True while the group surely still counts this worker as the owner of its
        partitions (`rtrank.streams.worker.faust_patches.GroupLease`)."""


class StateTable(Protocol):
    def get(self, user_id: str) -> dict[str, Any] | None:
        """The user's state as written last (`UserState.to_json`), None when none."""

    def put(self, user_id: str, state: dict[str, Any], answering: EventRecord) -> None:
        """Write the user's state in the partition (and changelog partition) of
        ``answering``, the event it answers: the user's."""

    def delete(self, user_id: str, answering: EventRecord) -> None:
        """Delete the user's state: a tombstone in the changelog partition of
        ``answering`` (the user's); nothing when the table holds no state for them."""


@dataclass(slots=True)
class EventRecord:
    """One record read from the events topic, and how to acknowledge it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    ack: Callable[[], Awaitable[Any]]
    origin: Any = None  # what the adapters need of the record (the Faust event)
    timestamp: int = 0  # when the broker appended it (log-append time), epoch ms
    headers: Any = ()  # the record's Kafka headers, (name, bytes) pairs
    fetched: float = 0.0  # time.monotonic() when the consumer read it; 0 when unknown

    @property
    def tp(self) -> tuple[str, int]:
        """Equal, as a key, to Faust's and aiokafka's ``TP`` (named tuples)."""
        return (self.topic, self.partition)


@dataclass(slots=True)
class Pending:
    """An event read by ingest and waiting for its batch; ``state`` is after the event."""

    record: EventRecord
    parsed: Event | Forget | None  # None for a dead-lettered record: only its ack is pending
    state: UserState | None
    arrived: float  # time.monotonic() when ingest read it
    prefix: list[str] | None = None  # history before the event; None when not newly applied
    generation: int = 0  # its partition's revocations when it was read (`Dataflow.owns`)


def arrival(pending: Pending) -> float:
    return pending.arrived


@dataclass(slots=True)
class Skipping:
    """A partition left unread from ``gap`` on: its events after the gap are dropped until
    the gap's event arrives."""

    gap: int  # the offset sought back to
    left: int  # the last event after the gap dropped since that seek
    sought: float  # when it was sought back to the gap (``Dataflow.clock``)


class Dataflow:
    """One worker's ingest and answer, and what they share: the queue of pending events,
    the offset read last per partition (``read_up_to``), the states applied but not
    written yet (``unwritten``), and each partition's count of revocations
    (``generations``), which fences the events read before a revocation."""

    def __init__(
        self,
        settings: Settings,
        scorer: Scorer,
        sink: Sink,
        states: StateTable,
        metrics: Metrics,
        source: Source,
    ) -> None:
        self.settings = settings
        self.scorer = scorer
        self.sink = sink
        self.states = states
        self.source = source
        self.metrics = metrics
        self.stages = StageHistograms(metrics.stage_seconds)
        self.limits = Limits.from_settings(settings)
        self.policy = EventPolicy.from_settings(settings)
        self.quality = OnlineQuality(metrics, settings.eval_window)
        self.experiment = load_experiment(settings.experiment_file)  # None: no experiment
        self.queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=4 * settings.batch_max_events)
        self.read_up_to: dict[Any, int] = {}  # partition -> offset of the last event read
        self.unwritten: dict[str, UserState] = {}  # users whose state is not in the table yet
        self.generations: dict[Any, int] = {}  # partition -> times revoked (`revoke`)
        self.skipping: dict[Any, Skipping] = {}  # partitions sought back to a gap
        self.arrived: dict[Any, float] = {}  # partition -> when an event last reached ingest
        self.clock: Callable[[], float] = time.monotonic  # for `skipping` and `arrived`
        self.in_flight: list[Pending] = []  # the batch being collected or answered
        self.broker_ms = 0  # the newest log-append time read: the broker's clock (`expiry`)
        self.lapsed = False  # the group's lease lapsed and every partition was revoked (`lapse`)

    def owns(self, pending: Pending) -> bool:
        """True while the group's lease on this worker holds (`lapse`) and ``pending``'s
        partition has not been revoked since it was read."""
        return self._holds_lease() and pending.generation == self.generations.get(
            pending.record.tp, 0
        )

    def _holds_lease(self) -> bool:
        if self.source.member():
            self.lapsed = False
            return True
        self.lapse()
        return False

    def _known(self) -> set[Any]:
        """Every partition this worker has read, queued or is answering."""
        queued = [self.queue.get_nowait() for _ in range(self.queue.qsize())]
        for pending in queued:
            self.queue.put_nowait(pending)
        return set(self.read_up_to) | {p.record.tp for p in queued + self.in_flight}

    def lapse(self) -> None:
        """The group's lease on this worker lapsed (`Source.member` is False): it may have
        been expelled while it stood still, its partitions handed on, and it learns that
        only from its next heartbeat. Every partition it has read is then revoked here
        (`revoke`): nothing read so far is answered, acked or written, and until the lease
        holds again ingest leaves each event unread (`_leave_unread`). A lease that comes
        back without a rebalance reads those events again; a rebalance revokes them."""
        if self.lapsed:
            return
        self.lapsed = True
        known = self._known()
        dropped = self.revoke(known)
        log.warning(
            "the group's lease on this worker lapsed (no heartbeat answered in time): "
            "%d partitions read treated as revoked, %d queued events dropped, until it "
            "holds again",
            len(known),
            dropped,
        )

    def revoke(self, partitions: Iterable[Any]) -> int:
        """Forget what this worker keeps for ``partitions`` (which it no longer owns) and
        fence off their events in flight; returns how many queued events were dropped.

        Contract: once this returns, no event read from ``partitions`` before it is
        answered, acked, or written to the table, and ingest reads those partitions'
        users from the table again. Their queued events and their users' unwritten states
        go now, and so do those of the batch being collected or answered (``in_flight``:
        an event taken from the queue is in it at once); that batch and an event being
        ingested drop their part when they next check `owns`: right before each list is
        sent, each state written and each event acked, with no await between that check
        and that step. So whatever the awaits (scoring waits on the model process,
        sending on the producer) this revocation lands between, nothing of a revoked
        partition is written after it: the new owner recovers the table from a changelog
        that no old write follows, and the dropped events, never acked, are redelivered
        to it.

        Faust calls this from its revocation (`rtrank.streams.worker.agents`), before the
        partitions are handed on, and after waiting for every event its stream handed over
        to be acked: so normally the queue is empty by then, and this is what still holds
        when it is not. With Kafka's eager rebalancing every rebalance revokes all
        partitions, those kept included: their users are read from the table afresh. The
        offset read last stays until the new assignment (`assigned`), moved back to before
        the partition's first event dropped here (`_unread`): a partition kept goes on
        from it, so a gap at the start of the next generation is seen too, the dropped
        events included; its skipping to a gap stops (no seek while it is unassigned) and
        starts again at the next event after the gap.
        """
        revoked = set(partitions)
        for tp in revoked:
            self.generations[tp] = self.generations.get(tp, 0) + 1
            self.skipping.pop(tp, None)
        queued = [self.queue.get_nowait() for _ in range(self.queue.qsize())]
        for pending in queued:
            if pending.record.tp not in revoked:
                self.queue.put_nowait(pending)
        dropped = [p for p in queued if p.record.tp in revoked]
        for pending in dropped + self.in_flight:
            if pending.record.tp in revoked:
                self._unread(pending)
        return len(dropped)

    def _unread(self, pending: Pending) -> None:
        """Undo what reading ``pending`` left here, its partition revoked before it was
        answered: its user's unwritten state goes, and its partition's offset read last
        goes back to before it, so that a partition kept through the rebalance reads it
        again. Without that, a consumer that went on past the dropped events (no seek back
        to the committed offset) delivered the next one as if none were missing: it was
        applied to a state without them, and their offsets were committed with it."""
        if pending.parsed is not None:
            self.unwritten.pop(pending.parsed.user_id, None)
        tp, before = pending.record.tp, pending.record.offset - 1
        if tp in self.read_up_to and self.read_up_to[tp] > before:
            self.read_up_to[tp] = before

    async def _queue(self, pending: Pending) -> None:
        """Queue ``pending`` for answer; undone (`_unread`) when its partition was revoked
        while it was being read (a wait for room in the queue, or for a send)."""
        await self.queue.put(pending)
        if not self.owns(pending):
            self._unread(pending)

    def assigned(self, partitions: Iterable[Any]) -> None:
        """Forget the offset read last (``read_up_to``) of every partition not in
        ``partitions``, the new assignment: another worker may read it meanwhile, so its
        next owner here starts from whatever its first event is. The assigned partitions'
        wait for their next event (`reseek_stalled`) starts now."""
        kept, now = set(partitions), self.clock()
        for tp in [tp for tp in self.read_up_to if tp not in kept]:
            del self.read_up_to[tp]
            self.skipping.pop(tp, None)
        self.arrived = dict.fromkeys(kept, now)

    def last_read(self, tp: tuple[str, int]) -> int | None:
        """The offset of the partition's event read last here; before its first event here,
        the one before its committed offset (the next event follows it). None when unknown."""
        last = self.read_up_to.get(tp)
        if last is None:
            committed = self.source.committed(tp)
            last = None if committed is None else committed - 1
        return last

    async def ingest(self, record: EventRecord) -> None:
        """Dead-letter ``record`` or apply it to its user's state; queue it for answer."""
        settings, metrics = self.settings, self.metrics
        if not self._holds_lease():
            await self._leave_unread(record)
            return
        generation = self.generations.get(record.tp, 0)
        self.arrived[record.tp] = self.clock()
        self.broker_ms = max(self.broker_ms, record.timestamp)
        last = self.last_read(record.tp)
        if last is None and record.offset > 0:  # nothing read here, no committed offset known
            # Never committed, a partition is read from its first offset: taking the first
            # event that came for it lost the events before it that a lapse left unread.
            # (Asking costs up to two round trips, ~100 ms for the first offset; an event at
            # offset 0 has nothing before it.)
            first = await self.source.next_on_broker(record.tp)
            last = None if first is None else first - 1
            log.info(
                "%s: first event %d read; the group reads it from %s",
                record.tp,
                record.offset,
                first,
            )
        if last is not None and record.offset > last + 1:
            await self._skip_past_gap(record, last)
            return
        self.skipping.pop(record.tp, None)
        self.read_up_to[record.tp] = record.offset
        if is_forget(record.headers):
            await self._ingest_forget(record, generation)
            return
        parsed = parse_event(record.key, record.value, self.limits)
        if isinstance(parsed, Rejection):
            metrics.events.labels("invalid").inc()
            await dead_letter(self.sink, settings.dlq_topic, record, parsed, metrics)
            await self._queue(Pending(record, None, None, time.monotonic(), None, generation))
            return
        user = parsed.user_id
        state = self.unwritten.get(user) or UserState.from_json(self.states.get(user))
        prefix = None
        if is_applied(state, record.offset):
            metrics.events.labels("redelivered").inc()
        elif not self.policy.enters_sequence(parsed.event_type):
            metrics.events.labels("outside_sequence").inc()
        else:
            metrics.events.labels("valid").inc()
            prefix = state.history
            variant = self.experiment.label_of(user) if self.experiment else ""
            self.quality.observe(state.last_list, state.last_list_version, parsed.item_id, variant)
            before = state.seen  # repeats allowed per event type
            state = apply_event(
                state,
                parsed,
                record.offset,
                settings.history_len,
                settings.seen_len,
                record.timestamp,
            )
            state.seen = self.policy.seen_after(before, state.seen, parsed)
            self.unwritten[user] = state
            # The trainer gets the example now, not after the batch is answered: under
            # load that saves the queue's wait (up to 4 batches) from model freshness.
            example = training_example(
                parsed, prefix, self.policy.weight(parsed.event_type), variant
            )
            await self.sink.send(settings.training_topic, user.encode(), example.to_json())
        await self._queue(Pending(record, parsed, state, time.monotonic(), prefix, generation))

    async def _ingest_forget(self, record: EventRecord, generation: int) -> None:
        """Forget a user (`rtrank.streams.forgetting`): the user's events read after this
        request are applied to a new, empty state, and the answer deletes the stored one
        (`_forget`). A malformed request is dead-lettered like a malformed event.

        The empty state's ``last_offset`` is the request's, so the user's earlier events
        are never applied to it. A request read again after one of the user's later events
        was applied (a crash before the commit) is a redelivery: it was done, and the new
        history it began stays.
        """
        settings, metrics = self.settings, self.metrics
        request = parse_forget(record.key, self.limits)
        if isinstance(request, Rejection):
            metrics.events.labels("invalid").inc()
            await dead_letter(self.sink, settings.dlq_topic, record, request, metrics)
            await self._queue(Pending(record, None, None, time.monotonic(), None, generation))
            return
        user = request.user_id
        state = self.unwritten.get(user) or UserState.from_json(self.states.get(user))
        if is_applied(state, record.offset):
            metrics.events.labels("redelivered").inc()
            await self._queue(Pending(record, None, None, time.monotonic(), None, generation))
            return
        metrics.events.labels("forget").inc()
        forgotten = UserState(last_offset=record.offset)
        self.unwritten[user] = forgotten
        await self._queue(Pending(record, request, forgotten, time.monotonic(), None, generation))

    async def _forget(self, pending: Pending) -> None:
        """Carry out the forget request ``pending``: delete the user's stored state (a
        tombstone in its changelog), drop the state kept for them here unless a later event
        started a new one, and write tombstones (the user's key, no value) on the
        recommendations topic (for the readers of lists) and on the training topic (the
        trainer drops the user's examples: it reads that tombstone in order with them)."""
        user = pending.parsed.user_id
        self.states.delete(user, pending.record)
        if self.unwritten.get(user) is pending.state:
            del self.unwritten[user]
        key = user.encode()
        await self.sink.send(self.settings.recommendations_topic, key, None)
        await self.sink.send(self.settings.training_topic, key, None)

    async def _leave_unread(self, record: EventRecord) -> None:
        """Leave ``record`` unread while the lease has lapsed: its partition is sought back
        to its next event to read (``record``, or an earlier one dropped by the lapse), at
        most once per ``RESEEK_AFTER_S``, and read from there once the lease holds (a
        partition with no offset known here, from where the broker says, `ingest`)."""
        tp, now = record.tp, self.clock()
        last = self.last_read(tp)
        missing = record.offset if last is None else min(record.offset, last + 1)
        skipping = self.skipping.get(tp)
        recent = skipping is not None and now - skipping.sought < RESEEK_AFTER_S
        if recent and skipping.gap == missing:
            skipping.left = max(skipping.left, record.offset)
            return
        self.skipping[tp] = Skipping(missing, record.offset, now)
        await self.source.seek(tp, missing)

    async def _skip_past_gap(self, record: EventRecord, last: int) -> None:
        """Leave ``record``, which follows a gap after ``last`` in its partition, unread
        and unacked, and have the partition read again from the gap.

        Ingest applies a partition's events in offset order, without gaps: the events
        topic has none (it is not compacted, and rtrank's producers write no transaction
        markers). Faust 0.15.3 loses events around a rebalance (fetched, never handed to
        the agent, the consumer's read offset moved past them), and the acks of the events
        after them would commit past them: they would never be applied nor answered. So
        at a gap the partition is sought back to it, and the events after it are dropped
        until it arrives. It is sought back again whenever the events after it come round
        again without it (a seek undone by Faust's own seek to the committed offset), and
        when it has not arrived ``RESEEK_AFTER_S`` after the last seek (a seek lost).
        """
        tp, missing, now = record.tp, last + 1, self.clock()
        skipping = self.skipping.get(tp)
        if skipping is not None and skipping.gap == missing:
            fetched_before = record.offset > skipping.left  # fetched before the seek
            if fetched_before and now - skipping.sought < RESEEK_AFTER_S:
                skipping.left = record.offset
                return
        log.warning("%s: event %d after %d; read again from %d", tp, record.offset, last, missing)
        self.skipping[tp] = Skipping(missing, record.offset, now)
        await self.source.seek(tp, missing)

    async def reseek_stalled(self) -> None:
        """Read again each partition whose next event is late: called on a timer.

        A partition skipping to a gap is sought back to it again when the gap's event has
        not arrived ``RESEEK_AFTER_S`` after the last seek: without this, a lost seek with
        no event after it (a partition gone quiet) would leave the partition unread. A
        partition fetched past its next event (the one after the last read, or its
        committed offset) whose events have not reached ingest for ``STALLED_AFTER_S`` is
        treated as a gap before the fetch position: Faust lost the events fetched around a
        rebalance, and with no event after them nothing else would show it. Reading events
        again that were only slow to come is harmless: they are applied once (by offset).
        """
        now = self.clock()
        for tp, skipping in list(self.skipping.items()):
            if now - skipping.sought >= RESEEK_AFTER_S and self.skipping.get(tp) is skipping:
                log.warning(
                    "%s: event %d not read %.1f s after the seek back to it; seeking again",
                    tp,
                    skipping.gap,
                    now - skipping.sought,
                )
                skipping.sought = now
                await self.source.seek(tp, skipping.gap)
        for tp, fetched in self.source.fetch_positions().items():
            last = self.last_read(tp)
            quiet = now - self.arrived.get(tp, now)
            if last is None or fetched <= last + 1 or tp in self.skipping:
                continue
            if quiet >= STALLED_AFTER_S:
                log.warning(
                    "%s: fetched up to %d, no event read after %d for %.1f s; read again from %d",
                    tp,
                    fetched - 1,
                    last,
                    quiet,
                    last + 1,
                )
                self.skipping[tp] = Skipping(last + 1, fetched - 1, now)
                await self.source.seek(tp, last + 1)

    async def next_batch(self, unread: Callable[[], int]) -> list[Pending]:
        """The next micro-batch; ``unread()``: events known to be waiting, not read yet,
        asked once the batch's first event is taken (`events_behind`)."""
        settings = self.settings
        self.in_flight = []  # revoke reaches each event as soon as it leaves the queue
        return await next_batch(
            self.queue,
            settings.batch_max_events,
            settings.batch_max_ms / 1000,
            arrival,
            on_the_way=unread,
            fill_wait_s=settings.batch_catch_up_ms / 1000,
            into=self.in_flight,
            keep_up_items=settings.batch_keep_up_events,
            behind_from=settings.batch_behind_events,
        )

    async def answer(self, batch: list[Pending]) -> None:
        """Score ``batch``, emit one list per user, write those users' states, send the
        records now, and then ack every event of the batch; events of partitions revoked
        since they were read are left out at each step (`revoke`)."""
        batch = [p for p in batch if self.owns(p)]
        if not batch:
            return
        self.in_flight = batch
        try:
            await self._answer(batch)
        finally:
            self.in_flight = []

    async def _answer(self, batch: list[Pending]) -> None:
        settings, metrics = self.settings, self.metrics
        stamps = BatchStamps.starting_now()
        answered, requests = requests_for(batch, settings.allow_repeats, self.experiment)
        fresh = [at_broker_time(p) for p in batch if p.prefix is not None]
        versions, lists, compute_s = await self.scorer.score(requests, fresh)
        stamps = replace(stamps, scored=time.monotonic(), compute=compute_s)
        metrics.batch_size.observe(len(batch))
        metrics.inference_seconds.observe(stamps.scored - stamps.started)
        stages = {id(p): stages_of(p, stamps) for p in batch}
        forgotten = []
        for pending in batch:  # before the lists: a later event's list follows them
            if isinstance(pending.parsed, Forget) and self.owns(pending):
                await self._forget(pending)
                forgotten.append(pending.parsed.user_id)
        if forgotten:  # after this batch's scoring, which may have cached them again
            await self.scorer.forget_users(forgotten)
        lists_topic = settings.recommendations_topic
        emitted = 0
        for pending, request, items, version in zip(
            answered, requests, lists, versions, strict=True
        ):
            if not self.owns(pending):
                continue
            rec = recommendation(pending, items, version, stages[id(pending)], len(batch))
            if self.experiment is not None:
                rec = replace(rec, experiment=(self.experiment.name, request.variant))
                metrics.experiment_lists.labels(request.variant).inc()
            await self.sink.send(lists_topic, rec.user_id.encode(), rec.to_json())
            emitted += 1
            if self.owns(pending):  # not revoked while the list was being sent
                listed = [i.item_id for i in items]
                write_state(self.states, self.unwritten, pending, listed, version)
        self.sink.send_buffered_now()
        metrics.recommendations.inc(emitted)
        done = time.monotonic()
        for pending in batch:
            if self.owns(pending):
                metrics.answer_seconds.observe(done - pending.arrived)
                self.stages.observe({**stages[id(pending)], "emit": done - stamps.scored})
                await pending.record.ack()


def requests_for(
    batch: list[Pending], allow_repeats: bool, experiment: Experiment | None = None
) -> tuple[list[Pending], list[ScoreRequest]]:
    """The latest pending event of each user in the batch, with its scoring request (and
    the user's variant of ``experiment``).

    The latest event's state already holds all of that user's earlier events, so one list
    per user per batch answers every one of them. A user whose latest record in the batch
    is a forget request gets none.
    """
    latest: dict[str, Pending] = {}
    for pending in batch:
        if pending.parsed is not None:
            latest.pop(pending.parsed.user_id, None)
            latest[pending.parsed.user_id] = pending
    answered = [p for p in latest.values() if isinstance(p.parsed, Event)]
    requests = [
        ScoreRequest(
            p.state.history,
            [] if allow_repeats else p.state.seen,
            experiment.label_of(p.parsed.user_id) if experiment else "",
            user_id=p.parsed.user_id,
            partition=p.record.partition,
            events=p.state.events,
        )
        for p in answered
    ]
    return answered, requests


def write_state(
    table: StateTable,
    unwritten: dict[str, UserState],
    pending: Pending,
    items: list[str],
    version: int,
) -> None:
    """Write the user's state as of ``pending`` (the latest of its events in the batch) with
    the list just emitted for it: one table write, and one changelog message, per answered
    user per batch (no await: atomic on the loop).

    Ingest applies events to ``unwritten`` (the states it reads first) instead of the table,
    so an event costs no write of its own; a user's state reaches the table before the
    user's events are acked, and a crash before that redelivers them into a state without
    them. A newer state ingested meanwhile stays unwritten and learns the list.
    """
    user = pending.parsed.user_id
    state = pending.state
    state.last_list, state.last_list_version = items, version
    newer = unwritten.get(user)
    if newer is state:
        del unwritten[user]
    elif newer is not None:
        newer.last_list, newer.last_list_version = items, version
    table.put(user, state.to_json(), pending.record)


def events_behind(consumer: Any, read_up_to: dict[Any, int]) -> int:
    """Events on the consumer's partitions after the last one read (``read_up_to``: the
    offset read last per partition); partitions no longer assigned are forgotten.

    A batch takes what was already waiting when its first event was taken (unread here, or
    queued), up to N, for at most ``batch_catch_up_ms``: those events are late already, and
    a user's several events in one batch share one list, table write and changelog
    message. Closing on only what had queued while the previous batch was scored made
    batches shrink as scoring sped up, and a backlog's event loop spent itself on lists.
    Counted before the first event arrived, an idle worker counted nothing: each burst
    fetched at once was answered as its first event alone, then the rest, two model
    calls where one does (`rtrank bench pipeline`, docs/benchmarks.md).
    """
    assigned = consumer.assignment()
    total = 0
    for tp in list(read_up_to):
        if tp not in assigned:
            del read_up_to[tp]
            continue
        highwater = consumer.highwater(tp)  # the offset the next produced event will get
        if highwater is not None:
            total += max(0, highwater - read_up_to[tp] - 1)
    return total


def at_broker_time(pending: Pending) -> Event:
    """The event as trending counts it: at its ``ts``, or at the broker's append time when
    ``ts`` claims later (a producer's clock ahead, or a hostile one): popularity decays by
    the broker's clock, never by the latest time a producer claimed."""
    event, appended = pending.parsed, pending.record.timestamp
    return replace(event, ts=appended) if 0 < appended < event.ts else event


def training_example(
    e: Event, prefix: list[str], weight: float = 1.0, variant: str = ""
) -> TrainingExample:
    return TrainingExample(
        user_id=e.user_id,
        prefix=prefix,
        item_id=e.item_id,
        event_type=e.event_type,
        ts=e.ts,
        weight=weight,
        variant=variant,
    )


def stages_of(pending: Pending, stamps: BatchStamps) -> dict[str, float]:
    """Seconds per stage of ``pending``'s way up to its batch's model answer
    (`rtrank.streams.worker.stage_timing`)."""
    record = pending.record
    return event_stages(record.timestamp, record.fetched, pending.arrived, stamps)


def recommendation(
    pending: Pending,
    items: list[RankedItem],
    version: int,
    stages: dict[str, float],
    batch_size: int,
) -> Recommendation:
    """The list for ``pending``; its ``timings`` (ms): ``stages``, its seconds per stage up
    to the model's answer (`stages_of`), ``produce`` (the event's ``ts`` to its broker
    append; 0 when unknown) and ``total`` (``ts`` to now)."""
    record = pending.record
    now_ms = int(time.time() * 1000)
    produce_ms = max(0, record.timestamp - pending.parsed.ts) if record.timestamp else 0
    return Recommendation(
        user_id=pending.parsed.user_id,
        items=[i.to_json() for i in items],
        model_version=version,
        based_on=SourceRef(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            ts=pending.parsed.ts,
        ),
        emitted_at=now_ms,
        timings={
            **stage_ms(stages),
            "produce": float(produce_ms),
            "total": float(now_ms - pending.parsed.ts),
        },
        batch_size=batch_size,
    )
