"""A worker's local tables survive a clean stop and are discarded after a crash."""

from __future__ import annotations

from pathlib import Path

from rtrank.streams.worker.local_state import mark_running, mark_stopped


def tables_in(tmp_path: Path) -> tuple[Path, Path]:
    app_dir, table_dir = tmp_path / "v1", tmp_path / "v1" / "tables"
    (table_dir / "user_to_history-0.db").mkdir(parents=True)
    return app_dir, table_dir


def test_a_first_start_keeps_what_is_there(tmp_path: Path) -> None:
    app_dir, table_dir = tables_in(tmp_path)
    assert mark_running(app_dir, table_dir) is False
    assert (table_dir / "user_to_history-0.db").is_dir()


def test_tables_survive_a_clean_stop(tmp_path: Path) -> None:
    app_dir, table_dir = tables_in(tmp_path)
    mark_running(app_dir, table_dir)
    mark_stopped(app_dir)
    assert mark_running(app_dir, table_dir) is False
    assert (table_dir / "user_to_history-0.db").is_dir()


def test_tables_are_discarded_after_a_worker_that_never_stopped(tmp_path: Path) -> None:
    app_dir, table_dir = tables_in(tmp_path)
    mark_running(app_dir, table_dir)  # ... and the worker is killed
    assert mark_running(app_dir, table_dir) is True
    assert not table_dir.exists()


def test_the_worker_after_a_crash_is_marked_running_itself(tmp_path: Path) -> None:
    app_dir, table_dir = tables_in(tmp_path)
    mark_running(app_dir, table_dir)
    mark_running(app_dir, table_dir)
    (table_dir / "user_to_history-0.db").mkdir(parents=True)  # recovered anew
    assert mark_running(app_dir, table_dir) is True  # killed again: discarded again
