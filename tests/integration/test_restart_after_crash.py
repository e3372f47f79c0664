"""A worker SIGKILLed with events not yet answered, and started again, reads every one of
them and answers every user's last event (real broker, real worker process)."""

from __future__ import annotations

import signal

from kafka import KafkaAdminClient

from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.replay_checks import check_replay, sent_events
from rtrank.streams.bench.topic_reader import end_offsets
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from tests.integration.conftest import SYNTHETIC_ITEMS, wait_for

FETCHED_NOT_READ = "no event read after"  # ingest's warning when fetched events never reached it


def committed(settings: Settings) -> dict[int, int]:
    """Partition of the events topic -> the group's committed offset (its next event)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        offsets = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
    finally:
        admin.close()
    return {
        tp.partition: o.offset
        for tp, o in offsets.items()
        if tp.topic == settings.events_topic and o.offset >= 0
    }


def test_a_worker_restarted_after_sigkill_reads_and_answers_the_events_left_unanswered(
    settings, worker, synthetic_checkpoint
) -> None:
    settings = settings.replace(checkpoint=str(synthetic_checkpoint))
    worker.settings = settings
    worker.start()
    replay = synthetic_replay(users=100, items=SYNTHETIC_ITEMS, events=600, seed=9)
    before, after = replay.events[:300], replay.events[300:]
    send_events(settings, before, progress=False)
    wait_for(
        lambda: committed(settings) == end_offsets(settings, settings.events_topic),
        60,
        message="the first events were not all committed",
    )
    worker.process.send_signal(signal.SIGSTOP)  # the rest wait for the restarted worker
    send_events(settings, after, progress=False)
    worker.stop(signal.SIGKILL)
    restarted_at = worker.log.stat().st_size

    worker.start()
    findings = check_replay(settings, sent_events(settings), settle_s=45)
    assert findings.ok, findings.counts()
    with worker.log.open("rb") as log:
        log.seek(restarted_at)
        restarted_log = log.read().decode(errors="replace").splitlines()
    assert [line for line in restarted_log if FETCHED_NOT_READ in line] == []
