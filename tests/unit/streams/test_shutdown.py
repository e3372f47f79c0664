"""A worker or trainer told to stop ends within its deadline, with exit code 1 when the
deadline ends it."""

from __future__ import annotations

import logging
import queue
import subprocess
import sys

import pytest

from rtrank.streams.shutdown import StopDeadline


def run_python(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter; fails the test if it runs longer than 30 s."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


def test_a_deadline_that_passes_logs_one_line_and_exits_with_code_1(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exits: queue.Queue[int] = queue.Queue()
    with caplog.at_level(logging.INFO, logger="rtrank.streams.shutdown"):
        StopDeadline(0.05, "the trainer", "it resumes", exit=exits.put).start()
        assert exits.get(timeout=10) == 1
    [line] = [r for r in caplog.records if r.name == "rtrank.streams.shutdown"]
    assert line.levelno == logging.CRITICAL
    assert line.getMessage() == (
        "the trainer did not stop within 0.05 s (RTRANK_SHUTDOWN_TIMEOUT_S); "
        "exiting with code 1: it resumes"
    )


def test_a_process_that_ends_before_its_deadline_keeps_its_own_exit_code() -> None:
    done = run_python(
        "from rtrank.streams.shutdown import StopDeadline\n"
        "StopDeadline(120, 'the worker', '').start()\n"
        "raise SystemExit(3)\n"
    )
    assert done.returncode == 3


def test_a_process_stuck_past_its_deadline_exits_with_code_1() -> None:
    done = run_python(
        "import logging, threading\n"
        "from rtrank.streams.shutdown import StopDeadline\n"
        "logging.basicConfig()\n"
        "StopDeadline(0.5, 'the worker', '').start()\n"
        "threading.Event().wait()  # a stop that never finishes\n"
    )
    assert done.returncode == 1
    assert "the worker did not stop within" in done.stderr


def test_a_process_stuck_in_its_interpreter_s_exit_still_exits_by_its_deadline() -> None:
    """The interpreter's exit waits for every non-daemon thread: one that never ends
    (a client still retrying the broker, say) is cut short by the deadline too."""
    done = run_python(
        "import threading\n"
        "from rtrank.streams.shutdown import StopDeadline\n"
        "StopDeadline(0.5, 'the worker', '').start()\n"
        "threading.Thread(target=threading.Event().wait).start()\n"
        "raise SystemExit(0)\n"
    )
    assert done.returncode == 1
