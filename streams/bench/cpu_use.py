"""CPU seconds used by the processes of a run, read with ``psutil``.

`rtrank bench online` reports them per part of the system (worker, its model process,
trainer, broker, the bench's own replay) over the measured second half, and `rtrank bench
pipeline` the cores each part kept busy at each offered rate, so that a reader sees which
part a machine ran out of, not only that answers came late.

``psutil`` comes with the ``bench`` extra; it is imported where it is used, so that the
``rtrank`` command (which lists the benchmarks) runs without it.
"""

from __future__ import annotations


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (all its threads, not its
    children); None when it cannot be read (a process gone, or not ours to read)."""
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (empty when it cannot be read)."""
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def used(parts: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far per part (the sum over its processes); a part none of whose
    processes can be read is left out."""
    out = {}
    for name, pids in parts.items():
        seconds = [s for s in (cpu_seconds(p) for p in pids) if s is not None]
        if seconds:
            out[name] = sum(seconds)
    return out


def used_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each part used from ``before`` to ``after`` (parts read both times)."""
    return {name: round(after[name] - before[name], 1) for name in before if name in after}


def cores_between(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """Cores each part kept busy on average over ``seconds``, from CPU seconds ``before``
    and ``after`` (parts read both times)."""
    return {
        name: round((after[name] - before[name]) / seconds, 2) for name in before if name in after
    }
