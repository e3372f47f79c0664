"""``rtrank bench online PATH``: frozen model vs online learning, on the real system.

    rtrank bench online /work/shared/data/amazon_games.txt [--rate 2000] [--users 0] [--json]

For PATH and for a synthetic stream whose item transitions change mid-stream ("drift"):

1. pretrain a model on the first 50% of every user's history (offline, `rtrank.model.train`);
2. for (a) frozen and (b) online, each on fresh topics of the local broker, a worker and a
   trainer: replay the first halves of the replayed users as fast as possible (builds their
   state; not measured), then the second halves at ``--rate`` events/s. Quality is
   prequential Hit@10/NDCG@10 over the second half, read back from the run's topics: each
   event tested against the list the run emitted for its user's previous event, never one
   from a version already trained on it (`rtrank.streams.bench.replay_eval`), so that both runs are
   judged on the same events whatever the load of the hour. The worker's own figure
   (``arrival``: each event tested when the worker read it, against the last list emitted
   by then; the difference of its cumulative counters) is shown beside it. In (a) the
   trainer publishes to a topic the worker does not read, so the worker keeps the
   pretrained model under the same load as in (b) and the runs differ only in the served
   model;
3. freshness: from an event's timestamp (stamped when sent) to the publication of the
   first model version trained on it, from the lag histograms the trainer puts in every
   version (100 ms resolution). The trainer is stopped only once its versions cover every
   example of the run (at most 2 minutes after the worker is done), so the slowest
   examples count too; any it never trained on are reported beside the figures.

The trainer starts after the first halves, reading only new examples: the pretrained
model already learned those. The pretraining uses every user's first half; ``--users``
replays only that many users of PATH (all their events; 0, the default, every user).

Why every user by default: what online learning can add to a model pretrained on the
same kind of data is the second halves themselves, and a few thousand users' are too few to
teach it anything measurable (the difference stays within its standard error). The whole
Games file is more than a small machine serves at 2,000 events/s with a trainer beside the
worker; the table's ``answered`` column shows it (figures: docs/benchmarks.md).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from rtrank.deploy.kafka.broker import BrokerError, free_port
from rtrank.model import synthetic
from rtrank.model.data import FORMATS, DataError
from rtrank.model.quality import machine_info
from rtrank.model.sasrec import SASRecConfig
from rtrank.model.train import TrainConfig, make_dataset, train
from rtrank.model.update_error import UpdateError
from rtrank.streams.bench import cpu_use
from rtrank.streams.bench.local_stack import local_kafka_for
from rtrank.streams.bench.replay import from_file, interleave
from rtrank.streams.bench.replay_eval import Judged, judge, paired_difference, read_run
from rtrank.streams.bench.replay_eval import quality as replay_quality
from rtrank.streams.bench.topic_reader import TopicReader, end_offsets
from rtrank.streams.bench.worker_metrics import cumulative, metric_value
from rtrank.streams.bench.worker_process import TrainerProcess, WorkerProcess, busy_parts
from rtrank.streams.cli.context import pass_settings
from rtrank.streams.cli.produce import send_events
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.model_updates import Assembler, parse_chunk
from rtrank.streams.worker.topics_and_tables import delete_run_topics, ensure_topics

log = logging.getLogger(__name__)


@dataclass
class Stream:
    """One benchmark stream: pretraining sequences and the two replay phases."""

    name: str
    pretrain: dict[str, list[str]]  # user -> first half of the history (item ids)
    first: list[dict]  # replayed, not measured
    second: list[dict]  # replayed at the stated rate, measured
    model: SASRecConfig | None = None  # None: SASRec defaults


def halves(events: list[dict]) -> tuple[list[dict], list[dict]]:
    """Split a stream into each user's first 50% and the rest, keeping the stream order."""
    counts: dict[str, int] = {}
    for e in events:
        counts[e["user_id"]] = counts.get(e["user_id"], 0) + 1
    seen: dict[str, int] = {}
    first, second = [], []
    for e in events:
        n = seen.get(e["user_id"], 0)
        seen[e["user_id"]] = n + 1
        (first if n < counts[e["user_id"]] // 2 else second).append(e)
    return first, second


def file_stream(path: str, fmt: str, users: int, seed: int) -> Stream:
    replay = from_file(path, fmt, seed)
    first_all, _ = halves(replay.events)
    pretrain: dict[str, list[str]] = {}
    for e in first_all:
        pretrain.setdefault(e["user_id"], []).append(e["item_id"])
    everyone = sorted({e["user_id"] for e in replay.events})
    chosen = set(everyone)
    if users and users < len(everyone):
        chosen = set(np.random.default_rng(seed).choice(everyone, users, replace=False).tolist())
    events = [{**e, "ts": None} for e in replay.events if e["user_id"] in chosen]
    first, second = halves(events)
    return Stream(Path(path).stem, pretrain, first, second)


def drift_stream(users: int, items: int, seed: int) -> Stream:
    data = synthetic.generate(
        num_users=users, num_items=items, min_len=20, max_len=20, noise=0.1, seed=seed, drift_at=0.5
    )
    per_user = {
        u: [{"user_id": u, "item_id": i, "event_type": "view", "ts": None} for i, _ in evs]
        for u, evs in data.items()
    }
    first, second = halves(list(interleave(per_user, seed)))
    pretrain: dict[str, list[str]] = {}
    for e in first:
        pretrain.setdefault(e["user_id"], []).append(e["item_id"])
    return Stream(
        "drift", pretrain, first, second, SASRecConfig(num_items=2, max_len=20, dim=32, dropout=0.1)
    )


def pretrain(stream: Stream, out: Path, minutes: float, device: str) -> str:
    data = make_dataset(stream.pretrain, name=f"{stream.name} (first halves)")
    base = stream.model or SASRecConfig(num_items=2)
    config = SASRecConfig(**{**base.to_dict(), "num_items": len(data.vocab)})
    result = train(
        data, config, TrainConfig(max_minutes=minutes, device=device, patience=2), out=str(out)
    )
    click.echo(
        f"[{stream.name}] pretrained on {len(data.split.train)} users' first halves: "
        f"{len(data.vocab) - 1} items, best epoch {result.best_epoch}, "
        f"{result.seconds:.0f}s",
        err=True,
    )
    return str(out)


def trainer_settings(worker: Settings, online: bool) -> Settings:
    """The trainer's settings in a run whose worker has ``worker``: for a frozen run it
    publishes where the worker does not read, so both runs carry the same load and only the
    served model differs."""
    if online:
        return worker
    return worker.replace(model_updates_topic=f"{worker.model_updates_topic}.unread")


def replay_run_settings(
    base: Settings, tmp: Path, kind: str, checkpoint: str, **more: object
) -> tuple[str, Settings]:
    """A replay run's tag and settings: fresh topics and group (``bench-KIND-TAG``), its
    own data dir and web port, one worker serving ``checkpoint`` without standby, and a
    trainer that reads only the run's own examples; ``more`` on top."""
    tag = uuid.uuid4().hex[:8]
    return tag, base.isolated(
        f"bench-{kind}-{tag}",
        data_dir=tmp / f"state-{tag}",
        web_port=free_port(),
        standby_replicas=0,
        checkpoint=checkpoint,
        log_level="warn",
        trainer_examples_from="latest",
        **more,
    )


def replay_run(
    base: Settings, tmp: Path, stream: Stream, checkpoint: str, rate: float, online: bool
) -> tuple[dict, Judged, dict[int, int], int]:
    """One run on fresh topics, deleted when it succeeds; returns its second-half quality,
    each second-half event's judgement in stream order (`rtrank.streams.bench.replay_eval`),
    and for an online run its freshness histogram and the training examples it wrote (a
    frozen run's trainer publishes nowhere measured, so those are empty)."""
    tag, s = replay_run_settings(base, tmp, "online", checkpoint)
    ensure_topics(s)
    worker = WorkerProcess(s, tmp / f"worker-{tag}.log")
    trainer = TrainerProcess(
        trainer_settings(s, online), tmp / f"trainer-{tag}.log", checkpoint=checkpoint
    )
    label = f"[{stream.name}] {'online' if online else 'frozen'}"
    worker.start()
    try:
        send_events(s, stream.first, progress=False)
        worker.drain(len(stream.first))
        examples_before = _examples_written(s) if online else 0
        trainer.start()
        parts = process_parts(worker, trainer)
        cpu_before = cpu_use.used(parts)
        before = cumulative(worker.metrics())
        click.echo(f"{label}: {len(stream.second)} events at {rate:.0f}/s", err=True)
        started = time.monotonic()
        send_events(s, stream.second, rate=rate, progress=False)
        worker.drain(len(stream.first) + len(stream.second))
        seconds = time.monotonic() - started
        cpu = cpu_use.used_between(cpu_before, cpu_use.used(parts))
        after = cumulative(worker.metrics())
        version = metric_value(worker.metrics(), "rtrank_model_version")
        expected, lags, trained = 0, {}, {}
        if online:
            expected = _examples_written(s) - examples_before
            versions = _versions_once_trained(s, expected)
            lags, trained = versions.lags, versions.trained
    finally:
        trainer.stop()
        worker.stop()
    judged = judge(read_run(s, trained), measured_from(stream))
    delete_run_topics(s, f"bench-online-{tag}")  # kept, like the files, on failure
    tested = after[0] - before[0]
    at_arrival = (after[1] - before[1]) / max(tested, 1)
    quality = {
        **replay_quality(judged),
        "at_arrival": {
            "hit@10": round(at_arrival, 4),
            "ndcg@10": round((after[2] - before[2]) / max(tested, 1), 4),
            "tested": int(tested),
        },
        "final_version": int(version),
        "seconds": round(seconds, 1),
        "cpu_s": cpu,
    }
    click.echo(f"{label}: {quality}", err=True)
    return quality, judged, lags, expected


def measured_from(stream: Stream) -> dict[str, int]:
    """Each replayed user's first measured event: the first of its second half."""
    first = Counter(e["user_id"] for e in stream.first)
    return {e["user_id"]: first[e["user_id"]] for e in stream.second}


def process_parts(worker: WorkerProcess, trainer: TrainerProcess) -> dict[str, list[int]]:
    """The run's processes by part, for `cpu_use.used`: `busy_parts` (the worker, its model
    process, the local broker, this process: the replay, and reading the worker's metrics)
    and the trainer."""
    return {**busy_parts(worker), "trainer": [trainer.process.pid]}


def _examples_written(settings: Settings) -> int:
    """Training examples on the run's topic so far, all partitions together."""
    return sum(end_offsets(settings, settings.training_topic).values())


def _versions_once_trained(
    settings: Settings, expected: int, timeout_s: float = 120.0
) -> PublishedVersions:
    """The run's published versions once they were trained on ``expected`` examples (or
    after ``timeout_s``): read as soon as the worker is done, the freshness histogram would
    leave out the examples the trainer had yet to learn from, the least fresh ones."""
    versions = PublishedVersions(settings)
    try:
        wait_for_examples(versions, expected, timeout_s)
        return versions
    finally:
        versions.close()


def wait_for_examples(
    versions: PublishedVersions, expected: int, timeout_s: float
) -> dict[int, int]:
    """``versions.read()`` each second until its lags count ``expected`` examples or
    ``timeout_s`` passed; returns the last histogram read."""
    deadline = time.monotonic() + timeout_s
    while True:
        hist = versions.read()
        if sum(hist.values()) >= expected or time.monotonic() > deadline:
            return hist
        time.sleep(1.0)


class PublishedVersions:
    """What the versions on a run's model-updates topic say: their merged ``lag_ms_hist``
    (``lags``) and the training offsets each had consumed (``trained``, version ->
    partition -> next offset).

    Each `read` decodes only what was published since the previous one: the trainer being
    waited for shares the machine, and decoding every version (snapshots included) once a
    second would slow the very thing measured.
    """

    def __init__(self, settings: Settings) -> None:
        self._reader = TopicReader(
            settings,
            settings.model_updates_topic,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=max(settings.update_max_bytes * 4, 1 << 20),
        )
        self._assembler = Assembler()
        self.lags: dict[int, int] = {}
        self.trained: dict[int, dict[int, int]] = {}

    def read(self) -> dict[int, int]:
        for record in self._reader.read_to_end():
            try:
                update = self._assembler.add(parse_chunk(record.value))
            except UpdateError:
                continue
            if update is None:
                continue
            offsets = update.meta.get("offsets", {})
            self.trained[update.version] = {int(p): int(o) for p, o in offsets.items()}
            for lag, count in update.meta.get("lag_ms_hist", {}).items():
                self.lags[int(lag)] = self.lags.get(int(lag), 0) + int(count)
        return dict(self.lags)

    def close(self) -> None:
        self._reader.close()


def percentile(hist: dict[int, int], q: float) -> float:
    """The ``q`` percentile (0-100) of a histogram of 100 ms buckets, in seconds (bucket top)."""
    total = sum(hist.values())
    if not total:
        return float("nan")
    need, seen = q / 100 * total, 0
    for lag in sorted(hist):
        seen += hist[lag]
        if seen >= need:
            return (lag + 100) / 1000
    return (max(hist) + 100) / 1000


@click.command("online")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option(
    "--rate",
    type=float,
    default=2000.0,
    show_default=True,
    help="replay rate of the measured second halves, events/s",
)
@click.option(
    "--users",
    type=int,
    default=0,
    show_default=True,
    help="users of PATH replayed (all their events; 0 = all)",
)
@click.option("--drift-users", type=int, default=1000, show_default=True)
@click.option("--drift-items", type=int, default=500, show_default=True)
@click.option("--pretrain-minutes", type=float, default=2.0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@pass_settings
def online_command(
    settings: Settings,
    path: str,
    fmt: str,
    rate: float,
    users: int,
    drift_users: int,
    drift_items: int,
    pretrain_minutes: float,
    device: str,
    seed: int,
    as_json: bool,
) -> None:
    """Prequential Hit@10/NDCG@10 of a frozen vs an online-learning model, and freshness."""
    base = settings.replace(device=device)
    tmp = Path(tempfile.mkdtemp(prefix="rtrank-bench-online-"))
    try:
        streams = [
            file_stream(path, fmt, users, seed),
            drift_stream(drift_users, drift_items, seed),
        ]
    except (DataError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    results, hist, untrained = [], {}, 0
    try:
        with local_kafka_for(base):
            for stream in streams:
                ckpt = pretrain(
                    stream, tmp / f"{stream.name}.safetensors", pretrain_minutes, device
                )
                frozen, frozen_judged, _, _ = replay_run(
                    base, tmp, stream, ckpt, rate, online=False
                )
                online, online_judged, lags, examples = replay_run(
                    base, tmp, stream, ckpt, rate, online=True
                )
                untrained += max(0, examples - sum(lags.values()))
                for lag, count in lags.items():
                    hist[lag] = hist.get(lag, 0) + count
                results.append(
                    {
                        "name": stream.name,
                        "frozen": frozen,
                        "online": online,
                        "online_minus_frozen": paired_difference(frozen_judged, online_judged),
                        "events": {"first": len(stream.first), "second": len(stream.second)},
                    }
                )
    except (BrokerError, RuntimeError) as exc:
        raise click.ClickException(f"{exc} (files kept in {tmp})") from None
    shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "streams": results,
        "freshness_s": {
            "p50": percentile(hist, 50),
            "p99": percentile(hist, 99),
            "examples": sum(hist.values()),
            "untrained": untrained,
        },
        "rate": rate,
        "users": users,
        "machine": machine_info(),
    }
    click.echo(json.dumps(report) if as_json else table(report))


def table(r: dict) -> str:
    lines = [
        f"{'stream':<16}{'model':<8}{'hit@10':>8}{'± se':>8}{'ndcg@10':>9}{'tested':>8}"
        f"{'version':>9}{'answered':>11}{'arrival':>9}"
    ]
    for s in r["streams"]:
        offered = s["events"]["second"] / r["rate"]
        for kind in ("frozen", "online"):
            q = s[kind]
            answered = f"{q['seconds']:.0f}/{offered:.0f}"
            lines.append(
                f"{s['name']:<16}{kind:<8}{q['hit@10']:>8.4f}{q['hit@10_se']:>8.4f}"
                f"{q['ndcg@10']:>9.4f}{q['tested']:>8}{q['final_version']:>9}{answered:>11}"
                f"{q['at_arrival']['hit@10']:>9.4f}"
            )
        d = s["online_minus_frozen"]
        skipped = s["online"]["skipped_trained"]
        lines.append(
            f"{s['name']:<16}{'o - f':<8}{d['hit@10']:>+8.4f}{d['se']:>8.4f}"
            + (
                f"  ({skipped} tested against an older list: the newest was trained on them)"
                if skipped
                else ""
            )
        )
    cores = r["machine"]["cores"]
    for s in r["streams"]:
        for kind in ("frozen", "online"):
            cpu, seconds = s[kind].get("cpu_s"), s[kind]["seconds"]
            if cpu:
                parts = "  ".join(f"{name} {spent:.1f}" for name, spent in cpu.items())
                lines.append(
                    f"{s['name']:<16}{kind:<8}CPU s  {parts}  = {sum(cpu.values()):.0f} "
                    f"of {cores} cores x {seconds:.0f} s"
                )
    f, m = r["freshness_s"], r["machine"]
    lines += [
        f"freshness (event -> first version trained on it): p50 {f['p50']:.1f}s, "
        f"p99 {f['p99']:.1f}s over {f['examples']} examples"
        + (f" ({f['untrained']} never trained on within the run)" if f["untrained"] else ""),
        f"second halves replayed at {r['rate']:.0f} events/s; {r['users'] or 'all'} users of the "
        f"file replayed (pretraining used every user's first half); prequential, K=10, whole "
        "catalogue, each event tested against the list emitted for its user's previous event "
        "(never one from a version trained on it); o - f: online minus frozen Hit@10 over the "
        "same events, with its standard error; arrival: the worker's own Hit@10, each event "
        "tested against the last list emitted when it was read (a backlog leaves it older); "
        "answered: "
        "seconds until the worker had answered the second half / seconds the replay took to "
        "offer it (a worker that keeps up answers in about the same time); CPU s: CPU "
        "seconds each process used meanwhile (model: the worker's model process; bench: the "
        "replay)",
        f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}",
    ]
    return "\n".join(lines)
