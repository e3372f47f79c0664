"""The ``rtrank`` command: the worker's Faust command line with rtrank's commands added.

    rtrank worker -l info        # the stream processor (web port: /health, /metrics)
    rtrank demo                  # the whole pipeline on a local broker
    rtrank --help                # every command

The app is built from one ``Settings`` object read from the environment here, once.
"""

from __future__ import annotations

import click

from rtrank.streams.bench.demo import demo
from rtrank.streams.bench.pipeline_bench import bench
from rtrank.streams.cli.kafka import kafka
from rtrank.streams.cli.produce import produce
from rtrank.streams.cli.tail import tail
from rtrank.streams.cli.trainer import trainer_command
from rtrank.streams.cli.training import eval_command, train_command
from rtrank.streams.settings import Settings
from rtrank.streams.worker.app import build_app

COMMANDS = (kafka, produce, tail, demo, train_command, eval_command, bench, trainer_command)


def register(cli: click.Group) -> None:
    for command in COMMANDS:
        cli.add_command(command)


def main() -> None:
    """Console entry point: ``rtrank …``."""
    from faust.cli.faust import cli

    register(cli)
    build_app(Settings.from_env()).main()
