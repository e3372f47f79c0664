"""``rtrank trainer``: learn from the training-examples topic, publish model versions.

    rtrank trainer                                  # resume from model-updates, or start empty
    rtrank trainer --checkpoint games.safetensors   # the base when nothing is published yet

Runs until SIGTERM/SIGINT; see `rtrank.streams.trainer.online_trainer` for what it reads and
publishes.
"""

from __future__ import annotations

import logging
import signal
import threading

import click

from rtrank.model.checkpoint import CheckpointError
from rtrank.streams.cli.context import pass_settings
from rtrank.streams.kafka_security import KafkaConnectError, check_connection
from rtrank.streams.settings import Settings
from rtrank.streams.shutdown import StopDeadline
from rtrank.streams.trainer.model_updates import PublishError
from rtrank.streams.trainer.online_trainer import Trainer


def on_ready(version: int) -> None:
    """The line `rtrank.streams.bench.worker_process.TrainerProcess` waits for, whatever the
    log level."""
    click.echo(f"trainer ready at version {version}", err=True)


@click.command("trainer")
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="start from this model when model-updates holds no version [default: RTRANK_CHECKPOINT]",
)
@pass_settings
def trainer_command(settings: Settings, checkpoint: str | None) -> None:
    """Fine-tune the model from the stream and publish versions to the model-updates topic."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO is per connection
    stop = threading.Event()
    deadline = StopDeadline(
        settings.shutdown_timeout_s,
        "the trainer",
        "it resumes from the last version it published at the next start",
    )

    def stop_within_deadline(*_: object) -> None:
        stop.set()
        deadline.start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop_within_deadline)
    try:
        check_connection(settings)
        Trainer(settings, checkpoint or settings.checkpoint).run(stop, on_ready)
    except (CheckpointError, PublishError, KafkaConnectError) as e:
        raise click.ClickException(str(e)) from None
