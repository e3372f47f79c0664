"""CPU seconds used by the processes of a run, from Linux's ``/proc``.

`rtrank bench online` reports them per part of the system (worker, its model process,
trainer, broker, the bench's own replay) over the measured second half, so that a reader
sees which part a machine ran out of, not only that answers came late. Elsewhere than
Linux nothing is reported.
"""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (all its threads, not its
    children); None when ``/proc`` cannot tell (another OS, a process gone)."""
    try:
        # the command name (field 2) may hold spaces and parentheses: read after its ")"
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (empty when ``/proc`` cannot tell)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        return []
    return found


def used(parts: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far per part (the sum over its processes); a part none of whose
    processes ``/proc`` can read is left out."""
    out = {}
    for name, pids in parts.items():
        seconds = [s for s in (cpu_seconds(p) for p in pids) if s is not None]
        if seconds:
            out[name] = sum(seconds)
    return out


def used_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each part used from ``before`` to ``after`` (parts read both times)."""
    return {name: round(after[name] - before[name], 1) for name in before if name in after}
