"""The worker's local table files after a crash: discarded, so the changelog rebuilds them.

A worker killed mid-run (SIGKILL, OOM, a lost machine) leaves its RocksDB tables as they
were, and with them the changelog offset each partition's store says it holds. Faust trusts
that offset when the partition is assigned again and recovers only what follows it; after a
kill, a store was seen holding an offset at the changelog's end with states behind it, and
the restarted worker served lists from them (items the user had already seen). A worker
that did not stop cleanly therefore starts without its local tables and recovers every
assigned partition from its changelog, the one record of what was written; standby replicas
on the other workers keep takeovers short meanwhile.

A clean stop is told from a crash by a mark file written at start and removed at a clean
stop (`mark_running`, `mark_stopped`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

RUNNING_MARK = "rtrank-worker-running"


def mark_running(app_dir: Path, table_dir: Path) -> bool:
    """Record that a worker runs on ``app_dir``; if the previous one did not stop cleanly,
    delete ``table_dir`` first. Returns whether tables were discarded."""
    mark = app_dir / RUNNING_MARK
    discarded = mark.exists() and table_dir.exists()
    if discarded:
        log.warning(
            "the last worker on %s did not stop cleanly: its tables are discarded and "
            "recovered from their changelogs",
            app_dir,
        )
        shutil.rmtree(table_dir)
    app_dir.mkdir(parents=True, exist_ok=True)
    mark.touch()
    return discarded


def mark_stopped(app_dir: Path) -> None:
    """Record a clean stop: the tables on ``app_dir`` are as their changelogs say."""
    (app_dir / RUNNING_MARK).unlink(missing_ok=True)
