"""A worker SIGKILLed with events not yet answered, and started again, reads every one of
them and answers every user's last event (real broker, real worker process)."""

from __future__ import annotations

import signal

from rtrank.streams.bench.replay_checks import check_replay, sent_events
from rtrank.streams.cli.produce import send_events
from tests.integration.conftest import (
    serve_half_a_replay,
)

FETCHED_NOT_READ = "no event read after"  # ingest's warning when fetched events never reached it


def test_a_worker_restarted_after_sigkill_reads_and_answers_the_events_left_unanswered(
    settings, worker, synthetic_checkpoint
) -> None:
    settings = settings.replace(checkpoint=str(synthetic_checkpoint))
    after = serve_half_a_replay(settings, worker)
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
