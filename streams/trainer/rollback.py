"""Rolling the served model back to an earlier version: `rtrank rollback --to V`.

The command writes a rollback request on model-updates (a control record, `CONTROL_MAGIC`,
signed with the trainer's key when one is configured). The running trainer reads it, finds
version V's weights (`find_version`: the versions model-updates still holds, rebuilt from
its snapshot and deltas, else the trainer's snapshot archive), continues training from them
(`rolled_back`) and publishes them as a new snapshot, the next version number, with
``rollback_to: V`` in its meta. Workers need nothing new: a snapshot newer than what they
serve replaces it within a poll of the feed. Version numbers never go back, so no reader
ever meets a number twice or a delta on a base it cannot tell apart. The trainer then
answers on the same topic (``rollback_done`` with the new version, or ``rollback_refused``
with a one-line reason), which the command waits for.

A trainer acts only on requests written while it runs (it reads the topic from where its
resume ended): a request left by a command that gave up is never acted on later.
"""

from __future__ import annotations

import json
import time
from typing import Any

from rtrank.model.online import OnlineConfig, OnlineLearner
from rtrank.model.updates import (
    Snapshot,
    UpdateError,
    apply_update,
    make_snapshot,
    model_from_snapshot,
)
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.model_updates import (
    CONTROL_MAGIC,
    Assembler,
    is_control,
    parse_chunk,
    read_range,
    updates_consumer,
)
from rtrank.streams.trainer.snapshot_archive import SnapshotArchive
from rtrank.streams.trainer.update_signing import UpdateKeys


class RollbackError(ValueError):
    """Version V cannot be rolled back to; the message is one line saying why."""


def control_record(body: dict[str, Any]) -> bytes:
    return CONTROL_MAGIC + json.dumps(body, separators=(",", ":")).encode()


def request_record(request_id: str, to: int, keys: UpdateKeys) -> bytes:
    """A rollback request, signed when ``keys`` hold a signing key."""
    body: dict[str, Any] = {
        "type": "rollback",
        "id": request_id,
        "to": to,
        "requested_at": int(time.time() * 1000),
    }
    signature = keys.sign(["rollback", request_id, to])
    if signature is not None:
        body["sig"] = signature
    return control_record(body)


def parse_control(value: bytes | None) -> dict[str, Any] | None:
    """A control record's body; None for anything else (update chunks, malformed records)."""
    if not is_control(value):
        return None
    try:
        body = json.loads(value[len(CONTROL_MAGIC) :])
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        return None
    if not isinstance(body.get("to"), int) or isinstance(body.get("to"), bool):
        return None
    return body


def verify_request(request: dict[str, Any], keys: UpdateKeys) -> None:
    """Raises: UpdateError ``unsigned`` / ``bad_signature`` (with a verifying key)."""
    keys.verify(
        ["rollback", request["id"], request["to"]],
        request.get("sig"),
        f"rollback request {request['id']}",
    )


def find_version(
    settings: Settings, keys: UpdateKeys, archive: SnapshotArchive | None, version: int
) -> Snapshot:
    """Version ``version`` as a whole model: from the archive when it kept that snapshot,
    else rebuilt from what model-updates holds (its first snapshot, then every update up
    to ``version``), each update verified as a worker would.

    Raises:
        RollbackError: neither holds it (the message lists what they hold).
    """
    if archive is not None:
        kept = archive.load(version)
        if kept is not None:
            return kept
    consumer, tp = updates_consumer(settings)
    try:
        begin = consumer.beginning_offsets([tp])[tp]
        end = consumer.end_offsets([tp])[tp]
        records = read_range(consumer, tp, begin, end)
    finally:
        consumer.close()
    assembler = Assembler(keys, settings.update_assembly_max_bytes)
    model, vocab, served, seen = None, None, -1, []
    for record in records:
        if is_control(record.value):
            continue
        try:
            update = assembler.add(parse_chunk(record.value))
            if update is None or update.version > version:
                continue
            model, vocab, served = apply_update(model, vocab, served, update)
        except UpdateError:
            continue
        seen.append(served)
        if served == version:
            return make_snapshot(model, vocab, version, update.meta)
    on_topic = f"{min(seen)}-{max(seen)}" if seen else "none"
    kept = archive.versions() if archive is not None else []
    raise RollbackError(
        f"version {version} is not available: model-updates holds versions {on_topic}, "
        f"the trainer's archive {kept or 'none'}"
    )


def rolled_back(learner: OnlineLearner, snapshot: Snapshot, config: OnlineConfig) -> OnlineLearner:
    """A learner with ``snapshot``'s weights and vocabulary that publishes after
    ``learner``'s last version and keeps its replay buffer (the examples are still the
    stream's; only the weights learnt from them are undone). Items the buffer names that
    ``snapshot`` never had get new rows, as new items in the stream do. Optimiser moments
    start afresh; the surprise reference is the snapshot's."""
    model, vocab = model_from_snapshot(snapshot)
    reference = snapshot.meta.get("held_out_outranked", learner.held_out_outranked)
    fresh = OnlineLearner(model, vocab, learner.version, config, reference)
    fresh.buffer = learner.buffer
    fresh.observe([*learner.buffer.recent, *learner.buffer.reservoir])
    fresh.steps, fresh.skipped = learner.steps, learner.skipped
    return fresh
