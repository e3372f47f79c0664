"""``rtrank bench experiment PATH FILE``: one replay of PATH with an experiment, and its report.

    rtrank bench experiment /work/shared/data/amazon_games.txt mmr.json --users 3000

As ``rtrank bench online`` (`rtrank.streams.bench.online_bench`): pretrain
on every user's first half, replay the chosen users' first halves as fast as possible, then
their second halves at ``--rate``; but one run, whose worker serves the experiment's
variants (a trainer beside it when a variant learns online). The second halves are judged
by `rtrank.streams.experiments.report`, read back from the run's topics.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import click

from rtrank.deploy.kafka.broker import BrokerError
from rtrank.model.data import FORMATS, DataError
from rtrank.model.quality import machine_info
from rtrank.streams.bench.local_stack import local_kafka_for
from rtrank.streams.bench.online_bench import (
    Stream,
    file_stream,
    measured_from,
    pretrain,
    replay_run_settings,
)
from rtrank.streams.bench.worker_process import TrainerProcess, WorkerProcess
from rtrank.streams.cli.context import pass_settings
from rtrank.streams.cli.experiment import draw, text
from rtrank.streams.cli.produce import send_events
from rtrank.streams.experiments.definition import ExperimentError, load_experiment
from rtrank.streams.experiments.report import build_report, read_experiment_run
from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import delete_run_topics, ensure_topics


def experiment_run(
    base: Settings, tmp: Path, stream: Stream, checkpoint: str, rate: float, experiment: str
) -> dict:
    """One run of ``stream`` on fresh topics (deleted when it succeeds) with the
    ``experiment`` file; returns its report over the second halves."""
    tag, s = replay_run_settings(
        base, tmp, "experiment", checkpoint, experiment_file=str(Path(experiment).resolve())
    )
    exp = load_experiment(s.experiment_file)
    ensure_topics(s)
    worker = WorkerProcess(s, tmp / f"worker-{tag}.log")
    trainer = None
    if exp.learning_arm:
        trainer = TrainerProcess(s, tmp / f"trainer-{tag}.log", checkpoint=checkpoint)
    worker.start()
    try:
        send_events(s, stream.first, progress=False)
        worker.drain(len(stream.first))
        if trainer is not None:
            trainer.start()
        click.echo(
            f"[{stream.name}] {exp.name}: {len(stream.second)} events at {rate:.0f}/s", err=True
        )
        send_events(s, stream.second, rate=rate, progress=False)
        worker.drain(len(stream.first) + len(stream.second))
    finally:
        if trainer is not None:
            trainer.stop()
        worker.stop()
    report = build_report(read_experiment_run(s, exp), exp, measured_from=measured_from(stream))
    delete_run_topics(s, f"bench-experiment-{tag}")
    return report


@click.command("experiment")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.argument("experiment", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option(
    "--rate", type=float, default=2000.0, show_default=True, help="rate of the second halves"
)
@click.option("--users", type=int, default=0, show_default=True, help="users of PATH (0 = all)")
@click.option("--pretrain-minutes", type=float, default=2.0, show_default=True)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False),
    help="a model pretrained on PATH's first halves (as this command saves one): no pretraining",
)
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--plot", type=click.Path(dir_okay=False), help="draw each variant over time here")
@pass_settings
def experiment_command(
    settings: Settings,
    path: str,
    experiment: str,
    fmt: str,
    rate: float,
    users: int,
    pretrain_minutes: float,
    checkpoint: str | None,
    device: str,
    seed: int,
    as_json: bool,
    plot: str | None,
) -> None:
    """Replay PATH with the EXPERIMENT file and report which variant wins (as bench online)."""
    base = settings.replace(device=device)
    try:
        stream = file_stream(path, fmt, users, seed)
        load_experiment(experiment)
    except (DataError, OSError, ExperimentError) as exc:
        raise click.ClickException(str(exc)) from None
    tmp = Path(tempfile.mkdtemp(prefix="rtrank-bench-experiment-"))
    try:
        with local_kafka_for(base):
            ckpt = checkpoint or pretrain(
                stream, tmp / f"{stream.name}.safetensors", pretrain_minutes, device
            )
            report = experiment_run(base, tmp, stream, ckpt, rate, experiment)
    except (BrokerError, RuntimeError) as exc:
        raise click.ClickException(f"{exc} (files kept in {tmp})") from None
    shutil.rmtree(tmp, ignore_errors=True)
    report["stream"] = {
        "name": stream.name,
        "users": len({e["user_id"] for e in stream.second}),
        "first": len(stream.first),
        "second": len(stream.second),
        "rate": rate,
    }
    report["machine"] = machine_info()
    if plot:
        draw(report, plot)
    if as_json:
        click.echo(json.dumps(report))
        return
    m = report["machine"]
    click.echo(
        f"{text(report)}\n{stream.name}: {report['stream']['users']} users, second halves "
        f"({len(stream.second)} events) replayed at {rate:.0f}/s after the first halves "
        f"({len(stream.first)}); model pretrained on every user's first half\n"
        f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}"
    )
