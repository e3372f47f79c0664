"""``rtrank demo``: the whole pipeline on this machine, end to end, in one command.

Starts (or reuses) a local Kafka broker, trains a small model on a synthetic catalogue the
first time (cached afterwards), starts a worker and an online trainer, replays a synthetic
stream with a few malformed events mixed in, shows recommendations as they arrive, and ends
with a summary (including the worker's prequential Hit@10/NDCG@10 per model version).
Everything it started is stopped again, on Ctrl-C or a SIGTERM too.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import click
import numpy as np

from rtrank.deploy.kafka.broker import BrokerError, free_port
from rtrank.model import synthetic
from rtrank.model.sasrec import SASRecConfig
from rtrank.model.train import TrainConfig, make_dataset, train
from rtrank.streams.bench.local_stack import local_kafka_for
from rtrank.streams.bench.recommendation_reader import RecommendationReader
from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.worker_metrics import metric_value, online_quality
from rtrank.streams.bench.worker_process import TrainerProcess, WorkerProcess
from rtrank.streams.cli.context import pass_settings
from rtrank.streams.cli.produce import send_events
from rtrank.streams.cli.tail import render
from rtrank.streams.kafka_security import client_config
from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import ensure_topics

DEMO_DIR = Path.home() / ".cache" / "rtrank" / "demo"
SHOWN_VERSIONS = 5  # the summary's per-version quality rows: the latest ones
MALFORMED = [
    b"{not json",
    b'{"user_id": "u1"}',
    b"[1, 2, 3]",
    b"\xff\xfe",
    b'{"user_id": "u1", "item_id": "x", "event_type": "view", "ts": "soon"}',
]


@click.command()
@click.option("--users", type=int, default=1000, show_default=True)
@click.option("--items", type=int, default=300, show_default=True)
@click.option("--events", type=int, default=4_000, show_default=True)
@click.option(
    "--rate",
    type=float,
    default=200.0,
    show_default=True,
    help="events per second (broker, worker, trainer and replay share this machine: a rate "
    "it cannot serve shows as growing latency)",
)
@click.option("--seed", type=int, default=0, show_default=True)
@pass_settings
def demo(base: Settings, users: int, items: int, events: int, rate: float, seed: int) -> None:
    """Run the pipeline end to end on a local broker and show the recommendations live."""
    tag = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    run_dir = DEMO_DIR / "runs" / tag
    settings = base.isolated(
        f"demo-{tag}",
        data_dir=run_dir / "state",
        web_port=free_port(),
        standby_replicas=0,
        log_level="warn",
        checkpoint=str(demo_model(items, seed)),
    )
    worker = WorkerProcess(settings, run_dir / "worker.log")
    trainer = TrainerProcess(settings, run_dir / "trainer.log", checkpoint=settings.checkpoint)
    try:
        with local_kafka_for(settings) as started:
            click.echo(
                f"Kafka: {'started a local broker' if started else 'using the running broker'} "
                f"at {settings.bootstrap_servers}"
            )
            ensure_topics(settings)
            click.echo(f"worker: starting (log {worker.log}) ...")
            worker.start()
            click.echo(f"worker: ready on :{settings.web_port} (/health, /metrics)")
            click.echo(f"trainer: starting (log {trainer.log}) ...")
            trainer.start()
            click.echo("trainer: ready; it publishes model versions as it learns\n")
            summary = replay_and_watch(settings, worker, users, items, events, rate, seed)
            trainer.stop()
            worker.stop()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted: stopping what the demo started")
        return
    finally:
        trainer.stop()
        worker.stop()
    click.echo(summary)


def demo_model(items: int, seed: int) -> Path:
    """A model trained on the demo's synthetic catalogue; trained once, then cached."""
    path = DEMO_DIR / f"model-items{items}-seed{seed}.safetensors"
    if path.exists():
        return path
    click.echo(
        f"training the demo model on a synthetic catalogue of {items} items (first run only)"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    data = synthetic.generate(num_users=2000, num_items=items, min_len=5, max_len=30, seed=seed)
    dataset = make_dataset({u: [i for i, _ in evs] for u, evs in data.items()}, name="synthetic")
    config = SASRecConfig(num_items=len(dataset.vocab), max_len=30, dim=48, dropout=0.2)
    train(dataset, config, TrainConfig(epochs=8, max_minutes=1.5, device="cpu"), out=str(path))
    return path


def replay_and_watch(
    settings: Settings,
    worker: WorkerProcess,
    users: int,
    items: int,
    events: int,
    rate: float,
    seed: int,
) -> str:
    """Send the stream from a thread; print a sample of the lists as they arrive."""
    stream = synthetic_replay(users, items, events, seed=seed).events
    bad_every = max(1, len(stream) // (4 * len(MALFORMED)))
    bad_sent = 0
    with RecommendationReader(settings) as reader:

        def produce() -> None:
            nonlocal bad_sent
            send_events(settings, stream, rate=rate, progress=False)
            from kafka import KafkaProducer

            producer = KafkaProducer(
                bootstrap_servers=settings.bootstrap_servers, **client_config(settings)
            )
            for n in range(0, len(stream), bad_every):
                producer.send(
                    settings.events_topic, key=b"demo-bad", value=MALFORMED[n % len(MALFORMED)]
                )
                bad_sent += 1
            producer.flush()
            producer.close()

        sender = threading.Thread(target=produce, daemon=True)
        started = time.monotonic()
        sender.start()
        shown_at = 0.0
        received = 0

        def show(rec: dict, _received_ms: float) -> None:
            nonlocal shown_at, received
            received += 1
            if time.monotonic() - shown_at >= 0.5:
                shown_at = time.monotonic()
                click.echo(render(rec["user_id"].encode(), json.dumps(rec).encode(), {}, False))

        latencies = reader.collect_while(sender.is_alive, idle_s=3.0, on_record=show)
        worker.drain(len(stream) + bad_sent)  # the summary counts every event sent
        latencies += reader.collect_while(lambda: False, idle_s=3.0, on_record=show)
        seconds = time.monotonic() - started
    metrics = worker.metrics()
    return _summary(len(stream), bad_sent, received, latencies, seconds, metrics, rate)


def _summary(
    sent: int,
    bad: int,
    received: int,
    latencies: list[float],
    seconds: float,
    metrics: str,
    rate: float,
) -> str:
    pct = np.percentile(latencies, [50, 95, 99]) if latencies else [float("nan")] * 3
    rows = [
        ("events sent", f"{sent:,} at {rate:.0f}/s (+{bad} malformed)"),
        ("events processed", f"{metric_value(metrics, 'rtrank_events_total'):,.0f}"),
        ("dead letters (events.dlq)", f"{metric_value(metrics, 'rtrank_dead_letters_total'):,.0f}"),
        ("recommendation lists", f"{received:,}"),
        ("latency event -> list p50", f"{pct[0]:.0f} ms"),
        ("latency event -> list p95", f"{pct[1]:.0f} ms"),
        ("latency event -> list p99", f"{pct[2]:.0f} ms"),
        ("model version at the end", f"{metric_value(metrics, 'rtrank_model_version'):.0f}"),
        ("wall time", f"{seconds:.1f} s"),
    ]
    quality = online_quality(metrics)
    rows.append(
        (
            "online Hit@10 / NDCG@10",
            f"{quality['hit@10']:.3f} / {quality['ndcg@10']:.3f} (rolling, "
            f"{quality['evaluated']:,} events tested before training on them)",
        )
    )
    for version, q in list(quality["by_version"].items())[-SHOWN_VERSIONS:]:
        rows.append(
            (
                f"  model version {version}",
                f"Hit@10 {q['hit@10']:.3f}  NDCG@10 {q['ndcg@10']:.3f}  "
                f"({q['evaluated']:,} events)",
            )
        )
    width = max(len(k) for k, _ in rows)
    return "\nsummary\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
