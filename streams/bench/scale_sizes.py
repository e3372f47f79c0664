"""The capacity guide's per-event and per-user figures, measured on one worker
(`rtrank bench scale`, docs/capacity.md).

One worker, no standby, drains a backlog of synthetic users with
``EVENTS_PER_USER`` events each (enough to fill a history of the default 50 items), then:

- events/s per worker core: events answered per CPU second of the worker and its model
  process (CPU seconds, not wall time), beside the events per list it ran at: a backlog
  answers a user's queued events with one list, one model call and one state write, so
  the cost per event follows how far the worker fell behind, which other load on the
  machine changes from run to run;
- memory: the RSS of the worker and its model process when it starts serving and after
  the backlog (user state lives in RocksDB on disk, so memory follows buffers and caches
  bounded by settings, not the number of users);
- RocksDB bytes per user: the growth of the worker's data dir, read after a clean stop;
- changelog bytes per user state: the latest record per user (key + value) of the
  ``user_to_history`` changelog, what compaction leaves;
- topic volume per million events: each topic's partition sizes on the broker
  (kafka-python's ``describe_log_dirs``), the changelog's before compaction; and per
  record, since lists and changelog writes per event follow batching (a backlog batches a
  user's events into one list and one write; live traffic answers most events alone);
- every topic's retention, from `topic_specs`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.consumer.fetcher import ConsumerRecord

from rtrank.deploy.kafka.broker import free_port
from rtrank.streams.bench import cpu_use
from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.replay_checks import check_replay, sent_events
from rtrank.streams.bench.topic_reader import end_offsets, read_topic
from rtrank.streams.bench.worker_process import WorkerProcess
from rtrank.streams.cli.produce import send_events
from rtrank.streams.kafka_security import client_config
from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import (
    DAY_MS,
    changelog,
    delete_run_topics,
    ensure_topics,
    topic_specs,
)

EVENTS_PER_USER = 60
MEASURED = ("events", "recommendations", "training", "user_to_history_changelog")


def measure(
    base: Settings, tmp: Path, items: int, users: int, say: Callable[[str], None],
    events_per_user: int = EVENTS_PER_USER,
) -> dict:  # fmt: skip
    """Run one worker through ``users`` x ``events_per_user`` events of ``items`` synthetic
    items and measure it."""
    run = f"scale-{uuid.uuid4().hex[:6]}-sizes"
    settings = base.isolated(run, standby_replicas=0, data_dir=tmp / "w0")
    events = synthetic_replay(users, items, users * events_per_user, seed=7)
    ensure_topics(settings)
    worker = WorkerProcess(settings.replace(web_port=free_port()), tmp / "w0.log")
    worker.start()
    try:
        pids = [worker.process.pid, *cpu_use.children(worker.process.pid)]
        disk_before, rss_start = dir_bytes(settings.data_dir), rss_bytes(pids)
        say(f"sizes: {len(events.events)} events of {users} users")
        cpu_before = sum(cpu_use.used({"worker": pids}).values())
        send_events(settings, events.events, progress=False)
        worker.drain(len(events.events))
        cpu = sum(cpu_use.used({"worker": pids}).values()) - cpu_before
        rss_after = rss_bytes(pids)
        findings = check_replay(settings, sent_events(settings), settle_s=60)
    finally:
        worker.stop()
    specs = {spec.role: spec for spec in topic_specs(settings)}
    volumes = topic_bytes(settings, [specs[role].name for role in MEASURED])
    records = {role: sum(end_offsets(settings, specs[role].name).values()) for role in MEASURED}
    states = latest_record_bytes(read_topic(settings, changelog(settings, "user_to_history")))
    result = sizes(
        len(events.events), users, cpu, rss_start, rss_after,
        dir_bytes(settings.data_dir) - disk_before, states,
        {role: volumes[specs[role].name] for role in MEASURED}, records,
    )  # fmt: skip
    result["events_per_user"] = events_per_user
    result["checks"] = findings.counts()
    result["retention"] = {spec.role: retention(spec.configs) for spec in specs.values()}
    delete_run_topics(settings, run)
    return result


def sizes(
    events: int, users: int, cpu_s: float, rss_start: int, rss: int, disk_growth: int,
    state_bytes: list[int], topic_volume: dict[str, int], topic_records: dict[str, int],
) -> dict:  # fmt: skip
    """The figures of `measure` from its readings (bytes, CPU seconds)."""
    return {
        "events": events,
        "users": users,
        "events_per_core_s": round(events / cpu_s, 1),
        "events_per_list": round(events / max(topic_records["recommendations"], 1), 2),
        "worker_rss_start_mb": round(rss_start / 2**20, 1),
        "worker_rss_mb": round(rss / 2**20, 1),
        "rocksdb_bytes_per_user": round(disk_growth / users),
        "changelog_bytes_per_user_state": round(sum(state_bytes) / max(len(state_bytes), 1)),
        "topic_mb_per_million_events": {
            role: round(size / events * 1e6 / 2**20, 1) for role, size in topic_volume.items()
        },
        "topic_bytes_per_record": {
            role: round(size / max(topic_records[role], 1)) for role, size in topic_volume.items()
        },
    }


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when it does not exist)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of ``pids`` together (a process gone counts 0)."""
    import psutil

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            pass
    return total


def topic_bytes(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Each topic's bytes on the brokers (all partitions and replicas)."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, **client_config(settings)
    )
    try:
        return partition_sizes(admin.describe_log_dirs(topics), topics)
    finally:
        admin.close()


def partition_sizes(log_dirs: list[dict], topics: list[str]) -> dict[str, int]:
    """Bytes per topic from a ``describe_log_dirs`` answer, summed over brokers, log dirs
    and partitions."""
    out = dict.fromkeys(topics, 0)
    for broker in log_dirs:
        for log_dir in broker["log_dirs"]:
            for topic in log_dir["topics"]:
                if topic["name"] in out:
                    out[topic["name"]] += sum(p["partition_size"] for p in topic["partitions"])
    return out


def latest_record_bytes(records: list[ConsumerRecord]) -> list[int]:
    """Key + value bytes of the latest record per key, in offset order per partition (what
    compaction leaves of a topic, without Kafka's per-record overhead)."""
    latest: dict[bytes, int] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.value is None:
            latest.pop(record.key, None)
        else:
            latest[record.key] = len(record.key) + len(record.value)
    return list(latest.values())


def retention(configs: dict[str, str]) -> str:
    """A topic's retention in words: ``compacted``, ``N days`` or ``no time limit``."""
    if configs.get("cleanup.policy") == "compact":
        return "compacted"
    ms = int(configs.get("retention.ms", "-1"))
    return "no time limit" if ms < 0 else f"{ms / DAY_MS:g} days"


def table(s: dict) -> str:
    lines = [
        f"sizes: one worker, {s['users']:,} users x {s['events_per_user']} events "
        f"(checks {' '.join(map(str, s['checks'].values()))})",
        f"  events/s per worker core (worker + model process CPU)  {s['events_per_core_s']:,.0f}"
        f" at {s['events_per_list']:.2f} events per list",
        f"  worker RSS (worker + model process)  {s['worker_rss_start_mb']:.0f} MB serving, "
        f"{s['worker_rss_mb']:.0f} MB after the backlog",
        f"  RocksDB bytes per user  {s['rocksdb_bytes_per_user']:,}",
        f"  changelog bytes per user state (compacted)  {s['changelog_bytes_per_user_state']:,}",
        "  MB per million events: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in s["topic_mb_per_million_events"].items()),
        "  bytes per record: "
        + ", ".join(f"{k} {v:,}" for k, v in s["topic_bytes_per_record"].items()),
        "  retention: " + ", ".join(f"{k} {v}" for k, v in s["retention"].items()),
    ]
    return "\n".join(lines)
