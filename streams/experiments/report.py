"""Which variant of an experiment wins, and how sure that is, from what a run wrote.

    run = read_experiment_run(settings, experiment)   # the run's topics
    report = build_report(run, experiment)            # a dict (``--json``)
    print(text(report)); plot(report, "quality.png")

Events are judged in stream order as ``rtrank bench online`` judges them
(`rtrank.streams.bench.replay_eval`): each event against the newest list emitted for an
earlier event of its user, never one from a model version already trained on it (only the
learning arm's versions come from the trainer). The judged list's ``experiment.variant``
says whose event it is.

- ``ab``: per variant the users assigned (users with a list of that variant), the model
  versions its lists carried (first and last), the events judged, Hit@10, NDCG@10 and MRR
  (reciprocal rank within the list, 0 when absent), each with its 95% interval; each
  variant's difference to the control (the first variant) with its interval and p-value;
  a sample-ratio check of the users per variant against the declared shares
  (`rtrank.streams.experiments.stats`).
- ``interleave``: the interleaved lists' quality, and per variant the events its team won
  (the next item is one it placed), its share of the decided events with its interval and
  the p-value against an even split.

Intervals and p-values: normal approximation with users as the unit (delta method,
`rtrank.streams.experiments.stats`). The winner: in ``ab`` the best variant whose Hit@10
differs from the control's with p < ``alpha`` (the control when only a worse one does); in
``interleave`` the team whose win share differs from one half with p < ``alpha``; none
otherwise.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from kafka import KafkaConsumer

from rtrank.streams.bench.online_bench import PublishedVersions
from rtrank.streams.bench.replay_eval import Judged, Run, judge, read_run
from rtrank.streams.experiments.definition import INTERLEAVED, Experiment
from rtrank.streams.experiments.stats import (
    Difference,
    Estimate,
    difference,
    ratio_estimate,
    sample_ratio_check,
    two_sided_p,
)
from rtrank.streams.settings import Settings
from rtrank.streams.worker.online_eval import K, gains, rank_of

METRICS = ("hit@10", "ndcg@10", "mrr")
PRIMARY = "hit@10"
TIME_BINS = 20


@dataclass(frozen=True)
class Outcome:
    """One judged event: its user, the variant of the list it was tested against, its time,
    its metrics, and (interleaving) the variant whose item it chose ("" when none)."""

    user: str
    variant: str
    ts: int
    values: tuple[float, float, float]  # hit@10, ndcg@10, mrr
    won_by: str = ""


def outcomes(run: Run, judged: Judged) -> list[Outcome]:
    """Every judged event's `Outcome`, in time order."""
    out = []
    for (user, n), tested in judged.tested.items():
        rank = rank_of(list(tested.items), run.items[user][n])
        hit, ndcg = gains(rank)
        rr = 1.0 / (rank + 1) if rank is not None and rank < K else 0.0
        won_by = tested.teams[rank] if hit and rank < len(tested.teams) else ""
        times = run.times.get(user, [])
        ts = times[n] if n < len(times) else 0
        out.append(Outcome(user, tested.variant, ts, (hit, ndcg, rr), won_by))
    return sorted(out, key=lambda o: o.ts)


def estimates(events: list[Outcome]) -> dict[str, Estimate]:
    """Each metric's mean over ``events``, users as the unit."""
    per_user: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for o in events:
        sums = per_user[o.user]
        for m, value in enumerate(o.values):
            sums[m] += value
        sums[3] += 1
    counts = [s[3] for s in per_user.values()]
    return {
        name: ratio_estimate([s[m] for s in per_user.values()], counts)
        for m, name in enumerate(METRICS)
    }


def build_report(
    run: Run,
    experiment: Experiment,
    alpha: float = 0.05,
    measured_from: Mapping[str, int] | None = None,
) -> dict:
    """The report of ``run`` as a JSON-able dict; ``measured_from``: each user's first
    event judged (by default every event of every user)."""
    judged = judge(run, dict.fromkeys(run.items, 0) if measured_from is None else measured_from)
    events = outcomes(run, judged)
    report = {
        "experiment": experiment.name,
        "mode": experiment.mode,
        "control": experiment.control.name,
        "alpha": alpha,
        "judged": len(events),
        "untested": judged.untested,
        "skipped_trained": judged.skipped_trained,
    }
    if experiment.mode == "ab":
        report.update(_ab(run, experiment, events, alpha))
    else:
        report.update(_interleaved(experiment, events, alpha))
    report["over_time"] = over_time(experiment, events)
    return report


def _ab(run: Run, experiment: Experiment, events: list[Outcome], alpha: float) -> dict:
    by_variant: dict[str, list[Outcome]] = defaultdict(list)
    for o in events:
        by_variant[o.variant].append(o)
    assigned: dict[str, set[str]] = defaultdict(set)
    versions: dict[str, set[int]] = defaultdict(set)
    for user, lists in run.lists.items():
        for emitted in lists:
            assigned[emitted.variant].add(user)
            versions[emitted.variant].add(emitted.version)
    names = [v.name for v in experiment.variants]
    found = {name: estimates(by_variant[name]) for name in names}
    control = found[experiment.control.name]
    rows = []
    for v in experiment.variants:
        est = found[v.name]
        row = {
            "name": v.name,
            "share": round(v.share, 6),
            "online_learning": v.online_learning,
            "users": len(assigned[v.name]),
            "events": est[PRIMARY].events,
            "versions": [min(versions[v.name]), max(versions[v.name])] if versions[v.name] else [],
            **{m: _estimate(est[m]) for m in METRICS},
        }
        if v is not experiment.control:
            row["vs_control"] = {m: _difference(difference(est[m], control[m])) for m in METRICS}
        rows.append(row)
    ratio = sample_ratio_check(
        [len(assigned[name]) for name in names], [v.share for v in experiment.variants]
    )
    return {
        "variants": rows,
        "sample_ratio": {
            "chi2": _round(ratio.chi2),
            "df": ratio.df,
            "p": _round(ratio.p),
            "flagged": ratio.flagged,
        },
        "winner": _ab_winner(rows, experiment.control.name, alpha),
    }


def _ab_winner(rows: list[dict], control: str, alpha: float) -> str | None:
    differ = [
        r for r in rows if "vs_control" in r and significant(r["vs_control"][PRIMARY]["p"], alpha)
    ]
    better = [r for r in differ if r["vs_control"][PRIMARY]["diff"] > 0]
    if better:
        return max(better, key=lambda r: r[PRIMARY]["mean"])["name"]
    return control if differ else None


def _interleaved(experiment: Experiment, events: list[Outcome], alpha: float) -> dict:
    names = [v.name for v in experiment.variants]
    mine = [o for o in events if o.variant == INTERLEAVED]
    per_user: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for o in mine:
        if o.won_by in names:
            per_user[o.user][names.index(o.won_by)] += 1
    decided = [a + b for a, b in per_user.values()]
    rows = []
    for n, name in enumerate(names):
        share = ratio_estimate([w[n] for w in per_user.values()], decided)
        rows.append(
            {
                "name": name,
                "wins": int(sum(w[n] for w in per_user.values())),
                "win_rate": {
                    **_estimate(share),
                    "p": _round(two_sided_p(share.mean, share.se, 0.5)),
                },
            }
        )
    challenger = rows[1]["win_rate"]
    winner = None
    if significant(challenger["p"], alpha):
        winner = names[1] if challenger["mean"] > 0.5 else names[0]
    quality = estimates(mine)
    return {
        "interleaved": {
            "users": len({o.user for o in mine}),
            "events": len(mine),
            "decided": int(sum(decided)),
            **{m: _estimate(quality[m]) for m in METRICS},
        },
        "variants": rows,
        "winner": winner,
    }


def over_time(experiment: Experiment, events: list[Outcome]) -> dict[str, list[list[float]]]:
    """Per variant, [minutes since the first judged event, cumulative value] at the end of
    each of `TIME_BINS` equal spans: Hit@10 in ``ab``, the win share in ``interleave``."""
    if not events:
        return {}
    start, end = events[0].ts, events[-1].ts
    width = max(1, end - start) / TIME_BINS
    out: dict[str, list[list[float]]] = {}
    for v in experiment.variants:
        points, total, count, edge = [], 0.0, 0, start + width
        for o in events:
            while o.ts > edge:
                if count:
                    points.append([round((edge - start) / 60000, 3), round(total / count, 5)])
                edge += width
            if experiment.mode == "ab" and o.variant == v.name:
                total, count = total + o.values[0], count + 1
            elif experiment.mode == "interleave" and o.won_by:
                total, count = total + (o.won_by == v.name), count + 1
        if count:
            points.append([round((end - start) / 60000, 3), round(total / count, 5)])
        out[v.name] = points
    return out


def _estimate(e: Estimate) -> dict:
    lo, hi = e.ci
    return {"mean": _round(e.mean), "ci": [_round(lo), _round(hi)]}


def _difference(d: Difference) -> dict:
    lo, hi = d.ci
    return {"diff": _round(d.diff), "ci": [_round(lo), _round(hi)], "p": _round(d.p, 8)}


def _round(x: float, digits: int = 5) -> float | None:
    """``x`` rounded; None (JSON null) when undefined (too few users)."""
    return None if math.isnan(x) else round(x, digits)


def significant(p: float | None, alpha: float) -> bool:
    return p is not None and p < alpha


def read_experiment_run(settings: Settings, experiment: Experiment) -> Run:
    """The run on ``settings``' topics, with the learning arm's published versions (what
    each had trained on) when a variant learns online.

    Raises:
        RuntimeError: a topic could not be read to its end.
    """
    trained: dict[int, dict[int, int]] = {}
    if experiment.learning_arm and _topic_exists(settings, settings.model_updates_topic):
        versions = PublishedVersions(settings)
        try:
            versions.read()
            trained = versions.trained
        finally:
            versions.close()
    run = read_run(settings, trained, check_examples=bool(experiment.learning_arm))
    run.frozen = frozenset(
        {INTERLEAVED} | {v.name for v in experiment.variants if not v.online_learning}
    )
    return run


def _topic_exists(settings: Settings, topic: str) -> bool:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        return topic in consumer.topics()
    finally:
        consumer.close()
