"""CPU seconds per process and part of a run, and the processes a process started."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rtrank.streams.bench.cpu_use import (
    children,
    cores_between,
    cpu_seconds,
    used,
    used_between,
)


def busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_cpu_seconds_grow_by_the_cpu_this_process_spends():
    before = cpu_seconds(os.getpid())
    busy(0.3)
    assert cpu_seconds(os.getpid()) - before == pytest.approx(0.3, abs=0.05)


def test_a_process_that_is_gone_has_no_cpu_seconds_and_no_children():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu_seconds(child.pid) is None and children(child.pid) == []


def test_children_are_found_and_a_sleeping_one_uses_no_cpu():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.5)
        assert child.pid in children(os.getpid())
        before = used({"child": [child.pid], "me": [os.getpid()]})
        busy(0.2)
        spent = used_between(before, used({"child": [child.pid], "me": [os.getpid()]}))
        assert spent["child"] == 0.0 and spent["me"] >= 0.1
    finally:
        child.kill()
        child.wait()


def test_parts_that_cannot_be_read_are_left_out():
    assert used({"gone": [2**22 + 12345], "empty": []}) == {}
    assert used_between({"a": 1.0, "b": 2.0}, {"a": 3.5}) == {"a": 2.5}


def test_cores_are_cpu_seconds_per_second_for_the_parts_read_both_times():
    before = {"worker": 10.0, "model": 4.0, "gone": 1.0}
    after = {"worker": 14.9, "model": 8.0, "new": 3.0}
    assert cores_between(before, after, 10.0) == {"worker": 0.49, "model": 0.4}
