"""`sigterm_exits`: a SIGTERM ends a bench or the demo through its ``finally`` blocks.
(That the broker then stops: tests/integration/test_local_stack.py.)"""

from __future__ import annotations

import os
import signal
import time

import pytest

from rtrank.streams.bench.local_stack import sigterm_exits


def test_a_sigterm_inside_raises_system_exit_with_the_signals_exit_code() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exited, sigterm_exits():
        assert signal.getsignal(signal.SIGTERM) is not before  # else the kill ends pytest
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises before this ends
    assert exited.value.code == 128 + signal.SIGTERM


def test_the_previous_sigterm_handler_is_back_on_the_way_out() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError), sigterm_exits():
        raise RuntimeError("an error inside")
    assert signal.getsignal(signal.SIGTERM) is before
