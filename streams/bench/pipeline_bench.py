"""``rtrank bench …``: speed and quality measured on this machine, printed with the machine.

rtrank bench pipeline [--events 20000] [--rates 500,1000] [--json]
rtrank bench quality PATH [--json]
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from operator import itemgetter
from pathlib import Path
from typing import Any

import click
import faiss
import torch

from rtrank.deploy.kafka.broker import BrokerError, free_port
from rtrank.model.checkpoint import load_checkpoint, save_checkpoint
from rtrank.model.item_ann import IvfConfig
from rtrank.model.quality import machine_info
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.serving import resolve_device, resolve_shortlist
from rtrank.model.synthetic import item_id
from rtrank.model.throughput import inference_rate
from rtrank.model.vocab import Vocabulary
from rtrank.streams.bench import cpu_use
from rtrank.streams.bench.catalogue_records import publish_catalogue, wait_for_catalogue
from rtrank.streams.bench.encode_bench import encode_command
from rtrank.streams.bench.experiment_bench import experiment_command
from rtrank.streams.bench.faust_passthrough import RESULT as FAUST_RESULT
from rtrank.streams.bench.faust_passthrough import SEND_NOW
from rtrank.streams.bench.index_bench import index_command
from rtrank.streams.bench.latency_breakdown import (
    Breakdown,
    breakdown_table,
    model_calls,
    percentiles,
)
from rtrank.streams.bench.local_stack import local_kafka_for
from rtrank.streams.bench.online_bench import online_command
from rtrank.streams.bench.recommendation_reader import RecommendationReader
from rtrank.streams.bench.replay import synthetic_replay
from rtrank.streams.bench.rerank_bench import rerank_command
from rtrank.streams.bench.scale_bench import scale_command
from rtrank.streams.bench.worker_process import (
    WorkerProcess,
    busy_parts,
    start_child,
    stop_child,
)
from rtrank.streams.cli.context import pass_settings
from rtrank.streams.cli.produce import event_producer, send_all, send_events
from rtrank.streams.cli.training import quality_command
from rtrank.streams.kafka_security import client_config
from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import delete_run_topics, ensure_topics

GAMES_ITEMS = 23_715  # the shared Amazon Games catalogue
FLOOR_WARM_UP = 200  # events the latency pass-through forwards before it is timed


@click.group()
def bench() -> None:
    """Benchmarks: figures printed with the machine they ran on (never asserted in tests)."""


bench.add_command(quality_command)
bench.add_command(encode_command)
bench.add_command(index_command)
bench.add_command(online_command)
bench.add_command(rerank_command)
bench.add_command(experiment_command)
bench.add_command(scale_command)


@bench.command("pipeline")
@click.option(
    "--events", type=int, default=20_000, show_default=True, help="events per throughput run"
)
@click.option("--users", type=int, default=2_000, show_default=True)
@click.option("--items", type=int, default=GAMES_ITEMS, show_default=True, help="catalogue size")
@click.option(
    "--rates",
    default="500,1000",
    show_default=True,
    callback=lambda _ctx, _param, value: _rates(value),
    help="offered rates for latency, events/s, one run each in this order",
)
@click.option("--latency-seconds", type=float, default=20.0, show_default=True, help="per rate")
@click.option(
    "--warm-up-seconds",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="per rate, sent at that rate before the timed seconds and not timed",
)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="model to serve [default: randomly initialised over --items items]",
)
@click.option(
    "--catalogue/--no-catalogue",
    default=True,
    show_default=True,
    help="publish a catalogue record per item (created over the past year) for the worker "
    "to re-rank with, as a shop's catalogue",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@pass_settings
def pipeline(
    base: Settings,
    events: int,
    users: int,
    items: int,
    rates: list[float],
    latency_seconds: float,
    warm_up_seconds: float,
    checkpoint: str | None,
    catalogue: bool,
    as_json: bool,
) -> None:
    """Pass-through vs full pipeline events/s, and latency at fixed offered rates with where
    it goes (p50 and p99 per stage), beside the Faust pass-through's at the same rates.

    Each rate runs ``--warm-up-seconds`` before its timed seconds, without a pause between:
    the latency is the steady state at that rate, not the step to it from idle, nor the
    broker the bench may have started moments before still compiling its hot paths
    (docs/benchmarks.md)."""
    tag = uuid.uuid4().hex[:8]
    tmp = tempfile.mkdtemp(prefix="rtrank-bench-")
    settings = base.isolated(
        f"bench-{tag}",
        data_dir=Path(tmp) / "state",
        web_port=free_port(),
        standby_replicas=0,
        top_k=10,
        checkpoint=checkpoint or _random_checkpoint(Path(tmp) / "model.safetensors", items),
    )
    try:
        with local_kafka_for(settings):
            result = _run_pipeline_bench(
                settings,
                Path(tmp),
                events,
                users,
                items,
                rates,
                latency_seconds,
                warm_up_seconds,
                catalogue,
            )
            delete_run_topics(settings, f"bench-{tag}")  # kept, like the files, on failure
    except (BrokerError, RuntimeError) as exc:
        raise click.ClickException(f"{exc} (files kept in {tmp})") from None
    shutil.rmtree(tmp, ignore_errors=True)
    result["machine"] = machine_info()
    click.echo(json.dumps(result) if as_json else _pipeline_table(result))


def _run_pipeline_bench(
    settings: Settings,
    tmp: Path,
    events: int,
    users: int,
    items: int,
    rates: list[float],
    latency_seconds: float,
    warm_up_s: float,
    catalogue: bool,
) -> dict:
    stream = synthetic_replay(users, items, events, seed=1).events
    stamped = [{**e, "ts": int(time.time() * 1000)} for e in stream]
    click.echo(f"(a) pass-through: {events} messages through aiokafka consume -> produce", err=True)
    passthrough_eps = asyncio.run(_passthrough(settings, stamped, tag=settings.app_id))
    click.echo(f"(a') pass-through: {events} events forwarded by a Faust agent", err=True)
    faust_eps = faust_passthrough_rate(settings, stamped, tmp / "faust-passthrough.log")

    click.echo(
        f"(b) pipeline: {events} events, {items} items, K={settings.top_k}, one worker", err=True
    )
    ensure_topics(settings)
    worker = WorkerProcess(settings.replace(log_level="warn"), tmp / "worker.log")
    if catalogue:  # read by a first start; the timed one recovers it before any event
        click.echo(f"    a catalogue record for each of the {items} items", err=True)
        publish_catalogue(settings, items)
        worker.start()
        try:
            wait_for_catalogue(settings, items)
        finally:
            worker.stop()
    send_events(settings, stamped)
    worker.start()
    try:
        pipeline_eps = worker.drain(events)
        if pipeline_eps is None:
            raise RuntimeError(f"the worker answered all {events} events too fast to time them")
        latency, parts = [], busy_parts(worker)
        for n, rate in enumerate(rates):
            click.echo(
                f"(c) latency at {rate:.0f} events/s for {latency_seconds:.0f}s "
                f"after {warm_up_s:.0f}s at that rate",
                err=True,
            )
            latency.append(
                _latency_at(
                    settings, users, items, rate, latency_seconds, 2 + n, parts, warm_up_s, worker
                )
            )
    finally:
        worker.stop()
    click.echo("(d) latency of the Faust pass-through at the same rates", err=True)
    floor = faust_passthrough_latency(
        settings, users, items, rates, latency_seconds, tmp / "faust-floor.log", warm_up_s
    )
    return {
        "passthrough_eps": round(passthrough_eps, 1),
        "pipeline_eps": round(pipeline_eps, 1),
        "ratio": round(pipeline_eps / passthrough_eps, 3),
        "faust_passthrough_eps": round(faust_eps, 1),
        "ratio_to_faust": round(pipeline_eps / faust_eps, 3),
        "faust_ratio": round(faust_eps / passthrough_eps, 3),
        "latency": latency,
        "passthrough_latency": floor,
        "warm_up_s": warm_up_s,
        "device": str(resolve_device(settings.device)),
        "items": items,
        "catalogue": catalogue,
        "model_only_users_per_s": round(model_only_rate(settings), 1),
    }


async def _passthrough(settings: Settings, events: list[dict], tag: str) -> float:
    """Messages/s of a bare aiokafka consume -> produce loop over the same messages."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    source = settings.isolated(f"{tag}-pass")
    ensure_topics(source)
    send_events(source, events)
    consumer = AIOKafkaConsumer(
        source.events_topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{tag}-pass",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        **client_config(settings),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, linger_ms=5, **client_config(settings)
    )
    await consumer.start()
    await producer.start()
    try:
        forwarded, started = 0, None
        while forwarded < len(events):
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for messages in batches.values():
                if started is None:
                    started = time.monotonic()
                for message in messages:
                    await producer.send(
                        source.recommendations_topic, key=message.key, value=message.value
                    )
                    forwarded += 1
        await producer.flush()
        return forwarded / (time.monotonic() - started)
    finally:
        await consumer.stop()
        await producer.stop()


def faust_passthrough_rate(
    settings: Settings, events: list[dict], log_path: Path, timeout_s: float = 300.0
) -> float:
    """Events/s of a Faust agent that only forwards (`rtrank.streams.bench.faust_passthrough`),
    reading the same messages on topics of its own with the worker's settings."""
    source = settings.isolated("faust-pass", log_level="warn")
    process, result = _start_passthrough(source, events, log_path, timeout_s)
    try:
        return float(result().group(1))
    finally:
        stop_child(process, signal.SIGTERM, 30.0)


def faust_passthrough_latency(
    settings: Settings,
    users: int,
    items: int,
    rates: list[float],
    seconds: float,
    log_path: Path,
    warm_up_s: float = 0.0,
    timeout_s: float = 300.0,
) -> list[dict]:
    """Event -> record milliseconds (p50, p99) at each of ``rates`` through the Faust
    pass-through, sending each event on at once (``--send-now``), on topics of its own:
    what the broker, Faust and this bench's clients cost on this machine with no work
    between them, the floor under the pipeline's latency at the same rates. It forwards
    `FLOOR_WARM_UP` events first, so that it is reading when the timed ones come; each
    rate runs ``warm_up_s`` untimed before its ``seconds``, as the pipeline's do.

    Raises:
        RuntimeError: the pass-through did not start, or nothing came back at a rate.
    """
    source = settings.isolated("faust-floor", log_level="warn")
    warm_up = synthetic_replay(users, items, FLOOR_WARM_UP, seed=1).events
    process, _ = _start_passthrough(source, warm_up, log_path, timeout_s, SEND_NOW)
    try:
        runs = []
        for n, rate in enumerate(rates):
            stream, warm_up = _offered(users, items, rate, seconds, warm_up_s, seed=2 + n)
            with RecommendationReader(source, sent_ms=itemgetter("ts")) as reader:
                latencies, _, _ = _offer(source, stream, rate, reader, warm_up=warm_up)
            if not latencies:
                raise RuntimeError(f"no event came back through the pass-through at {rate:.0f}/s")
            runs.append({"offered_eps": rate, "received": len(latencies), **percentiles(latencies)})
        return runs
    finally:
        stop_child(process, signal.SIGTERM, 30.0)


def _start_passthrough(
    source: Settings, events: list[dict], log_path: Path, timeout_s: float, *flags: str
) -> tuple[subprocess.Popen, Callable[[], re.Match | None]]:
    """The Faust pass-through on ``source``'s topics, started once it forwarded ``events``
    (sent first), and how to read its result line from its log."""
    ensure_topics(source)
    send_events(source, events, progress=False)

    def result() -> re.Match | None:
        return FAUST_RESULT.search(log_path.read_text(errors="replace"))

    process = start_child(
        [str(len(events)), *flags],
        source,
        log_path,
        lambda: result() is not None,
        timeout_s,
        module="rtrank.streams.bench.faust_passthrough",
    )
    return process, result


def _rates(value: str) -> list[float]:
    try:
        rates = [float(rate) for rate in value.split(",")]
    except ValueError:
        rates = []
    if not rates or min(rates) <= 0:
        raise click.BadParameter(f"{value!r}: events/s > 0, comma-separated (500,1000)")
    return rates


def _latency_at(
    settings: Settings,
    users: int,
    items: int,
    rate: float,
    seconds: float,
    seed: int,
    parts: dict[str, list[int]],
    warm_up_s: float,
    worker: WorkerProcess,
) -> dict:
    """Event -> list milliseconds (send to receive) at ``rate`` events/s, per stage
    (`rtrank.streams.bench.latency_breakdown`), and, while the events were sent, the cores
    each of ``parts`` kept busy and ``worker``'s model calls; over ``seconds`` after
    ``warm_up_s`` at that rate."""
    stream, warm_up = _offered(users, items, rate, seconds, warm_up_s, seed)
    received = Breakdown()
    with RecommendationReader(settings) as reader:
        _, cores, calls = _offer(
            settings, stream, rate, reader, received.add, parts, warm_up, worker.batches
        )
    return {
        **received.summary(rate),
        "load_average": round(os.getloadavg()[0], 2),
        "cores": cores,
        "model_calls": calls,
    }


def _offered(
    users: int, items: int, rate: float, seconds: float, warm_up_s: float, seed: int
) -> tuple[list[dict], int]:
    """What one rate offers, the pipeline and the floor alike: ``warm_up_s`` then
    ``seconds`` of events at ``rate``, and how many of them are the warm-up."""
    sent = int(rate * (warm_up_s + seconds))
    return synthetic_replay(users, items, sent, seed=seed).events, int(rate * warm_up_s)


def _offer(
    settings: Settings,
    stream: list[dict],
    rate: float,
    reader: RecommendationReader,
    on_record: Callable[[dict, float], None] | None = None,
    parts: dict[str, list[int]] | None = None,
    warm_up: int = 0,
    batches: Callable[[], tuple[float, float]] | None = None,
) -> tuple[list[float], dict[str, float], dict[str, float]]:
    """Send ``stream`` at ``rate`` events/s while ``reader`` collects what comes back: the
    milliseconds of each record from its send (`RecommendationReader.collect_while`), the
    cores each of ``parts`` kept busy while the events were sent, and the model calls
    meanwhile (`model_calls`, from the (calls, events) totals ``batches`` reads; empty
    without it). The first ``warm_up`` events go first, through the same producer and at
    the same rate: the records that answer them are read and left out, and so are the cores
    and calls used meanwhile."""
    parts = parts or {}
    timed: dict[str, Any] = {}  # from when: epoch ms, CPU seconds, clock and batches then
    cores: dict[str, float] = {}
    calls: dict[str, float] = {}

    def send() -> None:
        with event_producer(settings) as producer:
            send_all(producer, settings.events_topic, stream[:warm_up], rate)
            timed.update(
                ms=int(time.time() * 1000),
                cpu=cpu_use.used(parts),
                at=time.monotonic(),
                batches=batches() if batches else None,
            )
            send_all(producer, settings.events_topic, stream[warm_up:], rate)
        seconds = time.monotonic() - timed["at"]
        cores.update(cpu_use.cores_between(timed["cpu"], cpu_use.used(parts), seconds))
        if batches:
            calls.update(model_calls(timed["batches"], batches(), seconds))

    # This process's garbage collections (a full one walked torch and the replay: 100-140
    # ms) stopped its producer and reader, and were counted as the pipeline's latency.
    gc.collect()
    gc.disable()
    received: list[tuple[dict, float]] = []
    try:
        producer = threading.Thread(target=send, daemon=True)  # a terminated bench exits at once
        producer.start()
        reader.collect_while(producer.is_alive, on_record=lambda *r: received.append(r))
        producer.join()
    finally:
        gc.enable()
    latencies = []
    for rec, at in received:
        sent = reader.sent_ms(rec)
        if sent >= timed.get("ms", math.inf):
            latencies.append(at - sent)
            if on_record is not None:
                on_record(rec, at)
    return latencies, cores, calls


def model_only_rate(settings: Settings) -> float:
    """Users/s of the served model alone (encode + top-10), with the worker's threads,
    shortlist and item index settings."""
    torch.set_num_threads(settings.torch_threads)
    faiss.omp_set_num_threads(settings.torch_threads)
    device = resolve_device(settings.device)
    model = load_checkpoint(settings.checkpoint, device).model
    ivf = IvfConfig(settings.item_index_lists, settings.item_index_probe)
    short = resolve_shortlist(settings.score_shortlist, device)
    return inference_rate(model, short, ivf=ivf if settings.item_index == "ivf" else None)


def _random_checkpoint(path: Path, items: int) -> str:
    """A randomly initialised model over ``items`` synthetic items (speed, not quality)."""
    torch.manual_seed(0)
    vocab = Vocabulary(item_id(n) for n in range(items))
    save_checkpoint(
        path,
        SASRec(SASRecConfig(num_items=len(vocab))),
        vocab,
        version=1,
        data_fingerprint="random-init",
    )
    return str(path)


def _pipeline_table(r: dict) -> str:
    m = r["machine"]
    return "\n".join(
        [
            f"{'pass-through (aiokafka)':<34}{r['passthrough_eps']:>12,.0f} events/s",
            f"{'pass-through (Faust agent)':<34}{r['faust_passthrough_eps']:>12,.0f} events/s",
            f"{'pipeline (1 worker, ' + r['device'] + ')':<34}{r['pipeline_eps']:>12,.0f} events/s",
            f"{'ratio':<34}{r['ratio']:>12.1%}",
            f"{'ratio to the Faust pass-through':<34}{r['ratio_to_faust']:>12.1%}",
            f"{'Faust pass-through / aiokafka':<34}{r['faust_ratio']:>12.1%}",
            f"{'model only (encode + top-10)':<34}{r['model_only_users_per_s']:>12,.0f} users/s",
            breakdown_table(r["latency"], r["passthrough_latency"]),
            f"latency timed after {r['warm_up_s']:g} s at each rate (warm-up, not timed)",
            f"catalogue {r['items']} items, "
            f"{'their records on the items topic' if r['catalogue'] else 'no item records'}, "
            "K=10; "
            f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}",
        ]
    )
