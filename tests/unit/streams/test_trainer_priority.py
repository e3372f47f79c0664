"""A trainer sharing a machine with a worker yields the CPU to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LOWER_BY_FIVE = (
    "import os; from streams.trainer import lower_priority; "
    "before = os.nice(0); lower_priority(5); print(os.nice(0) - before)"
)


def run_child(start_new_session: bool) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LOWER_BY_FIVE + "; print(open('/proc/self/autogroup').read())"],
        capture_output=True,
        text=True,
        check=True,
        start_new_session=start_new_session,
    )


def test_lowering_priority_adds_to_the_nice_value() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOWER_BY_FIVE], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["5"]


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="no Linux autogroups")
def test_a_trainer_leading_its_own_session_lowers_its_autogroup_too() -> None:
    assert run_child(start_new_session=True).stdout.split()[-1] == "5"


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="no Linux autogroups")
def test_a_trainer_inside_a_shared_session_leaves_the_autogroup_alone() -> None:
    shared = Path("/proc/self/autogroup").read_text().split()[-1]
    assert run_child(start_new_session=False).stdout.split()[-1] == shared
