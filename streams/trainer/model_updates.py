"""Model updates on the wire: the ``model-updates`` topic, one partition (order matters).

One version = one or more messages ("chunks"). The payload is `rtrank.model.updates.encode_update`
(safetensors + JSON metadata, never pickle), cut so that no message exceeds
``Settings.update_max_bytes`` (the broker's default limit is 1 MiB). Each chunk is

    b"RTMU" | 4-byte big-endian header length | header JSON | payload piece

and its header carries ``id`` (one per published update), ``kind`` (snapshot/delta),
``version``, ``base`` (the version a delta applies to; null for a snapshot), ``chunk`` /
``chunks``, ``sha256`` of the whole payload, ``published_at`` (epoch ms) and, from a
trainer with a signing key, ``sig``: an Ed25519 signature of kind, version, base and
sha256 for this topic (`rtrank.streams.trainer.update_signing`). Readers verify it when
they hold the public key, after the checksum and before decoding anything.

A reader holds at most ``Settings.update_assembly_max_bytes`` of chunks while assembling:
an update over it is rejected (``too_large``), its chunks freed and its later ones dropped.

The topic also carries control records (`CONTROL_MAGIC`: rollback requests and the
trainer's answers, `rtrank.streams.trainer.rollback`); update readers pass over them.

The header's ``format`` is 2: the payload as is (trained float32 rows do not compress, so
compressing them was CPU spent for nothing: docs/decisions.md). A chunk of any other format
is corrupt.

Late starters (workers, a restarted trainer) find the latest complete snapshot by reading
the topic backwards in growing windows (`latest_snapshot_offset`) and replay from there:
no second topic to keep consistent.

The topic is bounded by the trainer, not by age (its retention by time is off): once a new
snapshot is acknowledged, the trainer deletes every record before the *previous* snapshot
(`delete_before`). So the topic always holds the latest snapshot, the one before it (which a
late starter may be reading right now) and the deltas after them, however long the trainer
stays quiet. A reader whose position is deleted under it (a worker that fell a whole
snapshot interval behind) is reset by its consumer to the topic's new beginning, which is
always the first chunk of a snapshot: it reads that snapshot and the deltas after it, and
never applies a delta on a base it does not have, since every delta names its base
(`rtrank.model.updates.apply_update`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource
from kafka.errors import KafkaError

from rtrank.model.update_error import UpdateError
from rtrank.model.updates import Snapshot, Update, decode_update, encode_update
from rtrank.streams.kafka_security import client_config
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.update_signing import UpdateKeys

log = logging.getLogger(__name__)

MAGIC = b"RTMU"
CONTROL_MAGIC = b"RTCT"  # a control record, not a chunk (rtrank.streams.trainer.rollback)
WIRE_FORMAT = 2  # the payload as is
HEADER_ROOM = 4096  # bytes kept per message for our header and Kafka's record overhead


class PublishError(RuntimeError):
    """An update's messages were not all acknowledged by the broker: it is not published."""


@dataclass(frozen=True)
class Chunk:
    header: dict[str, Any]
    data: bytes

    @property
    def update_id(self) -> str:
        return self.header["id"]


def is_control(value: bytes | None) -> bool:
    """A control record (rollback request or answer), which update readers pass over."""
    return bool(value) and value[:4] == CONTROL_MAGIC


def signed_fields(header: dict[str, Any]) -> list:
    """What an update's signature covers, besides the topic: its payload by checksum."""
    return [header["kind"], header["version"], header["base"], header["sha256"]]


def to_messages(
    update: Update, max_bytes: int, keys: UpdateKeys | None = None
) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs for ``update``, each value at most ``max_bytes`` long; signed
    when ``keys`` hold a signing key."""
    payload = encode_update(update)
    piece = max_bytes - HEADER_ROOM
    if piece <= 0:
        raise ValueError(f"update_max_bytes={max_bytes} leaves no room for data")
    pieces = [payload[i : i + piece] for i in range(0, len(payload), piece)] or [b""]
    common = {
        "format": WIRE_FORMAT,
        "id": uuid.uuid4().hex,
        "kind": "snapshot" if isinstance(update, Snapshot) else "delta",
        "version": update.version,
        "base": None if isinstance(update, Snapshot) else update.base,
        "chunks": len(pieces),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "published_at": int(time.time() * 1000),
    }
    signature = keys.sign(signed_fields(common)) if keys is not None else None
    if signature is not None:
        common["sig"] = signature
    out = []
    for n, data in enumerate(pieces):
        head = json.dumps({**common, "chunk": n}, separators=(",", ":")).encode()
        value = MAGIC + len(head).to_bytes(4, "big") + head + data
        out.append((str(update.version).encode(), value))
    return out


FLUSH_TRIES = 64


def flush(producer: KafkaProducer) -> None:
    """Wait until every record sent through ``producer`` (any kafka-python producer) was
    acknowledged or failed.

    kafka-python's own flush raises (``UnknownError: Future not done``) when the broker
    refused a batch as too large and the producer split it to send again; it is called
    again then, the split batches being the ones still in flight (each split halves a
    batch, so a few tries suffice; the callers count what is still undelivered after).
    """
    for _ in range(FLUSH_TRIES):
        try:
            producer.flush()
            return
        except KafkaError as e:
            log.debug("flush interrupted (%r); flushing again", e)


def send_update(
    producer: KafkaProducer, topic: str, messages: list[tuple[bytes, bytes]], version: int
) -> list[int]:
    """Send ``messages`` to ``topic``'s partition 0, wait until each was acknowledged, and
    return their offsets.

    Raises:
        PublishError: a message was not delivered (the producer gave up retrying).
    """
    futures = []
    try:
        for key, value in messages:
            futures.append(producer.send(topic, key=key, value=value, partition=0))
    except KafkaError as e:
        flush(producer)
        raise PublishError(
            f"version {version} not published: message {len(futures) + 1} of "
            f"{len(messages)} could not be sent to {topic!r} ({e!r})"
        ) from e
    flush(producer)
    failed = [f.exception for f in futures if not f.succeeded()]
    if failed:
        raise PublishError(
            f"version {version} not published: {len(failed)} of {len(messages)} message(s) "
            f"not delivered to {topic!r} ({failed[0]!r})"
        )
    return [f.value.offset for f in futures]


def parse_chunk(value: bytes | None) -> Chunk:
    """Raises: UpdateError ``corrupt`` for anything but one of our chunks."""
    try:
        if not value or value[:4] != MAGIC:
            raise ValueError("no rtrank update magic")
        n = int.from_bytes(value[4:8], "big")
        header = json.loads(value[8 : 8 + n])
        if not isinstance(header, dict) or header.get("format") != WIRE_FORMAT:
            raise ValueError("unknown wire format")
        for name in ("id", "kind", "sha256"):
            if not isinstance(header.get(name), str):
                raise ValueError(f"header field {name!r} missing")
        for name in ("version", "chunk", "chunks"):
            if not isinstance(header.get(name), int):
                raise ValueError(f"header field {name!r} missing")
        if not 0 <= header["chunk"] < header["chunks"]:
            raise ValueError("chunk number out of range")
        return Chunk(header, value[8 + n :])
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as e:
        raise UpdateError("corrupt", f"bad update message ({e})") from e


DEFAULT_ASSEMBLY_MAX_BYTES = Settings.model_fields["update_assembly_max_bytes"].default


class Assembler:
    """Collects chunks into whole updates; verifies checksum, signature (with ``keys``) and
    version on completion.

    Chunks of one update are published back to back; an update whose chunks stop coming
    (a trainer killed mid-publish) is dropped once ``keep`` newer ones are in progress, or
    when the chunks held would exceed ``max_bytes``. One update over ``max_bytes`` alone is
    rejected: its chunks are freed at once and its later chunks dropped unread.
    """

    def __init__(
        self,
        keys: UpdateKeys | None = None,
        max_bytes: int = DEFAULT_ASSEMBLY_MAX_BYTES,
        keep: int = 4,
    ) -> None:
        self._parts: OrderedDict[str, dict[int, Chunk]] = OrderedDict()
        self._refused: deque[str] = deque(maxlen=16)  # ids rejected as too large
        self.held = 0  # bytes of chunk data held
        self.keys, self.max_bytes, self.keep = keys, max_bytes, keep

    def add(self, chunk: Chunk) -> Update | None:
        """The whole update once its last chunk arrives, else None.

        Raises:
            UpdateError: ``corrupt`` (checksum, undecodable, header and payload disagree),
                ``too_large`` (over ``max_bytes``), ``unsigned`` or ``bad_signature``.
        """
        uid, head = chunk.update_id, chunk.header
        if uid in self._refused:
            return None
        parts = self._parts.setdefault(uid, {})
        self._parts.move_to_end(uid)  # the newest in progress: dropped last
        first = next(iter(parts.values()), chunk)
        if first.header | {"chunk": 0} != head | {"chunk": 0}:
            self._drop(uid)
            raise UpdateError("corrupt", f"update {uid}: chunk headers disagree")
        size = sum(len(c.data) for n, c in parts.items() if n != head["chunk"]) + len(chunk.data)
        if head["chunk"] < head["chunks"] - 1:  # every piece but the last is full size
            size = max(size, (head["chunks"] - 1) * len(chunk.data))
        if size > self.max_bytes:
            self._drop(uid)
            self._refused.append(uid)
            raise UpdateError(
                "too_large",
                f"version {head['version']}: over {self.max_bytes} bytes of chunks "
                "(RTRANK_UPDATE_ASSEMBLY_MAX_BYTES)",
            )
        old = parts.get(head["chunk"])
        parts[head["chunk"]] = chunk
        self.held += len(chunk.data) - (len(old.data) if old else 0)
        while len(self._parts) > self.keep or self.held > self.max_bytes:
            self._drop(next(iter(self._parts)))  # the oldest: abandoned by its trainer
        if len(parts) < head["chunks"]:
            return None
        self._drop(uid)
        return assemble([parts[n] for n in range(head["chunks"])], self.keys)

    def _drop(self, uid: str) -> None:
        parts = self._parts.pop(uid, {})
        self.held -= sum(len(c.data) for c in parts.values())


def assemble(chunks: list[Chunk], keys: UpdateKeys | None = None) -> Update:
    """Raises: UpdateError ``corrupt``, ``unsigned``, ``bad_signature``."""
    head = chunks[0].header
    payload = b"".join(c.data for c in chunks)
    if hashlib.sha256(payload).hexdigest() != head["sha256"]:
        raise UpdateError("corrupt", f"version {head['version']}: checksum mismatch")
    if keys is not None:
        keys.verify(signed_fields(head), head.get("sig"), f"{head['kind']} {head['version']}")
    update = decode_update(payload)
    kind = "snapshot" if isinstance(update, Snapshot) else "delta"
    base = None if isinstance(update, Snapshot) else update.base
    if (kind, update.version, base) != (head["kind"], head["version"], head["base"]):
        raise UpdateError("corrupt", f"version {head['version']}: header and payload disagree")
    update.meta.setdefault("published_at", head.get("published_at"))
    return update


# kafka-python's clients wait up to 30 s between reconnects by default: after a broker outage
# the trainer and the workers' update readers then stayed away that long after it was back.
RECONNECT_BACKOFF_MAX_MS = 1000


def updates_consumer(settings: Settings) -> tuple[KafkaConsumer, TopicPartition]:
    """A consumer of the topic's one partition. A position the trainer deleted meanwhile
    resets to the beginning ("earliest"): the first chunk of a snapshot."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        **client_config(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=max(settings.update_max_bytes * 4, 1 << 20),
    )
    tp = TopicPartition(settings.model_updates_topic, 0)
    consumer.assign([tp])
    return consumer, tp


def latest_snapshot_offset(
    consumer: KafkaConsumer,
    tp: TopicPartition,
    keys: UpdateKeys | None = None,
    window: int = 64,
) -> int:
    """Offset of the first chunk of the newest complete snapshot (whose checksum and, with
    ``keys``, signature verify: a forged snapshot never makes a reader skip the real one);
    the topic's beginning when it holds none. Reads backwards from the end in windows that
    grow 4x."""
    begin = consumer.beginning_offsets([tp])[tp]
    end = consumer.end_offsets([tp])[tp]
    while True:
        lo = max(begin, end - window)
        found = _complete_snapshots(read_range(consumer, tp, lo, end), keys)
        if found:
            return max(found)[1]
        if lo == begin:
            return begin
        end, window = lo + 1, window * 4  # overlap one message: a snapshot may straddle


def _complete_snapshots(records: list, keys: UpdateKeys | None) -> list[tuple[int, int]]:
    """(version, first offset) of each snapshot whose every chunk is in ``records`` and
    whose checksum and signature (with ``keys``) verify."""
    chunks: dict[str, dict[int, Chunk]] = {}
    first: dict[str, int] = {}
    for record in records:
        try:
            chunk = parse_chunk(record.value)
        except UpdateError:
            continue
        if chunk.header["kind"] == "snapshot":
            chunks.setdefault(chunk.update_id, {})[chunk.header["chunk"]] = chunk
            first[chunk.update_id] = min(first.get(chunk.update_id, record.offset), record.offset)
    found = []
    for uid, parts in chunks.items():
        head = next(iter(parts.values())).header
        if sorted(parts) != list(range(head["chunks"])):
            continue
        payload = b"".join(parts[n].data for n in range(head["chunks"]))
        try:
            if hashlib.sha256(payload).hexdigest() != head["sha256"]:
                continue
            if keys is not None:
                keys.verify(signed_fields(head), head.get("sig"), f"snapshot {head['version']}")
        except UpdateError:
            continue
        found.append((head["version"], first[uid]))
    return found


def read_range(
    consumer: KafkaConsumer, tp: TopicPartition, lo: int, hi: int, timeout_s: float = 120.0
) -> list:
    """Records with ``lo <= offset < hi`` (fewer if the broker stops answering)."""
    consumer.seek(tp, lo)
    records: list = []
    deadline = time.monotonic() + timeout_s
    while consumer.position(tp) < hi and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=1000)
        records.extend(r for r in batch.get(tp, []) if r.offset < hi)
    return records


@dataclass
class Replayed:
    """What replaying the topic from the latest snapshot gave."""

    updates: list[Update]  # decoded, in topic order (rejections left out)
    max_version: int  # the highest version number in any chunk, complete or not
    end_offset: int
    begin_offset: int  # the topic's first offset (records before it were deleted)
    snapshot_offset: int | None  # first chunk of the newest complete snapshot; None: none


def read_updates(
    settings: Settings,
    keys: UpdateKeys | None = None,
    on_reject: Callable[[str, str], None] | None = None,
) -> Replayed:
    """Every update from the latest snapshot to the current end (trainer restarts)."""
    consumer, tp = updates_consumer(settings)
    try:
        start = latest_snapshot_offset(consumer, tp, keys)
        end = consumer.end_offsets([tp])[tp]
        assembler = Assembler(keys, settings.update_assembly_max_bytes)
        updates, max_version = [], -1
        first_offsets: dict[str, int] = {}  # update id -> offset of its first chunk read
        snapshot_offset = None
        for record in read_range(consumer, tp, start, end):
            if is_control(record.value):
                continue
            try:
                chunk = parse_chunk(record.value)
                max_version = max(max_version, chunk.header["version"])
                first_offsets.setdefault(chunk.update_id, record.offset)
                update = assembler.add(chunk)
            except UpdateError as e:
                if on_reject:
                    on_reject(e.reason, str(e))
                continue
            if update is not None:
                updates.append(update)
                if isinstance(update, Snapshot):
                    snapshot_offset = first_offsets[chunk.update_id]
        begin = consumer.beginning_offsets([tp])[tp]
        return Replayed(updates, max_version, end, begin, snapshot_offset)
    finally:
        consumer.close()


def keep_until_deleted(admin: KafkaAdminClient, topic: str, configs: Mapping[str, str]) -> bool:
    """Give ``topic`` the retention settings among ``configs`` (its `TopicSpec`'s: none by
    age or size), so that only `delete_before` deletes from it; a topic created before
    kept 7 days. False, and a warning, when the broker refused (trimming still bounds it).
    """
    retention = {k: v for k, v in configs.items() if k.startswith("retention.")}
    try:
        result = admin.alter_configs([ConfigResource("TOPIC", topic, retention)])
        outcome = result.get("topic", {}).get(topic, "no answer")
    except (KafkaError, ValueError) as e:
        outcome = repr(e)
    if outcome != "OK":
        log.warning("%s keeps its retention (%s); set it to %s", topic, outcome, retention)
        return False
    return True


def delete_before(admin: KafkaAdminClient, settings: Settings, offset: int) -> int:
    """Delete the model-updates records before ``offset``; returns the topic's first offset
    afterwards (``offset``, or a later one that an earlier call left).

    Raises:
        KafkaError: the broker did not delete them (nothing is deleted then, or all is).
    """
    tp = TopicPartition(settings.model_updates_topic, 0)
    result = admin.delete_records({tp: offset})
    return int(result[tp]["low_watermark"])
