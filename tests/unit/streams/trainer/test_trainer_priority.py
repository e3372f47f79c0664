"""A trainer sharing a machine with a worker yields the CPU to it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LOWER_BY_FIVE = """
import json, os
from pathlib import Path
from rtrank.streams.trainer.online_trainer import lower_priority
before = os.nice(0)
lower_priority(5)
autogroup = Path("/proc/self/autogroup")
print(json.dumps({
    "added": os.nice(0) - before,
    "autogroup": autogroup.read_text() if autogroup.exists() else "",
}))
"""


def autogroup_nice(text: str) -> int | None:
    """The nice value in a /proc/<pid>/autogroup line; None when the process has no autogroup.

    The kernel prints nothing for a process in init's default group: one whose session
    descends from init's without a setsid (as a CI runner's may), which cannot be reniced.
    """
    fields = text.split()
    return int(fields[2]) if len(fields) == 3 and fields[1] == "nice" else None


def own_autogroup_nice() -> int | None:
    path = Path("/proc/self/autogroup")
    return autogroup_nice(path.read_text()) if path.exists() else None


needs_autogroup = pytest.mark.skipif(
    own_autogroup_nice() is None,
    reason="this process has no autogroup of its own (init's default group)",
)


def run_child(start_new_session: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", LOWER_BY_FIVE],
        capture_output=True,
        text=True,
        check=True,
        start_new_session=start_new_session,
    )
    return json.loads(done.stdout)


def test_lowering_priority_adds_to_the_nice_value() -> None:
    assert run_child(start_new_session=False)["added"] == 5


@needs_autogroup
def test_a_trainer_leading_its_own_session_lowers_its_autogroup_too() -> None:
    assert autogroup_nice(run_child(start_new_session=True)["autogroup"]) == 5


@needs_autogroup
def test_a_trainer_inside_a_shared_session_leaves_the_autogroup_alone() -> None:
    shared = own_autogroup_nice()
    assert autogroup_nice(run_child(start_new_session=False)["autogroup"]) == shared
