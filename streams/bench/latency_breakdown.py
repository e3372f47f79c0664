"""Event -> list latency at an offered rate, and where it goes: the stages each list's
``timings`` carry (`rtrank.streams.worker.stage_timing`), the client's side before the broker
(``produce``) and after the list was written (``deliver``), p50 and p99 of each beside the
end-to-end p50 and p99, and beside them the floor: the same rates through a Faust agent
that does no work (`rtrank.streams.bench.pipeline_bench.faust_passthrough_latency`); then
what the slowest 1% of lists spent in each stage. For ``rtrank bench pipeline``.
"""

from __future__ import annotations

import numpy as np

# In the order an event meets them. deliver: the list's emitted_at to its receipt by the
# bench (the batch's other lists, the worker's send, the broker, the bench's fetch).
STAGES = ("produce", "fetch", "handover", "queued", "inference", "compute", "deliver")
# The processes whose busy cores a run reports (`rtrank.streams.bench.cpu_use`), as printed.
PARTS = {
    "worker": "cores: worker",
    "model": "  its model process",
    "broker": "  broker",
    "bench": "  bench's clients",
}
SLOW_WINDOW_MS = 100  # the slowest 1% of lists is located in windows this long (event ts)


class Breakdown:
    """What one latency run received: each list's end-to-end milliseconds (receipt minus the
    answered event's ``ts``), its event's ``ts``, its milliseconds per stage and the events
    in the batch that answered it."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.event_ts: list[float] = []
        self.stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self.batch_sizes: list[int] = []

    def add(self, rec: dict, received_ms: float) -> None:
        """A list ``rec`` (its JSON) received at ``received_ms`` (epoch ms)."""
        self.latencies.append(received_ms - rec["based_on"]["ts"])
        self.event_ts.append(rec["based_on"]["ts"])
        timings = rec["timings"]
        for stage in STAGES[:-1]:
            self.stages[stage].append(timings.get(stage, 0.0))
        self.stages["deliver"].append(received_ms - rec["emitted_at"])
        self.batch_sizes.append(rec.get("batch_size", 0))

    def summary(self, offered_eps: float) -> dict:
        """p50 and p99 end to end and per stage (ms), lists received, the offered rate,
        where the slowest 1% fell (`slowest_windows`) and what they spent (`slowest_means`)."""
        if not self.latencies:
            raise RuntimeError(f"no list came back at {offered_eps:.0f} events/s")
        slowest = np.asarray(self.latencies) >= np.percentile(self.latencies, 99)
        return {
            "offered_eps": offered_eps,
            "answered": len(self.latencies),
            **percentiles(self.latencies),
            "stages": {stage: percentiles(ms) for stage, ms in self.stages.items()},
            "slowest_windows": slowest_windows(self.event_ts, slowest),
            "slowest_means": slowest_means(slowest, self.stages, self.batch_sizes),
        }


def slowest_windows(event_ts: list[float], slowest: np.ndarray) -> dict[str, int]:
    """In how many `SLOW_WINDOW_MS` windows of the events' ``ts`` the ``slowest`` lists
    (a mask: those at or over the p99) fell, of the windows that any list's event fell in:
    a few means the p99 was set by a few short stretches in which every stage was slow (on
    a shared machine, its own slow moments: docs/benchmarks.md), many that the whole run
    was near it."""
    windows = np.floor(np.asarray(event_ts) / SLOW_WINDOW_MS)
    return {"slowest": int(np.unique(windows[slowest]).size), "of": int(np.unique(windows).size)}


def slowest_means(
    slowest: np.ndarray, stages: dict[str, list[float]], batch_sizes: list[int]
) -> dict:
    """The ``slowest`` lists (a mask: those at or over the p99) on average: ms per stage,
    and events in the batch that answered them. A stage's p99 and the end-to-end p99 are
    seldom the same lists; this says what the lists that set the p99 waited for, and
    whether their batches were the run's usual size or a backlog's."""
    return {
        "stages": {
            stage: round(float(np.asarray(ms)[slowest].mean()), 1) for stage, ms in stages.items()
        },
        "events_per_batch": round(float(np.asarray(batch_sizes)[slowest].mean()), 1),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 1),
        "p99": round(float(np.percentile(values, 99)), 1),
    }


def breakdown_table(runs: list[dict], floor: list[dict] | None = None) -> str:
    """One column pair (p50, p99 ms) per offered rate: end to end, then ``floor`` (the same
    rates through an agent that does no work, when measured), then each stage; the lists
    received and the windows their slowest 1% fell in (`slowest_windows`), the worker's
    model calls per second and events per call (its micro-batches), the machine's load
    average at the end of each run, and the cores each part (`PARTS`) kept busy meanwhile;
    a row only where every run measured it."""
    head = f"{'event -> list (ms)':<22}" + "".join(
        f"{int(r['offered_eps']):>9} ev/s p50{'p99':>8}" for r in runs
    )
    rows = [head]
    rows.append(f"{'end to end':<22}{_pairs(runs)}")
    if floor:
        rows.append(f"{'Faust pass-through':<22}{_pairs(floor)}")
    for stage in STAGES:
        rows.append(f"{'  ' + stage:<22}{_pairs([r['stages'][stage] for r in runs])}")
    rows.append(f"{'lists received':<22}" + "".join(f"{r['answered']:>26,}" for r in runs))
    if all("slowest_windows" in r for r in runs):
        cells = [f"{w['slowest']} of {w['of']}" for w in (r["slowest_windows"] for r in runs)]
        rows.append(
            f"{f'  slowest 1% in {SLOW_WINDOW_MS} ms':<22}" + "".join(f"{c:>26}" for c in cells)
        )
    if all("model_calls" in r for r in runs):
        calls = [r["model_calls"] for r in runs]
        rows.append(f"{'model calls/s':<22}" + "".join(f"{c['per_s']:>26.1f}" for c in calls))
        rows.append(
            f"{'  events per call':<22}" + "".join(f"{c['events_per_call']:>26.1f}" for c in calls)
        )
    rows.append(
        f"{'load average (1 min)':<22}" + "".join(f"{r['load_average']:>26.2f}" for r in runs)
    )
    for part, label in PARTS.items():
        if all(part in r.get("cores", {}) for r in runs):
            rows.append(f"{label:<22}" + "".join(f"{r['cores'][part]:>26.2f}" for r in runs))
    if all("slowest_means" in r for r in runs):
        means = [r["slowest_means"] for r in runs]
        rows.append("the slowest 1%, mean ms")
        for stage in STAGES:
            rows.append(
                f"{'  ' + stage:<22}" + "".join(f"{m['stages'][stage]:>26.1f}" for m in means)
            )
        rows.append(
            f"{'  events in its batch':<22}"
            + "".join(f"{m['events_per_batch']:>26.1f}" for m in means)
        )
    return "\n".join(rows)


def _pairs(figures: list[dict]) -> str:
    """The p50 and p99 cells of one row, a pair per run."""
    return "".join(f"{f['p50']:>18.1f}{f['p99']:>8.1f}" for f in figures)


def model_calls(before: tuple[float, float], after: tuple[float, float], seconds: float) -> dict:
    """The worker's model calls per second and events per call between two readings of its
    (calls, events) totals ``seconds`` apart (`WorkerProcess.batches`): the smaller its
    micro-batches, the more each event costs the worker and its model process."""
    calls, events = after[0] - before[0], after[1] - before[1]
    return {
        "per_s": round(calls / seconds, 1) if seconds > 0 else 0.0,
        "events_per_call": round(events / calls, 1) if calls else 0.0,
    }
